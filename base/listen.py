"""Record readings that arrive as text lines, on a loopback TCP port or on stdin.

Line formats (docs/INGEST.md has the full description):

* native: ``NODE TYPE VALUE [TIME]`` — ``TYPE`` a sensor type id (``0``) or
  code (``T``); ``TIME`` ISO-8601 (``2026-01-01T12:00:00.25Z``; no offset
  means UTC) or Unix epoch seconds; default: when the line arrived.
* emonhub: ``NODE V1 V2 …`` for a node with a ``node.<id> = T,RH,BAT`` mapping
  in the ``[listen]`` section; stamped when the line arrived.
* blank lines and lines starting with ``#`` are ignored.

Acknowledgement: after each commit the listener answers ``OK <n>`` on the
connection (on stdout with ``--ack`` in stdin mode), meaning every line up to
line ``n`` of that connection is either stored or was answered with
``ERR <line> <reason>``. A client that loses the connection re-sends from
line ``n + 1``; readings already stored are skipped by natural key, so
re-sending is harmless. Lines are committed every ``batch_lines`` lines or
``batch_seconds`` seconds, whichever comes first, and on shutdown (EOF,
SIGTERM, SIGINT).
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import logging
import math
import os
import re
import signal
import stat
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine, Table, select
from sqlalchemy.exc import DataError, IntegrityError

from base.db import write_engine
from base.errors import ConfigError
from base.ingest import (
    READING,
    IngestError,
    insert_ignoring_duplicates,
    resolve_sensor_type,
    sensor_type_ids,
)
from models import Node

log = logging.getLogger("cogent.listen")

SECTION = "listen"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6544
FORMATS = ("auto", "native", "emonhub")
UNKNOWN_NODES = ("create", "reject")
MAX_LINE = 4096
MAX_NODE_ID = 2**31 - 1
FUTURE_SLACK = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1)  # MySQL DATETIME cannot even hold years before 1000
ACK_BUFFER_LIMIT = 1 << 20
_NODE_KEY = re.compile(r"^node\.(\d+)$")

# One position of an emonhub frame: (sensor type, scale), or None to ignore the value.
FieldSpec = tuple[str, float] | None


@dataclass(frozen=True)
class ListenConfig:
    """The ``[listen]`` section: where to listen, how to read lines, when to commit."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    format: str = "auto"
    unknown_nodes: str = "create"
    batch_lines: int = 100
    batch_seconds: float = 1.0
    mapping: Mapping[int, tuple[FieldSpec, ...]] = field(default_factory=dict)


def parse_mapping_value(key: str, raw: str) -> tuple[FieldSpec, ...]:
    """``T,RH,-,BAT*0.001`` → ``(("T", 1.0), ("RH", 1.0), None, ("BAT", 0.001))``."""
    fields: list[FieldSpec] = []
    for token in raw.split(","):
        token = token.strip()
        if token in ("", "-"):
            fields.append(None)
            continue
        code, _, scale_raw = token.partition("*")
        scale = 1.0
        if scale_raw:
            try:
                scale = float(scale_raw)
            except ValueError:
                scale = math.nan
            if not math.isfinite(scale):
                raise ConfigError(
                    f"= {raw!r}: scale {scale_raw!r} is not a number (write e.g. T*0.01)",
                    section=SECTION,
                    key=key,
                )
        fields.append((code.strip(), scale))
    if all(f is None for f in fields):
        raise ConfigError(
            f"= {raw!r} maps no value; list sensor types, e.g. T,RH,BAT", section=SECTION, key=key
        )
    return tuple(fields)


def parse_listen_section(parser: configparser.ConfigParser) -> ListenConfig:
    """Validate the ``[listen]`` section of an already-read configuration (defaults if absent)."""
    if not parser.has_section(SECTION):
        return ListenConfig()
    sec = parser[SECTION]
    cfg = ListenConfig()
    mapping: dict[int, tuple[FieldSpec, ...]] = {}
    for key, raw in sec.items():
        value = raw.strip()
        m = _NODE_KEY.match(key)
        if m:
            node = int(m.group(1))
            if node > MAX_NODE_ID:
                raise ConfigError(f"node id {node} is too large", section=SECTION, key=key)
            mapping[node] = parse_mapping_value(key, value)
        elif key == "host":
            cfg = replace(cfg, host=value or DEFAULT_HOST)
        elif key == "port":
            cfg = replace(cfg, port=_int(key, value, 0, 65535))
        elif key == "format":
            cfg = replace(cfg, format=_choice(key, value, FORMATS))
        elif key == "unknown_nodes":
            cfg = replace(cfg, unknown_nodes=_choice(key, value, UNKNOWN_NODES))
        elif key == "batch_lines":
            cfg = replace(cfg, batch_lines=_int(key, value, 1, 100_000))
        elif key == "batch_seconds":
            cfg = replace(cfg, batch_seconds=_float(key, value, 0.01, 3600))
        else:
            raise ConfigError(
                f"unknown key {key!r}; valid keys are: batch_lines, batch_seconds, format, "
                f"host, node.<id>, port, unknown_nodes",
                section=SECTION,
                key=key,
            )
    return replace(cfg, mapping=mapping)


def load_listen_config(path: str | os.PathLike[str]) -> ListenConfig:
    """The ``[listen]`` section of ``path`` (usually synchronise.conf); defaults if absent."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = Path(path).read_text(encoding="utf-8")
        parser.read_string(text, source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from exc
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse configuration: {exc}") from exc
    return parse_listen_section(parser)


def _int(key: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"= {raw!r} is not a whole number", section=SECTION, key=key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"= {value} is out of range; use {lo}..{hi}", section=SECTION, key=key)
    return value


def _float(key: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"= {raw!r} is not a number", section=SECTION, key=key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"= {raw} is out of range; use {lo:g}..{hi:g}", section=SECTION, key=key)
    return value


def _choice(key: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw.lower() not in choices:
        raise ConfigError(f"= {raw!r} is not one of {', '.join(choices)}", section=SECTION, key=key)
    return raw.lower()


# --------------------------------------------------------------------------- parsing lines


class BadLine(ValueError):
    """A line that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Record:
    node: int
    type: int
    value: float
    time: datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time(raw: str, now: datetime) -> datetime:
    """ISO-8601 (offset converted to UTC, none means UTC) or Unix epoch seconds → naive UTC."""
    try:
        if re.fullmatch(r"[+-]?\d+(\.\d+)?", raw):
            secs = float(raw)
            when = datetime(1970, 1, 1) + timedelta(microseconds=round(secs * 1_000_000))
        else:
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            when = parsed
    except (ValueError, OverflowError):
        raise BadLine(
            f"time {raw!r} is neither ISO-8601 (2026-01-01T12:00:00Z) nor epoch seconds"
        ) from None
    if when < EARLIEST:
        raise BadLine(f"time {raw!r} is before {EARLIEST.year}")
    if when > now + FUTURE_SLACK:
        raise BadLine(f"time {raw!r} is more than a day in the future ({when.isoformat()} UTC)")
    return when


class LineParser:
    """Turns one text line into readings, or raises :class:`BadLine` saying why."""

    def __init__(
        self,
        catalogue: Mapping[int, str],
        mapping: Mapping[int, tuple[FieldSpec, ...]] | None = None,
        fmt: str = "auto",
        clock: Callable[[], datetime] = utcnow,
    ):
        if fmt not in FORMATS:
            raise ConfigError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.catalogue = dict(catalogue)
        self.format = fmt
        self.clock = clock
        self.mapping: dict[int, tuple[tuple[int, float] | None, ...]] = {}
        for node, specs in (mapping or {}).items():
            resolved: list[tuple[int, float] | None] = []
            for spec in specs:
                if spec is None:
                    resolved.append(None)
                    continue
                try:
                    resolved.append((resolve_sensor_type(spec[0], self.catalogue), spec[1]))
                except IngestError as exc:
                    raise ConfigError(str(exc), section=SECTION, key=f"node.{node}") from None
            self.mapping[node] = tuple(resolved)

    def parse(self, line: str) -> list[Record]:
        text = line.strip()
        if not text or text.startswith("#"):
            return []
        fields = text.split()
        node = _node_id(fields[0])
        if self.format == "emonhub" or (self.format == "auto" and node in self.mapping):
            return self._emonhub(node, fields[1:])
        return [self._native(node, fields[1:])]

    def _native(self, node: int, rest: list[str]) -> Record:
        if not 2 <= len(rest) <= 4:
            raise BadLine(f"expected 'NODE TYPE VALUE [TIME]', got {len(rest) + 1} fields")
        try:
            tid = resolve_sensor_type(rest[0], self.catalogue)
        except IngestError as exc:
            raise BadLine(str(exc)) from None
        value = _value(rest[1])
        now = self.clock()
        # Three or four fields after the value would be "2026-01-01 12:00:00": an ISO time
        # written with a space.
        when = parse_time(" ".join(rest[2:]), now) if len(rest) > 2 else now
        return Record(node, tid, value, when)

    def _emonhub(self, node: int, values: list[str]) -> list[Record]:
        specs = self.mapping.get(node)
        if specs is None:
            raise BadLine(f"node {node} has no node.{node} mapping in [{SECTION}]")
        if len(values) != len(specs):
            raise BadLine(f"node {node} is mapped to {len(specs)} values, got {len(values)}")
        now = self.clock()
        records = []
        for spec, raw in zip(specs, values, strict=True):
            if spec is None:
                continue
            tid, scale = spec
            value = _value(raw)
            if scale != 1.0:
                # 2137 * 0.01 is 21.370000000000001 in binary; store what the sender meant.
                value = float(f"{value * scale:.12g}")
            records.append(Record(node, tid, value, now))
        return records


def _node_id(raw: str) -> int:
    if not raw.isdigit():
        raise BadLine(f"node id {raw!r} is not a whole number")
    node = int(raw)
    if node > MAX_NODE_ID:
        raise BadLine(f"node id {node} is too large")
    return node


def _value(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BadLine(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise BadLine(f"value {raw!r} is not a finite number")
    return value


# --------------------------------------------------------------------------- storing


class Recorder:
    """Writes readings in one transaction per batch, resolving each node's location.

    A node id the database has never seen is created with no location (as
    Cogent-house's logger did: an installer places it later) when
    ``unknown_nodes`` is ``create``; with ``reject`` its lines are refused.
    """

    def __init__(self, engine: Engine, unknown_nodes: str = "create"):
        if unknown_nodes not in UNKNOWN_NODES:
            raise ConfigError(f"unknown_nodes {unknown_nodes!r}: use create or reject")
        self.engine = engine
        self.unknown_nodes = unknown_nodes

    def catalogue(self) -> dict[int, str]:
        with self.engine.connect() as conn:
            return sensor_type_ids(conn)

    def write_isolating(self, records: Sequence[Record]) -> dict[int, str]:
        """Like :meth:`write`, but a record the database refuses is set aside, not retried.

        Such a record (a reference deleted meanwhile, a value the backend cannot
        hold) would otherwise fail its whole batch forever and wedge the
        listener; the rest are then written one by one so only it is lost.
        """
        try:
            return self.write(records)
        except (IntegrityError, DataError) as exc:
            log.warning("batch refused by the database (%s); storing its lines one by one", exc)
        refused: dict[int, str] = {}
        for i, record in enumerate(records):
            try:
                if self.write([record]):
                    refused[i] = f"unknown node {record.node} ([{SECTION}] unknown_nodes = reject)"
            except (IntegrityError, DataError) as exc:
                first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
                refused[i] = f"the database refused it: {first}"
        return refused

    def write(self, records: Sequence[Record]) -> dict[int, str]:
        """Store ``records``; return {index: reason} of those refused. Duplicates are skipped."""
        if not records:
            return {}
        nodes: Table = Node.__table__  # type: ignore[assignment]
        wanted = sorted({r.node for r in records})
        refused: dict[int, str] = {}
        with write_engine(self.engine).begin() as conn:
            located: dict[int, int | None] = {}
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                for row in conn.execute(
                    select(nodes.c.id, nodes.c.locationId).where(nodes.c.id.in_(chunk))
                ):
                    located[int(row.id)] = row.locationId
            unknown = [n for n in wanted if n not in located]
            if unknown and self.unknown_nodes == "create":
                insert_ignoring_duplicates(conn, nodes, [{"id": n} for n in unknown])
                for n in unknown:
                    located[n] = None
                log.info("created node(s) %s with no location", ", ".join(map(str, unknown)))
            rows = []
            for i, r in enumerate(records):
                if r.node not in located:
                    refused[i] = f"unknown node {r.node} ([{SECTION}] unknown_nodes = reject)"
                    continue
                rows.append(
                    {
                        "time": r.time,
                        "nodeId": r.node,
                        "type": r.type,
                        "locationId": located[r.node],
                        "value": r.value,
                    }
                )
            insert_ignoring_duplicates(conn, READING, rows)
        return refused


# --------------------------------------------------------------------------- the listener


@dataclass
class ListenStats:
    lines: int = 0
    bad: int = 0
    readings: int = 0
    commits: int = 0


class _Source:
    """One connection or stdin: counts its lines and receives its acknowledgements."""

    def __init__(self, name: str, send: Callable[[str], None] | None):
        self.name = name
        self.send = send
        self.lineno = 0
        self.acked = 0
        self.partial = b""
        self.skipping = False

    def reply(self, text: str) -> None:
        if self.send is not None:
            try:
                self.send(text + "\n")
            except Exception as exc:  # a client that went away must not stop the others
                log.debug("%s: cannot reply: %s", self.name, exc)
                self.send = None

    def split(self, data: bytes) -> list[bytes | None]:
        """Complete lines in ``data`` (None for a line that was too long)."""
        out: list[bytes | None] = []
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        for chunk in chunks:
            if self.skipping:
                self.skipping = False
                out.append(None)
            else:
                out.append(chunk if len(chunk) <= MAX_LINE else None)
        if len(self.partial) > MAX_LINE:
            self.partial = b""
            self.skipping = True
        return out

    def tail(self) -> list[bytes | None]:
        """What is left at EOF: a last line without a newline."""
        if self.skipping:
            return [None]
        last, self.partial = self.partial, b""
        return [last] if last.strip() else []


@dataclass
class _Item:
    source: _Source
    lineno: int
    records: list[Record]


class Listener:
    """Reads lines from TCP clients or a stream, commits them in batches, acknowledges."""

    def __init__(self, engine: Engine, config: ListenConfig | None = None):
        self.config = config or ListenConfig()
        self.recorder = Recorder(engine, self.config.unknown_nodes)
        self.parser = LineParser(self.recorder.catalogue(), self.config.mapping, self.config.format)
        self.stats = ListenStats()
        self._items: list[_Item] = []
        self._oldest = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._closing = False
        self._flush_now = False
        self._last_report = 0.0
        self.failed = False

    @property
    def max_pending(self) -> int:
        return max(50 * self.config.batch_lines, 1000)

    # ---- called from any thread
    def stop(self) -> None:
        """Finish: stop reading, commit what has been read, acknowledge, return."""
        loop = self._loop
        if loop is not None and self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)

    # ---- inside the event loop
    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._stopping.set)

    def _stop_signals(self) -> None:
        if self._loop is not None and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.remove_signal_handler(sig)

    async def _line(self, source: _Source, raw: bytes | None) -> None:
        source.lineno += 1
        self.stats.lines += 1
        records: list[Record] = []
        try:
            if raw is None:
                raise BadLine(f"line longer than {MAX_LINE} bytes")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadLine("not UTF-8 text") from None
            records = self.parser.parse(text)
        except BadLine as exc:
            self.stats.bad += 1
            shown = "<too long>" if raw is None else raw[:200].decode("utf-8", "replace").strip()
            log.warning("%s line %d skipped: %s: %r", source.name, source.lineno, exc, shown)
            source.reply(f"ERR {source.lineno} {exc}")
        assert self._loop is not None and self._wake is not None and self._room is not None
        if not self._items:
            self._oldest = self._loop.time()
        self._items.append(_Item(source, source.lineno, records))
        if len(self._items) == 1 or len(self._items) >= self.config.batch_lines:
            self._wake.set()  # the first line starts the batch clock; a full batch goes now
        if len(self._items) >= self.max_pending:
            # The database is not keeping up (or is down): stop reading until it does.
            self._room.clear()
            await self._room.wait()

    async def _writer(self) -> None:
        assert self._loop is not None and self._wake is not None and self._room is not None
        backoff = 0.5
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            age = self._loop.time() - self._oldest
            full = len(self._items) >= self.config.batch_lines
            if not (full or self._closing or self._flush_now) and age < self.config.batch_seconds:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.batch_seconds - age)
                continue
            batch, self._items = self._items, []
            self._flush_now = False
            try:
                await self._commit(batch)
                backoff = 0.5
            except Exception as exc:
                self._items = batch + self._items
                self._oldest = self._loop.time()
                if self._closing and backoff > 8:
                    self.failed = True
                    log.error(
                        "giving up at shutdown: %d lines were not stored and not acknowledged "
                        "(%s); their senders must send them again",
                        len(self._items),
                        exc,
                    )
                    self._items = []
                    return
                log.error("cannot store readings (will retry in %.1f s): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._room.set()

    async def _commit(self, batch: list[_Item]) -> None:
        records: list[Record] = []
        owners: list[_Item] = []
        for item in batch:
            records.extend(item.records)
            owners.extend([item] * len(item.records))
        refused = await asyncio.to_thread(self.recorder.write_isolating, records)
        refused_lines: dict[tuple[int, int], str] = {}
        for i, reason in refused.items():
            item = owners[i]
            refused_lines.setdefault((id(item.source), item.lineno), reason)
        stored = len(records) - len(refused)
        self.stats.readings += stored
        self.stats.commits += 1
        self.stats.bad += len(refused_lines)
        done: dict[int, tuple[_Source, int]] = {}
        for item in batch:
            why = refused_lines.pop((id(item.source), item.lineno), "")
            if why:
                log.warning("%s line %d refused: %s", item.source.name, item.lineno, why)
                item.source.reply(f"ERR {item.lineno} {why}")
            done[id(item.source)] = (item.source, item.lineno)
        for source, lineno in done.values():
            source.acked = max(source.acked, lineno)
            source.reply(f"OK {source.acked}")
        log.debug("committed %d readings from %d lines", stored, len(batch))
        assert self._loop is not None
        if self._loop.time() - self._last_report >= 60:
            self._last_report = self._loop.time()
            self._report("so far")

    def _report(self, when: str) -> None:
        s = self.stats
        log.info(
            "%s: %d lines, %d readings stored, %d lines skipped, %d commits",
            when,
            s.lines,
            s.readings,
            s.bad,
            s.commits,
        )

    async def _feed(self, source: _Source, read: Callable[[], Awaitable[bytes]]) -> None:
        """Read chunks with ``read`` until EOF; handle each line."""
        while True:
            data = await read()
            if not data:
                break
            for line in source.split(data):
                await self._line(source, line)
        for line in source.tail():
            await self._line(source, line)

    async def _finish(self, writer_task: asyncio.Task[None]) -> None:
        assert self._wake is not None
        self._closing = True
        self._wake.set()
        await writer_task
        self._report("stopped")

    # ---- public entry points (coroutines)
    async def serve_tcp(
        self,
        host: str | None = None,
        port: int | None = None,
        ready: Callable[[str, int], None] | None = None,
    ) -> ListenStats:
        """Accept clients on ``host:port`` until :meth:`stop` or SIGTERM/SIGINT."""
        self._start()
        stopping = self._stopping
        assert stopping is not None
        host = host or self.config.host
        port = self.config.port if port is None else port
        readers: set[asyncio.Task[None]] = set()
        sources: dict[asyncio.StreamWriter, _Source] = {}

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "client"

            def send(text: str) -> None:
                if writer.is_closing():
                    return
                if writer.transport.get_write_buffer_size() < ACK_BUFFER_LIMIT:
                    writer.write(text.encode())

            source = _Source(name, None if writer.is_closing() else send)
            sources[writer] = source
            task = asyncio.current_task()
            assert task is not None
            readers.add(task)
            log.debug("%s connected", name)
            try:
                await self._feed(source, lambda: reader.read(65536))
                # EOF: commit now so the client's last lines are acknowledged before we close.
                await self._drain_source(source)
            except asyncio.CancelledError:
                pass
            except ConnectionError as exc:
                log.debug("%s: %s", name, exc)
            finally:
                readers.discard(task)
                # When stopping, keep it open: the final commit's OK still has to reach it.
                if not stopping.is_set():
                    writer.close()
                    sources.pop(writer, None)

        writer_task = asyncio.create_task(self._writer())
        try:
            server = await asyncio.start_server(client, host, port)
        except OSError as exc:
            writer_task.cancel()
            self._stop_signals()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        sock = server.sockets[0].getsockname()
        log.info("listening on %s:%d", sock[0], sock[1])
        if ready is not None:
            ready(str(sock[0]), int(sock[1]))
        try:
            await stopping.wait()
        finally:
            server.close()
            for task in list(readers):
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await self._finish(writer_task)
            for writer in list(sources):
                writer.close()
            # Let the final OKs leave before the event loop goes away.
            closing = [w.wait_closed() for w in sources]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
            await server.wait_closed()
            self._stop_signals()
        return self.stats

    async def _drain_source(self, source: _Source) -> None:
        """Wait until every line read from ``source`` is committed (and acknowledged)."""
        assert self._wake is not None
        while source.acked < source.lineno and not self._closing:
            self._flush_now = True
            self._wake.set()
            await asyncio.sleep(0.01)

    async def serve_stream(self, stream: BinaryIO, out: BinaryIO | None = None) -> ListenStats:
        """Read lines from ``stream`` (stdin) until EOF or :meth:`stop`; acks go to ``out``."""
        self._start()
        assert self._stopping is not None

        def send(text: str) -> None:
            assert out is not None
            out.write(text.encode())
            out.flush()

        source = _Source("stdin", send if out is not None else None)
        writer_task = asyncio.create_task(self._writer())
        loop = asyncio.get_running_loop()
        read: Callable[[], Awaitable[bytes]]
        transport: asyncio.BaseTransport | None = None
        mode = os.fstat(stream.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stream.isatty()):
            # Files (and /dev/null) cannot be polled; reading them never blocks for long.
            async def read_file() -> bytes:
                return stream.read(65536) or b""

            read = read_file
        else:
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), stream
            )
            read = lambda: reader.read(65536)  # noqa: E731
        feeding = asyncio.create_task(self._feed(source, read))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({feeding, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            feeding.cancel()
            stopping.cancel()
            await asyncio.gather(feeding, stopping, return_exceptions=True)
            await self._finish(writer_task)
            if transport is not None:
                transport.close()
            self._stop_signals()
        return self.stats


def listen_tcp(
    engine: Engine,
    config: ListenConfig | None = None,
    ready: Callable[[str, int], None] | None = None,
    listener: Listener | None = None,
) -> ListenStats:
    """Run a TCP listener until SIGTERM/SIGINT (or ``listener.stop()``); return its counts."""
    lst = listener or Listener(engine, config)
    return asyncio.run(lst.serve_tcp(ready=ready))


def listen_stream(
    engine: Engine,
    stream: BinaryIO,
    out: BinaryIO | None = None,
    config: ListenConfig | None = None,
    listener: Listener | None = None,
) -> ListenStats:
    """Record the lines of ``stream`` (e.g. ``sys.stdin.buffer``) until EOF or a signal."""
    lst = listener or Listener(engine, config)
    return asyncio.run(lst.serve_stream(stream, out))
