"""Two batches on the wire at once, acknowledged in order (push/cycle.py ``push_stream``).

The cursor may only move past a batch when it and every batch before it were committed by
the remote: a later batch that succeeds while an earlier one fails must not let the
earlier one's rows be skipped.
"""

from __future__ import annotations

import threading
from typing import Any

from base.db import make_engine
from base.errors import RemoteUnavailable
from models import Reading
from models.protocol.encode import BatchPayload
from push.client import RemoteClient
from push.cycle import PIPELINE_DEPTH, RemoteSync
from push.ledger import LocalStore
from tests.pushkit import assert_same, count, push_once, seed_cogent_house


class SecondBatchFails(RemoteClient):
    """A real client whose second distinct reading batch never gets through; every other
    batch goes to the real server. Records the order in which batches were committed."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seen: list[int] = []  # first time of each distinct batch, in order of sending
        self.committed: list[int] = []
        self._lock = threading.Lock()
        self._later_committed = threading.Event()

    def send_batch(self, payload: Any) -> Any:
        assert isinstance(payload, BatchPayload)
        if not payload.readings:
            return super().send_batch(payload)
        first = min(g.times[0] for g in payload.readings)
        with self._lock:
            if first not in self.seen:
                self.seen.append(first)
            victim = len(self.seen) >= 2 and first == self.seen[1]
        if victim:
            # Fail only once the batch after this one has been committed, so the later
            # batch is known to succeed before the earlier one fails.
            assert self._later_committed.wait(timeout=60), "the next batch was never sent"
            raise RemoteUnavailable("injected: the link dropped during this batch")
        reply = super().send_batch(payload)
        with self._lock:
            self.committed.append(first)
            if first in self.seen[2:]:
                self._later_committed.set()
        return reply


def test_a_later_batch_committed_before_an_earlier_failed_one_does_not_move_the_cursor(pair):
    assert PIPELINE_DEPTH >= 2, "this scenario needs two batches on the wire"
    seed_cogent_house(pair.local, days=2)
    config = pair.config(pushlimit=500)
    remote = config.enabled_remotes[0]
    engine = make_engine(config.localurl)
    client = SecondBatchFails(remote)
    try:
        report = None
        sync = RemoteSync(config, remote, engine, client=client)
        try:
            report = sync.run()
        except RemoteUnavailable as exc:
            assert "injected" in str(exc)
        assert report is None, "the cycle must fail with its second batch"
        first, second, third = client.seen[:3]
        assert second not in client.committed
        assert client.committed[:2] == [first, third]  # the third got through, out of order
        cursor = LocalStore(engine).cursor(remote.name, "Reading")
        assert 0 < cursor <= 500  # only the first batch is acknowledged
    finally:
        client.close()
        engine.dispose()
    remote_engine = make_engine(pair.remote)
    try:
        before = count(remote_engine, Reading)
        assert 500 <= before <= 1000  # the first and third batches are there
        [report] = push_once(config)  # the next cycle sends the second batch again, and on
        assert report.ok, report.error
        assert report.streams["Reading"].unchanged >= 500  # …the third: already there
    finally:
        remote_engine.dispose()
    assert_same(pair.local, pair.remote)
