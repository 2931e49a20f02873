"""A base station's clock against the server's: measured from every reply, shown by status
and warned about past clock_warning; rows stamped before 2000 (a Pi that booted without its
clock) are set aside, and flow again through retry once corrected (issue 16, item 6)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from sqlalchemy import select, update

from base.db import make_engine
from models import NodeState, Reading, SyncRejected
from models.base import table_of
from push.retry import Retrier
from push.status import format_status, remote_status
from tests.faultproxy import FaultProxy
from tests.pushkit import T0, count, insert_unchecked, push_once, seed_cogent_house, write_config


def _server_clock_shifted(minutes: float):
    """A responder that forwards, then moves the reply's Date header by ``minutes``."""
    def respond(request: bytes, forward):
        raw = forward()
        if raw is None:
            return None
        head, sep, body = raw.partition(b"\r\n\r\n")
        def shift(m: re.Match[bytes]) -> bytes:
            when = parsedate_to_datetime(m[1].decode()) + timedelta(minutes=minutes)
            return b"date: " + format_datetime(when.astimezone(UTC), usegmt=True).encode()
        return re.sub(rb"(?im)^date: (.*?)$", shift, head) + sep + body
    return respond


def _config(pair, url: str):
    return write_config(pair.dir / "clock.conf", pair.local, {"central": (url, pair.key)})


def test_status_shows_the_offset_and_warns_past_two_minutes(pair):
    seed_cogent_house(pair.local, days=1)
    proxy = FaultProxy(pair.server.url)
    try:
        config = _config(pair, proxy.url)
        engine = make_engine(pair.local)
        in_step = remote_status(config, config.remote("central"), engine)
        assert "clock: in step with central" in format_status(in_step)
        proxy.on("/version/", _server_clock_shifted(-10), times=5)  # we are 10 min ahead
        ahead = remote_status(config, config.remote("central"), engine)
        shown = format_status(ahead)
        assert re.search(r"clock: (9 min 5\d|10 min \d) s ahead of central — WARNING", shown), shown
        assert 595 < ahead.as_json()["clock_offset"] < 602 and ahead.as_json()["clock_skewed"]
        engine.dispose()
    finally:
        proxy.close()


def test_a_cycle_with_a_skewed_clock_logs_a_warning_and_still_pushes(pair, caplog):
    data = seed_cogent_house(pair.local, days=1)
    proxy = FaultProxy(pair.server.url)
    try:
        proxy.on("/sync/hello/", _server_clock_shifted(+30))  # we are 30 min behind
        with caplog.at_level(logging.WARNING, logger="push"):
            [report] = push_once(_config(pair, proxy.url))
        assert report.ok, report.error
        assert report.streams["Reading"].sent == data.readings
        assert any(re.search(r"(29 min 5\d|30 min \d) s behind central — WARNING",
                             r.getMessage()) for r in caplog.records), [
            r.getMessage() for r in caplog.records]
    finally:
        proxy.close()


def test_rows_stamped_before_2000_are_set_aside_and_flow_once_corrected(pair):
    data = seed_cogent_house(pair.local, days=1)
    booted = datetime(1970, 1, 1, 0, 5)  # a Pi's clock before NTP set it
    insert_unchecked(pair.local, [{"nodeId": 101, "type": 0, "time": booted + timedelta(
        minutes=i), "locationId": data.locations[101], "value": 20.0 + i} for i in range(3)])
    engine = make_engine(pair.local)
    with engine.begin() as conn:
        conn.execute(table_of(NodeState).insert().values(nodeId=101, time=booted, seq_num=7))
    config = pair.config()
    [report] = push_once(config)
    assert report.ok, report.error
    assert report.streams["Reading"].set_aside == 3
    assert report.streams["NodeState"].set_aside == 1
    with engine.connect() as conn:
        reasons = set(conn.execute(select(SyncRejected.reason)).scalars())
    assert reasons and all("before 2000" in r and "retry" in r for r in reasons), reasons
    remote = make_engine(pair.remote)
    assert count(remote, Reading) == data.readings
    # The clock is fixed and the rows' times corrected: retry sends them.
    fixed = T0 + timedelta(days=5) - booted  # what the clock was off by
    with engine.begin() as conn:
        for model in (Reading, NodeState):
            wrong = conn.execute(select(model.id, model.time)
                                 .where(model.time < datetime(2000, 1, 1))).all()
            for row_id, when in wrong:
                conn.execute(update(table_of(model)).where(model.id == row_id)
                             .values(time=when + fixed))
    retrier = Retrier(config, config.remote("central"), engine)
    try:
        result = retrier.run(None)
    finally:
        retrier.close()
    assert (result.tried, result.delivered) == (4, 4), result.describe()
    assert count(remote, Reading) == data.readings + 3
    remote.dispose()
    engine.dispose()
