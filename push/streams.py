"""Reading local rows past a cursor and encoding them as a batch.

Rows are read in ``syncSeq`` order, ``pushlimit`` at a time, so memory depends
on the batch size and never on the backlog. Each batch becomes columnar series
(readings grouped per node, one series per sensor type and location; node
states one series per node), the shape that compresses best. Rows that can
never be accepted (no value, NaN, nothing to map them to) are set aside here
instead of being sent.

A batch is sent as ``cogent-batch/2`` (docs/PROTOCOL.md): binary columns of
integers — microsecond times and values as scaled decimal integers where that
is exact — delta-coded, split into byte planes and compressed with LZMA2, about
1.7 bytes per reading on the wire. :class:`BatchPayload` also renders the same
rows as ``cogent-batch/1`` JSON, for servers that predate format 2.
"""

from __future__ import annotations

import logging
import lzma
import math
import operator
import sys
import threading
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Row, String, Table, func, select, type_coerce

from models import NodeState, Reading
from models.base import table_of
from push.store import LocalStore, SetAside

if TYPE_CHECKING:  # push.metadata needs push.client, which needs this module
    from push.metadata import MetadataMapper

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)
FORMAT = "cogent-batch/1"
FORMAT_V2 = "cogent-batch/2"
MAGIC_V2 = b"cogent-batch/2\n"
CONTENT_TYPE_V2 = "application/vnd.cogent-batch"

# Codecs of the format 2 envelope.
CODEC_NONE = 0
CODEC_ZLIB = 1
CODEC_LZMA2 = 2
LZMA2_DICT = 1 << 20  # the decoder's dictionary; the encoder must not use a larger one
LZMA2_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": LZMA2_DICT}]

# Column modes (docs/PROTOCOL.md, "cogent-batch/2").
PLAIN = 0xFF  # integer column: each value as a zigzag varint
IEEE = 0xFF  # value column: raw IEEE-754 doubles in 8 byte planes
MAX_SCALE = 9
_POW10 = [float(10**s) for s in range(MAX_SCALE + 1)]
_INT64 = 1 << 63
_EXACT = 1 << 53
_LITTLE = sys.byteorder == "little"


def to_us(t: datetime | str) -> int:
    """A stored time (a naive UTC datetime, or SQLite's text form of one) → µs since 1970."""
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
        if t.tzinfo is not None:
            t = t.astimezone(UTC).replace(tzinfo=None)
    d = t - EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


@dataclass(frozen=True)
class Stream:
    name: str  # the table name, also the cursor's stream name
    kind: str  # "reading" | "nodestate": the batch's row kind
    key: str  # the batch body's list name

    @property
    def table(self) -> Table:
        model = Reading if self.name == "Reading" else NodeState
        return table_of(model)


READINGS = Stream("Reading", "reading", "readings")
NODE_STATES = Stream("NodeState", "nodestate", "nodestates")
STREAMS = (READINGS, NODE_STATES)


class Reader:
    """Reads one remote's batches of each stream in ``syncSeq`` order.

    A full batch also starts reading (and preparing) the next one in a thread, which the
    next call takes if it asks for exactly that batch. That is safe because stamps only
    grow: the ``limit`` rows after a position, once there are that many, stay the same.
    A short read-ahead could miss rows stamped since, so it is never used. Stamping is the
    caller's (push/sync.py), never the read-ahead's. Each remote has its own reader, so
    two remotes never throw away each other's read-ahead.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._ahead: dict[str, _Ahead] = {}

    def fetch(self, stream: Stream, after: int, limit: int) -> list[Row[Any]]:
        pending = self._ahead.pop(stream.name, None)
        rows: FetchedRows | None = None
        if pending and (pending.after, pending.limit) == (after, limit):
            got = pending.take()
            if got is not None and len(got) == limit:
                rows = got
        if rows is None:
            rows = _query(self.engine, stream, after, limit)
        if len(rows) == limit:
            self._ahead[stream.name] = _Ahead(self.engine, stream, rows[-1].syncSeq, limit)
        return rows


def _query(engine: Engine, stream: Stream, after: int, limit: int) -> FetchedRows:
    t = stream.table
    cols: list[Any] = list(t.c)
    if engine.dialect.name == "sqlite":
        # SQLite keeps times as text: parsing it here (C) beats SQLAlchemy's regex by far.
        cols = [type_coerce(c, String).label("time") if c.name == "time" else c for c in cols]
    with engine.connect() as conn:
        return FetchedRows(
            conn.execute(
                select(*cols).where(t.c.syncSeq > after).order_by(t.c.syncSeq).limit(limit)
            ).all()
        )


class _Ahead:
    """The next batch, read and prepared in a thread while this one is on the wire."""

    def __init__(self, engine: Engine, stream: Stream, after: int, limit: int):
        self.engine = engine
        self.stream = stream
        self.after = after
        self.limit = limit
        self.rows: FetchedRows | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name="cogent-read-ahead", daemon=True).start()

    def _run(self) -> None:
        try:
            rows = _query(self.engine, self.stream, self.after, self.limit)
            if len(rows) == self.limit:
                rows.prepared = prepare(self.stream, rows)
            self.rows = rows
        except Exception as exc:  # the next fetch reads it again and sees the error itself
            log.debug("read-ahead of %s failed: %s", self.stream.name, exc)
        finally:
            self._done.set()

    def take(self) -> FetchedRows | None:
        self._done.wait()
        return self.rows


# --- the batch, in the two forms a server may take ------------------------------------------


@dataclass
class ReadingSeries:
    type: int
    location: int
    rows: list[int] | None  # positions in the group's times, increasing; None: all of them
    values: list[float]
    values_col: bytes = b""  # the values' column, when already encoded


@dataclass
class ReadingGroup:
    """The readings of one (remote) node: the times they were taken at, and a series per
    sensor type and location holding a subset of those times."""

    node: int
    times: list[int]  # µs since 1970
    series: list[ReadingSeries]
    times_col: bytes = b""  # the times' column, when already encoded


@dataclass
class StateSeries:
    node: int
    times: list[int]
    seq: list[int]
    parent: list[int | None]
    rssi: list[int | None]
    localtime: list[int | None]


@dataclass
class BatchPayload:
    readings: list[ReadingGroup] = field(default_factory=list)
    nodestates: list[StateSeries] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """What the batch carries (the pusher sends one stream per batch)."""
        return "reading" if self.readings else "nodestate"

    @property
    def rows(self) -> int:
        return sum(len(s.values) for g in self.readings for s in g.series) + sum(
            len(s.times) for s in self.nodestates)

    def as_json(self) -> dict[str, Any]:
        """The same rows, in the same order, as a ``cogent-batch/1`` document."""
        doc: dict[str, Any] = {"format": FORMAT}
        if self.readings:
            out = []
            for g in self.readings:
                for s in g.series:
                    out.append(
                        {
                            "node": g.node,
                            "type": s.type,
                            "location": s.location,
                            "t": _deltas(
                                g.times if s.rows is None else [g.times[i] for i in s.rows]
                            ),
                            "v": s.values,
                        }
                    )
            doc["readings"] = out
        if self.nodestates:
            doc["nodestates"] = [
                {
                    "node": s.node,
                    "t": _deltas(s.times),
                    "seq": s.seq,
                    "parent": s.parent,
                    "rssi": s.rssi,
                    "localtime": s.localtime,
                }
                for s in self.nodestates
            ]
        return doc

    def binary(self, codec: int = CODEC_LZMA2) -> bytes:
        """The ``cogent-batch/2`` body."""
        raw = self.payload_v2()
        if codec == CODEC_LZMA2:
            packed = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=LZMA2_FILTERS)
        elif codec == CODEC_ZLIB:
            packed = zlib.compress(raw, 6)
        elif codec == CODEC_NONE:
            packed = raw
        else:
            raise ValueError(f"unknown codec {codec}")
        head = bytearray(MAGIC_V2)
        head.append(codec)
        _uvarint(head, len(raw))
        head += zlib.crc32(raw).to_bytes(4, "little")
        return bytes(head) + packed

    def payload_v2(self) -> bytes:
        out = bytearray()
        _uvarint(out, len(self.readings))
        for g in self.readings:
            _svarint(out, g.node)
            m = len(g.times)
            _uvarint(out, m)
            if g.times_col:
                out += g.times_col
            else:
                _int_column(out, g.times)
            _uvarint(out, len(g.series))
            for s in g.series:
                _svarint(out, s.type)
                _svarint(out, s.location)
                if s.rows is None or len(s.rows) == m:
                    out.append(0)
                else:
                    out.append(1)
                    bits = bytearray((m + 7) >> 3)
                    for i in s.rows:
                        bits[i >> 3] |= 1 << (i & 7)
                    out += bits
                if s.values_col:
                    out += s.values_col
                else:
                    _value_column(out, s.values)
        _uvarint(out, len(self.nodestates))
        for ns in self.nodestates:
            _svarint(out, ns.node)
            _uvarint(out, len(ns.times))
            _int_column(out, ns.times)
            _int_column(out, ns.seq)
            _nullable_column(out, ns.parent)
            _nullable_column(out, ns.rssi)
            _nullable_column(out, ns.localtime)
        return bytes(out)


def _deltas(times: Sequence[int]) -> list[int]:
    if not times:
        return []
    return [times[0], *map(operator.sub, times[1:], times[:-1])]


# --- format 2 primitives ---------------------------------------------------------------------


def _uvarint(out: bytearray, x: int) -> None:
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)


def _svarint(out: bytearray, x: int) -> None:
    _uvarint(out, (x << 1) if x >= 0 else ((-x) << 1) - 1)


def _planes(out: bytearray, u: array[Any], width: int) -> None:
    """Byte ``k`` of every value, for k < width: low bytes first, each plane contiguous."""
    if not _LITTLE:
        u.byteswap()
    raw = u.tobytes()
    for k in range(width):
        out += raw[k::8]


def _int_column(out: bytearray, xs: Sequence[int]) -> None:
    """Mode byte w ≤ 8: first value, smallest delta ``base``, then the deltas minus ``base`` in
    w byte planes. Mode 0xFF: each value as a zigzag varint (when deltas do not fit 8 bytes)."""
    n = len(xs)
    if n == 0:
        return
    first = xs[0]
    if n == 1:
        if -_INT64 <= first < _INT64:
            out.append(0)
            _svarint(out, first)
            return
        raise ValueError(f"{first} does not fit 64 bits")
    d = list(map(operator.sub, xs[1:], xs[:-1]))
    base = min(d)
    top = max(d) - base
    width = (top.bit_length() + 7) >> 3
    if width <= 8 and -_INT64 <= first < _INT64 and -_INT64 <= base < _INT64:
        out.append(width)
        _svarint(out, first)
        _svarint(out, base)
        if width:
            _planes(out, array("Q", map(operator.sub, d, repeat(base))), width)
        return
    if not all(-_INT64 <= x < _INT64 for x in xs):
        raise ValueError("an integer column value does not fit 64 bits")
    out.append(PLAIN)
    for x in xs:
        _svarint(out, x)


def _nullable_column(out: bytearray, xs: Sequence[int | None]) -> None:
    if None not in xs:
        out.append(0)
        _int_column(out, xs)  # type: ignore[arg-type]
        return
    present = [x for x in xs if x is not None]
    if not present:
        out.append(1)
        return
    out.append(2)
    bits = bytearray((len(xs) + 7) >> 3)
    for i, x in enumerate(xs):
        if x is not None:
            bits[i >> 3] |= 1 << (i & 7)
    out += bits
    _int_column(out, present)


def _min_scale(v: float) -> int | None:
    for s, p in enumerate(_POW10):
        n = round(v * p)
        if n / p == v:
            return s
    return None


def decimal_scale(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """The smallest s ≤ 9 and integers n with ``n / 10.0**s == v`` exactly for every value
    (and |n| ≤ 2**53, no negative zero), or None. The decoder computes ``n / 10.0**s``."""
    if not values:
        return 0, []
    if 0.0 in values and any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values):
        return None  # -0.0 would come back as 0.0
    try:
        sample = [_min_scale(v) for v in values[:16]]
        if None in sample:
            return None
        for s in range(max(x or 0 for x in sample), MAX_SCALE + 1):
            p = _POW10[s]
            ns = [round(v * p) for v in values]
            if list(map(p.__rtruediv__, ns)) == list(values):
                if max(ns) <= _EXACT and min(ns) >= -_EXACT:
                    return s, ns
                return None
    except (OverflowError, ValueError):  # a value too large for an integer scale
        return None
    return None


def _value_column(out: bytearray, values: Sequence[float]) -> None:
    if not values:
        return  # a column of no values is absent
    scaled = decimal_scale(values)
    if scaled is not None:
        out.append(scaled[0])
        _int_column(out, scaled[1])
        return
    out.append(IEEE)
    _planes(out, array("d", values), 8)


# --- encoding local rows ---------------------------------------------------------------------
#
# Encoding is split in two: ``prepare`` needs only the rows (check values, convert times,
# group and sort into series, encode their columns), ``finish`` needs the remote's id map
# (map each series, assemble the body). ``fetch`` prepares the next batch in a thread while
# the server is busy with this one, so the pusher's own work is mostly off the critical path.


@dataclass
class Encoded:
    payload: BatchPayload
    rows: list[Row[Any]] = field(default_factory=list)  # body order: index → local row
    set_aside: list[SetAside] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass
class _LocalSeries:
    """Readings of one local (node, type, location), in time order, columns pre-encoded."""

    node: int
    type: int
    location: int | None
    times: list[int]
    values: list[float]
    rows: list[Row[Any]]
    repeated_times: bool
    times_col: bytes = b""
    values_col: bytes = b""


@dataclass
class Prepared:
    stream: Stream
    count: int
    aside: list[tuple[Row[Any], str]] = field(default_factory=list)  # rows with bad values
    series: list[_LocalSeries] = field(default_factory=list)  # readings
    states: dict[int, list[tuple[int, int, Row[Any]]]] = field(default_factory=dict)
    nodes: set[int] = field(default_factory=set)
    locations: set[int] = field(default_factory=set)
    sensor_types: set[int] = field(default_factory=set)


class FetchedRows(list[Any]):
    """A fetched batch, possibly with its :class:`Prepared` form attached."""

    prepared: Prepared | None = None


def encode(stream: Stream, rows: Sequence[Row[Any]], mapper: MetadataMapper) -> Encoded:
    prepared = getattr(rows, "prepared", None)
    if prepared is None or prepared.stream is not stream or prepared.count != len(rows):
        prepared = prepare(stream, rows)
    return finish(prepared, mapper)


def prepare(stream: Stream, rows: Sequence[Row[Any]]) -> Prepared:
    if stream is READINGS:
        return _prepare_readings(rows)
    return _prepare_node_states(rows)


def finish(prepared: Prepared, mapper: MetadataMapper) -> Encoded:
    if prepared.stream is READINGS:
        mapper.ensure(
            locations=prepared.locations,
            nodes=prepared.nodes,
            sensor_types=prepared.sensor_types,
        )
        return _finish_readings(prepared, mapper)
    mapper.ensure(nodes=prepared.nodes)
    return _finish_node_states(prepared, mapper)


def _aside(stream: Stream, row: Row[Any], reason: str) -> SetAside:
    return SetAside(stream.name, row.id, row.syncSeq, reason)


def _reading_target(
    mapper: MetadataMapper, node: int, kind: int, location: int | None
) -> tuple[int, int] | str:
    """(remote node, remote location) for readings of this node, type and location, or why
    they cannot be sent."""
    if location is None:
        return "reading has no locationId"
    loc = mapper.remote_id("location", location)
    if loc is None:
        return mapper.reason_unmapped("location", location)
    remote_node = mapper.remote_id("node", node)
    if remote_node is None:
        return mapper.reason_unmapped("node", node)
    if mapper.remote_id("sensortype", kind) is None:
        return mapper.reason_unmapped("sensortype", kind)
    return remote_node, loc


def _value_problem(value: Any) -> str | None:
    if value is None:
        return "value is missing (NULL)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"value {value!r} is not a number"
    try:
        if not math.isfinite(value):
            return f"value is {value} (not a finite number)"
    except OverflowError:
        return f"value {value} is out of range"
    return None


def _column_bytes(write: Any, values: Sequence[Any]) -> bytes:
    out = bytearray()
    write(out, values)
    return bytes(out)


def _prepare_readings(rows: Sequence[Row[Any]]) -> Prepared:
    prepared = Prepared(READINGS, len(rows))
    if not rows:
        return prepared
    fields = rows[0]._fields
    i_value, i_node, i_type, i_loc, i_time = (
        fields.index(c) for c in ("value", "nodeId", "type", "locationId", "time")
    )
    prepared.nodes = set(map(operator.itemgetter(i_node), rows))
    prepared.sensor_types = set(map(operator.itemgetter(i_type), rows))
    prepared.locations = set(map(operator.itemgetter(i_loc), rows)) - {None}
    grouped: dict[tuple[int, int, int | None], list[tuple[int, float, Row[Any]]]] = {}
    times_us: dict[Any, int] = {}  # the readings of one packet share their time
    isfinite = math.isfinite
    for r in rows:
        value = r[i_value]
        if type(value) is not float or not isfinite(value):
            problem = _value_problem(value)
            if problem:
                prepared.aside.append((r, problem))
                continue
            value = float(value)
        key = (r[i_node], r[i_type], r[i_loc])
        t = r[i_time]
        us = times_us.get(t)
        if us is None:
            us = times_us[t] = to_us(t)
        members = grouped.get(key)
        if members is None:
            members = grouped[key] = []
        members.append((us, value, r))
    by_time = operator.itemgetter(0)
    for (node, kind, loc), members in grouped.items():
        members.sort(key=by_time)
        ts = [m[0] for m in members]
        values = [m[1] for m in members]
        prepared.series.append(
            _LocalSeries(
                node,
                kind,
                loc,
                ts,
                values,
                [m[2] for m in members],
                any(map(operator.eq, ts[1:], ts[:-1])),
                _column_bytes(_int_column, ts),
                _column_bytes(_value_column, values),
            )
        )
    return prepared


def _finish_readings(prepared: Prepared, mapper: MetadataMapper) -> Encoded:
    payload = BatchPayload()
    out = Encoded(payload)
    out.set_aside = [_aside(READINGS, r, why) for r, why in prepared.aside]
    by_node: dict[int, list[tuple[int, int, _LocalSeries]]] = {}
    for ls in prepared.series:
        target = _reading_target(mapper, ls.node, ls.type, ls.location)
        if isinstance(target, str):
            out.set_aside.extend(_aside(READINGS, r, target) for r in ls.rows)
            continue
        node, loc = target
        by_node.setdefault(node, []).append((ls.type, loc, ls))
    for node, node_series in by_node.items():
        shared = []
        for kind, loc, ls in node_series:
            if ls.repeated_times:  # a group of its own, its times as they are
                group = ReadingGroup(node, ls.times, [], ls.times_col)
                group.series.append(ReadingSeries(kind, loc, None, ls.values, ls.values_col))
                payload.readings.append(group)
                out.rows.extend(ls.rows)
            else:
                shared.append((kind, loc, ls))
        if not shared:
            continue
        first = shared[0][2]
        if all(s[2].times == first.times for s in shared):
            group = ReadingGroup(node, first.times, [], first.times_col)
            for kind, loc, ls in shared:
                group.series.append(ReadingSeries(kind, loc, None, ls.values, ls.values_col))
                out.rows.extend(ls.rows)
        else:
            times = sorted({t for s in shared for t in s[2].times})
            position = {t: i for i, t in enumerate(times)}
            group = ReadingGroup(node, times, [])
            for kind, loc, ls in shared:
                at = None if len(ls.times) == len(times) else [position[t] for t in ls.times]
                group.series.append(ReadingSeries(kind, loc, at, ls.values, ls.values_col))
                out.rows.extend(ls.rows)
        payload.readings.append(group)
    return out


def _prepare_node_states(rows: Sequence[Row[Any]]) -> Prepared:
    prepared = Prepared(NODE_STATES, len(rows))
    if not rows:
        return prepared
    fields = rows[0]._fields
    i_node, i_time, i_seq = (fields.index(c) for c in ("nodeId", "time", "seq_num"))
    prepared.nodes = set(map(operator.itemgetter(i_node), rows))
    series = prepared.states
    for r in rows:
        local = r[i_node]
        members = series.get(local)
        if members is None:
            members = series[local] = []
        members.append((to_us(r[i_time]), r[i_seq], r))
    for members in series.values():
        members.sort(key=operator.itemgetter(0, 1))
    return prepared


def _finish_node_states(prepared: Prepared, mapper: MetadataMapper) -> Encoded:
    payload = BatchPayload()
    out = Encoded(payload)
    for local, members in prepared.states.items():
        node = mapper.remote_id("node", local)
        if node is None:
            why = mapper.reason_unmapped("node", local)
            out.set_aside.extend(_aside(NODE_STATES, m[2], why) for m in members)
            continue
        local_rows = [m[2] for m in members]
        fields = local_rows[0]._fields
        i_parent, i_rssi, i_localtime = (fields.index(c) for c in ("parent", "rssi", "localtime"))
        payload.nodestates.append(
            StateSeries(
                node=node,
                times=[m[0] for m in members],
                seq=[m[1] for m in members],
                parent=[m[i_parent] for m in local_rows],
                rssi=[m[i_rssi] for m in local_rows],
                localtime=[m[i_localtime] for m in local_rows],
            )
        )
        out.rows.extend(local_rows)
    return out


def backlog(engine: Engine, store: LocalStore, remote: str) -> dict[str, int]:
    """Rows not yet acknowledged by ``remote``, per stream (unstamped rows included)."""
    out = {}
    with engine.connect() as conn:
        for stream in STREAMS:
            t = stream.table
            cursor = store.cursor(remote, stream.name)
            ahead = conn.execute(
                select(func.count()).select_from(t).where(t.c.syncSeq > cursor)
            ).scalar_one()
            unstamped = conn.execute(
                select(func.count()).select_from(t).where(t.c.syncSeq.is_(None))
            ).scalar_one()
            out[stream.name] = int(ahead) + int(unstamped)
    return out
