"""One push cycle to one remote: schema check, metadata, then the streams.

The cursor of a stream moves only after the remote has replied 2xx to a batch,
which it does only after committing it; a crash anywhere before that makes
the next cycle send the same rows again, and the remote's upsert by natural
key makes that harmless (replication contract, rules 1 and 2).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from base import __version__
from base.config import Config, RemoteConfig
from base.db import redact
from base.errors import DatabaseUnavailable, RemoteBusy, RemoteRejected, SchemaMismatch
from base.migrate import current_revision, head_revision, schema_advice
from models.protocol import codes
from models.protocol.ack import RejectedRun
from models.sequence import stamp_pending
from push.backoff import retry
from push.client import RemoteClient
from push.clock import describe_offset, skewed
from push.ledger import LocalStore, SetAside, utcnow
from push.metadata import MetadataMapper
from push.streams import STREAMS, Encoded, Reader, Stream, encode
from push.streams import backlog as backlog_counts

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_ATTEMPTS = 3
STAMP_ROUND = 50_000
# Batches on the wire at once: the server decodes and checks one while the database commits
# the other, and the pusher encodes the next meanwhile (docs/BENCHMARKS.md).
PIPELINE_DEPTH = 2


@dataclass
class Sent:
    """What a batch sent, and what became of it."""

    encoded: Encoded
    set_aside: list[SetAside]
    stored: int = 0
    unchanged: int = 0


@dataclass
class StreamReport:
    batches: int = 0
    sent: int = 0
    stored: int = 0
    unchanged: int = 0
    set_aside: int = 0


@dataclass
class RemoteReport:
    remote: str
    ok: bool = False
    error: str | None = None
    streams: dict[str, StreamReport] = field(default_factory=dict)
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    stopped: bool = False
    permanent: bool = False
    failure: type[BaseException] | None = None  # the class of what failed: the exit code
    busy: int = 0  # times the server said it was busy (429/503 + Retry-After) and was waited for

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.streams.values())


class RemoteSync:
    def __init__(
        self,
        config: Config,
        remote: RemoteConfig,
        engine: Engine,
        stop: threading.Event | None = None,
        client: RemoteClient | None = None,
        on_batch: Callable[[str, StreamReport], None] | None = None,
    ):
        self.on_batch = on_batch
        self.config = config
        self.remote = remote
        self.engine = engine
        self.store = LocalStore(engine)
        self.stop = stop or threading.Event()
        self.client = client or RemoteClient(remote)
        self._mapping = threading.Lock()
        self.busy = 0  # times the server said it was busy, this cycle
        self.reader = Reader(engine)

    def close(self) -> None:
        self.client.close()

    def check_in(self) -> dict[str, Any] | None:
        """The authenticated hello: a bad key fails the cycle even with nothing to send, and
        the server records this station's contact, clock and backlog. None from a server
        that predates it."""
        pending = sum(backlog_counts(self.engine, self.store, self.remote.name).values())
        checkin = {
            "host": socket.gethostname(),
            "version": __version__,
            "clock": utcnow().isoformat(),
            "backlog": pending,
            "dialect": "native",
        }
        detail = {"schema": current_revision(self.engine),
                  "set_aside": self.store.rejected_count(self.remote.name)}

        def hello() -> dict[str, Any] | None:
            try:
                return self.client.hello({**checkin, **detail})
            except RemoteRejected as exc:
                if exc.status != 400:
                    raise
                # A server of an older revision refuses fields it does not know: check in
                # without them, so that its answer can say which side to upgrade.
                return self.client.hello(checkin)

        return self._retry(hello, "check-in")

    def check_schema(self) -> str:
        version = self.check_in()
        if version is None:  # an older server: its public version endpoint, and no key check
            version = self._retry(self.client.version, "version")
        remote_rev = version.get("schema") if isinstance(version, dict) else None
        local_rev = current_revision(self.engine)
        head = head_revision()
        if local_rev != head:
            advice = schema_advice(
                local_rev, head, remote_name="this cogent-sync", local_url=redact(self.engine.url)
            )
            raise SchemaMismatch(f"{self.remote.name}: not pushing: {advice}")
        advice = schema_advice(
            local_rev,
            remote_rev,
            remote_name=f"remote {self.remote.name!r}",
            local_url=redact(self.engine.url),
        )
        if advice:
            raise SchemaMismatch(f"{self.remote.name}: not pushing: {advice}")
        return str(remote_rev)

    def run(self) -> RemoteReport:
        report = RemoteReport(self.remote.name)
        self.busy = 0
        started = utcnow()
        t0 = time.monotonic()
        before = (
            self.client.traffic.requests,
            self.client.traffic.bytes_sent,
            self.client.traffic.bytes_received,
        )
        try:
            with local_database_errors(self.engine):
                revision = self.check_schema()
                offset = self.client.clock_offset
                if skewed(offset, self.config.clock_warning):
                    log.warning("%s: this station's clock is %s", self.remote.name,
                                describe_offset(offset, self.config.clock_warning,
                                                self.remote.name))
                state = self.store.remote_state(self.remote.name)
                mapper = MetadataMapper(self.engine, self.store, self.client)
                mapper.sync_active(state.lastMetadataSync if state else None)
                for stream in STREAMS:
                    report.streams[stream.name] = self.push_stream(stream, mapper)
                    if self.stop.is_set():
                        report.stopped = True
                        break
        except Exception as exc:
            report.error = str(exc)
            try:
                self.store.record_attempt(self.remote.name, ok=False, error=report.error)
            except Exception as unrecorded:  # the local database itself may be what failed
                why = str(getattr(unrecorded, "orig", None) or unrecorded).splitlines()
                log.warning(
                    "%s: could not record the failure locally: %s",
                    self.remote.name,
                    why[0] if why else unrecorded.__class__.__name__,
                )
            raise
        finally:
            report.seconds = time.monotonic() - t0
            report.busy = self.busy
            traffic = self.client.traffic
            report.requests = traffic.requests - before[0]
            report.bytes_sent = traffic.bytes_sent - before[1]
            report.bytes_received = traffic.bytes_received - before[2]
        # Metadata of houses that ended after `started` is resent next time; earlier ones are done.
        self.store.record_attempt(
            self.remote.name,
            ok=True,
            revision=revision,
            metadata_synced=None if report.stopped else started,
        )
        report.ok = True
        return report

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        """``fn`` (one request) with the cycle's retries; a busy server is waited for."""
        def on_busy(delay: float, exc: RemoteBusy) -> None:
            self.busy += 1
            log.info("%s: server busy; %s again in %.0f s as it asked", self.remote.name, what,
                     delay)

        return retry(
            fn,
            attempts=BATCH_ATTEMPTS,
            base=self.config.backoff_min / 5,
            cap=self.config.backoff_min,
            stop=self.stop,
            busy_cap=self.config.backoff_max,
            on_busy=on_busy,
            on_retry=lambda n, d, e: log.warning(
                "%s: %s failed (%s); try %d in %.1f s", self.remote.name, what, e, n + 1, d),
        )

    def send_rows(self, stream: Stream, rows: list[Any], mapper: MetadataMapper) -> Sent:
        """Send one batch (from a sender thread, or ``retry``); return what was sent and what
        to set aside.

        Mapping the batch's metadata and sending it are requests like any other: retried
        within the cycle. A remote that says a location or node we think is mapped is
        unknown (by its code) has lost it (its database was rebuilt, or someone deleted the
        row): forget those mappings, map again by natural key and resend once, instead of
        setting the rows aside for good.
        """
        for attempt in (1, 2):
            def build() -> Encoded:
                with self._mapping:  # the mapper is not shared between threads
                    return encode(stream, rows, mapper)

            encoded = self._retry(build, f"{stream.name} metadata")
            set_aside = list(encoded.set_aside)
            if not encoded.count:
                return Sent(encoded, set_aside)
            ack = self._retry(
                functools.partial(self.client.send_batch, encoded.payload), f"{stream.name} batch")
            rejected = [(encoded.rows[i], run) for i, run in ack.rejected_rows()]
            stale = _stale_mappings(rejected)
            if stale and attempt == 1:
                log.warning(
                    "%s: the remote no longer knows %d mapped rows (%s); mapping them again",
                    self.remote.name,
                    len(stale),
                    ", ".join(f"{k} {i}" for k, i in sorted(stale)),
                )
                with self._mapping:
                    mapper.forget(stale)
                continue
            for row, run in rejected:
                set_aside.append(
                    SetAside(stream.name, row.id, row.syncSeq, f"remote: {run.reason}"))
            return Sent(encoded, set_aside, ack.stored, ack.unchanged)
        raise AssertionError("unreachable")

    def push_stream(self, stream: Stream, mapper: MetadataMapper) -> StreamReport:
        """Push a stream from its cursor, ``PIPELINE_DEPTH`` batches on the wire at once.

        Batches are sent concurrently but acknowledged in order: the cursor moves past a
        batch only once it and every batch before it have been committed by the remote.
        When a batch fails, the ones sent after it are waited for and then forgotten; the
        next cycle sends them again, which the remote's upsert makes harmless.
        """
        report = StreamReport()
        limit = self.config.pushlimit
        position = self.store.cursor(self.remote.name, stream.name)
        flights: deque[tuple[list[Any], float, Future[Sent]]] = deque()
        more = True
        with ThreadPoolExecutor(PIPELINE_DEPTH, thread_name_prefix="cogent-send") as senders:
            while True:
                while more and len(flights) < PIPELINE_DEPTH and not self.stop.is_set():
                    rows = self.reader.fetch(stream, position, limit)
                    if len(rows) < limit and stamp_pending(
                        self.engine, stream.name, max(limit, STAMP_ROUND)
                    ):
                        rows = self.reader.fetch(stream, position, limit)
                    more = len(rows) == limit
                    if not rows:
                        break
                    position = rows[-1].syncSeq  # rows come in syncSeq order
                    flight = senders.submit(self.send_rows, stream, rows, mapper)
                    flights.append((rows, time.monotonic(), flight))
                if not flights:
                    break
                rows, t0, oldest = flights.popleft()
                self._acknowledged(stream, rows, oldest.result(), report, t0)
        return report

    def _acknowledged(
        self, stream: Stream, rows: list[Any], sent: Sent, report: StreamReport, t0: float
    ) -> None:
        cursor = rows[-1].syncSeq
        set_aside = sent.set_aside
        self.store.advance(self.remote.name, stream.name, cursor, set_aside)
        report.batches += 1
        report.sent += sent.encoded.count
        report.stored += sent.stored
        report.unchanged += sent.unchanged
        report.set_aside += len(set_aside)
        log.info(
            "%s: %s: sent %d rows (%d set aside) up to seq %d in %.2f s",
            self.remote.name,
            stream.name,
            sent.encoded.count,
            len(set_aside),
            cursor,
            time.monotonic() - t0,
        )
        if set_aside:
            by_id = {row.id: row for row in rows}
            for item in set_aside[:5]:
                log.warning("%s: set aside %s: %s", self.remote.name,
                            describe_row(item.table, by_id.get(item.local_id)), item.reason)
            if len(set_aside) > 5:
                log.warning("%s: … and %d more set aside; 'RestPusher.py status' lists them by "
                            "house, node and sensor type", self.remote.name, len(set_aside) - 5)
        if self.on_batch:
            self.on_batch(stream.name, report)


def describe_row(table: str, row: Any) -> str:
    """A row as people know it: node, sensor type and time (its local id only as a fallback)."""
    if row is None:
        return f"a {table} row"
    when = str(row.time)[:19]
    if table == "Reading":
        return f"a reading of node {row.nodeId}, sensor type {row.type}, at {when}"
    return f"a node state of node {row.nodeId} at {when}"


@contextlib.contextmanager
def local_database_errors(engine: Engine) -> Iterator[None]:
    """The local database failing (locked, gone, full) as a transient error that says so."""
    try:
        yield
    except OperationalError as exc:
        where = f"local database {redact(engine.url)}"
        raise DatabaseUnavailable(f"{where}: {exc.orig or exc}") from exc


def _stale_mappings(rejected: list[tuple[Any, RejectedRun]]) -> set[tuple[str, int]]:
    """(kind, local id) of mappings the remote says it does not know."""
    stale: set[tuple[str, int]] = set()
    for row, run in rejected:
        if run.code == codes.UNKNOWN_LOCATION and getattr(row, "locationId", None):
            stale.add(("location", row.locationId))
        elif run.code == codes.UNKNOWN_NODE:
            stale.add(("node", row.nodeId))
    return stale
