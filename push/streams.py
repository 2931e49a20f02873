"""Reading local rows past a cursor and turning them into a batch.

Rows are read in ``syncSeq`` order, ``pushlimit`` at a time, so memory depends
on the batch size and never on the backlog. Each batch becomes columnar series
(readings grouped per node, one series per sensor type and location; node
states one series per node), the shape that compresses best. Rows that can
never be accepted (no value, NaN, nothing to map them to) are set aside here
instead of being sent.

A batch is sent as ``cogent-batch/2`` (docs/PROTOCOL.md, written by
:mod:`models.protocol.encode`): binary columns of integers — microsecond times and
values as scaled decimal integers where that is exact — delta-coded, split into byte
planes and compressed with LZMA2, about 1.7 bytes per reading on the wire.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Row, String, Table, func, select, type_coerce

from models import NodeState, Reading
from models.base import table_of
from models.protocol.encode import (
    BatchPayload,
    ReadingGroup,
    StateColumns,
    ValueSeries,
    int_column,
    value_column,
)
from models.sql import to_micros
from push.clock import BEFORE_2000, EARLIEST_US
from push.ledger import LocalStore, SetAside

if TYPE_CHECKING:  # push.metadata needs push.client, which needs this module
    from push.metadata import MetadataMapper

log = logging.getLogger(__name__)
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
    caller's (push/cycle.py), never the read-ahead's. Each remote has its own reader, so
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
        return None  # NULL is data, sent as NULL
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
            value = None if value is None else float(value)
        key = (r[i_node], r[i_type], r[i_loc])
        t = r[i_time]
        us = times_us.get(t)
        if us is None:
            us = times_us[t] = to_micros(t)
        if us < EARLIEST_US:
            prepared.aside.append((r, BEFORE_2000))
            continue
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
                _column_bytes(int_column, ts),
                _column_bytes(value_column, values),
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
                group.series.append(ValueSeries(kind, loc, None, ls.values, ls.values_col))
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
                group.series.append(ValueSeries(kind, loc, None, ls.values, ls.values_col))
                out.rows.extend(ls.rows)
        else:
            times = sorted({t for s in shared for t in s[2].times})
            position = {t: i for i, t in enumerate(times)}
            group = ReadingGroup(node, times, [])
            for kind, loc, ls in shared:
                at = None if len(ls.times) == len(times) else [position[t] for t in ls.times]
                group.series.append(ValueSeries(kind, loc, at, ls.values, ls.values_col))
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
        us = to_micros(r[i_time])
        if us < EARLIEST_US:
            prepared.aside.append((r, BEFORE_2000))
            continue
        members.append((us, r[i_seq], r))
    for members in series.values():
        members.sort(key=operator.itemgetter(0, 1))
    return prepared


def _finish_node_states(prepared: Prepared, mapper: MetadataMapper) -> Encoded:
    payload = BatchPayload()
    out = Encoded(payload)
    out.set_aside = [_aside(NODE_STATES, r, why) for r, why in prepared.aside]
    for local, members in prepared.states.items():
        if not members:
            continue  # every row of it was set aside
        node = mapper.remote_id("node", local)
        if node is None:
            why = mapper.reason_unmapped("node", local)
            out.set_aside.extend(_aside(NODE_STATES, m[2], why) for m in members)
            continue
        local_rows = [m[2] for m in members]
        fields = local_rows[0]._fields
        i_parent, i_rssi, i_localtime = (fields.index(c) for c in ("parent", "rssi", "localtime"))
        payload.nodestates.append(
            StateColumns(
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
