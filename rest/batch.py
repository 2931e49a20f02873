"""``POST /rest/sync/batch/``: a decoded batch, validated per row, applied at once.

Both formats become the same :class:`Batch` (:mod:`models.protocol.decode`). The whole
batch is parsed and checked before anything is written; rows that can never be accepted
are reported with their reason, the rest are applied in one transaction. Existing rows
for the batch's keys are read first (one index range per node and type), so only new or
changed rows are written — with the native upsert, which also settles a race with a
concurrent copy of the same batch — and a re-sent batch writes nothing and reports
``stored: 0``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from models import SensorType
from models.protocol import codes
from models.protocol.ack import MAX_RUNS, Ack, RejectedRun, merge_runs
from models.protocol.batch import BatchTooLarge, MalformedBatch
from models.protocol.decode import (
    _INT32,
    _INT64,
    Batch,
    decode_v2,
    parse_v1,
)
from rest.authz import REPLACES_FOREIGN_READING, WriteRule
from rest.body import BinaryBatch
from rest.bulkwrite import NODESTATES, READINGS, Row, RowWriter, Stream
from rest.daycache import invalidate
from rest.errors import ApiError, bad_request
from rest.keys import Principal
from rest.times import from_micros, to_micros, utcnow

DAY_US = 86_400_000_000
_GROUPS_PER_QUERY = 50
DEFAULT_WRITER = RowWriter()  # scripts and tests; the server passes its own


Rejected = RejectedRun  # a run of rows of one kind refused for one reason
Problem = tuple[str, str]  # (code, reason): models.protocol.codes, and words for people


@dataclass
class BatchResult:
    stored: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def reject(self, kind: str, index: int, problem: Problem, count: int = 1) -> None:
        self.rejected.append(RejectedRun(kind, index, count, *problem))
        if len(self.rejected) > 2 * MAX_RUNS:  # merging runs cannot get under the cap either
            self.rejected = list(merge_runs(self.rejected))

    def ack(self, digest: str, rows: int) -> Ack:
        """The acknowledgement of a batch of ``rows`` rows whose body had ``digest``;
        :class:`TooManyRuns` when its rejections need more than MAX_RUNS runs."""
        return Ack(digest, rows, self.stored, self.unchanged, merge_runs(self.rejected))


def parse_batch(body: Any) -> Batch:
    """A parsed JSON body (``cogent-batch/1``) or a :class:`BinaryBatch` (``cogent-batch/2``);
    a malformed one is a 400, one too large a 413."""
    try:
        if isinstance(body, BinaryBatch):
            return decode_v2(body.data, body.limit)
        return parse_v1(body)
    except MalformedBatch as exc:
        raise bad_request(str(exc), valid=exc.valid) from None
    except BatchTooLarge as exc:
        raise ApiError(413, str(exc)) from None


# --- validation: per series (references, ownership) and per row (time, values) --------------


def _time_problem(us: int, latest: int) -> Problem | None:
    if us < 0:
        return codes.BAD_TIME, "time is before 1970"
    if us > latest:
        return codes.BAD_TIME, "time is more than a day in the future"
    return None


def _value_problem(v: Any) -> Problem | None:
    if v is None:
        return None  # NULL is data: the logger could not read the sensor (Cogent-house kept it)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return codes.BAD_VALUE, f"value {v!r} is not a number"
    if isinstance(v, float):
        if math.isnan(v):
            return codes.BAD_VALUE, "value is NaN"
        if math.isinf(v):
            return codes.BAD_VALUE, "value is infinite"
    elif abs(v) > 1e308:
        return codes.BAD_VALUE, "value is out of range"
    return None


def _opt_int_problem(name: str, v: Any, bound: int) -> Problem | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not -bound <= v < bound:
        return codes.BAD_VALUE, f"{name} {v!r} is not an integer in range"
    return None


def _reading_series_problems(rule: WriteRule, batch: Batch) -> dict[int, Problem]:
    """Series index → why all of its rows are refused (unknown references, the write rule)."""
    types = {s.type for s in batch.readings}
    facts = rule.lookup({s.node for s in batch.readings}, {s.location for s in batch.readings})
    known_types = set(
        rule.conn.execute(select(SensorType.id).where(SensorType.id.in_(types))).scalars()
    )
    problems: dict[int, Problem] = {}
    for i, s in enumerate(batch.readings):
        node = facts.nodes.get(s.node)
        if node is None:
            problems[i] = codes.UNKNOWN_NODE, _unknown_node(s.node)
        elif s.type not in known_types:
            problems[i] = codes.UNKNOWN_TYPE, (
                f"unknown sensor type {s.type}: not in this server's catalogue; an admin key "
                f"adds it (POST /rest/sensortype/)"
            )
        elif s.location not in facts.locations:
            problems[i] = codes.UNKNOWN_LOCATION, (
                f"unknown location {s.location}: map it first (POST /rest/sync/map/)")
        else:
            why = rule.reading_refusal(s.node, node, s.location, facts.locations[s.location])
            if why:
                problems[i] = why
    return problems


def _unknown_node(node: int) -> str:
    return f"unknown node {node}: map it first (POST /rest/sync/map/)"


def _state_series_problems(rule: WriteRule, batch: Batch) -> dict[int, Problem]:
    facts = rule.lookup({s.node for s in batch.nodestates}, set())
    problems: dict[int, Problem] = {}
    for i, s in enumerate(batch.nodestates):
        node = facts.nodes.get(s.node)
        if node is None:
            problems[i] = codes.UNKNOWN_NODE, _unknown_node(s.node)
        else:
            why = rule.node_refusal(s.node, node)
            if why:
                problems[i] = why
    return problems


def _finite_floats(v: list[Any]) -> bool:
    """True when every element is a float and none is NaN or infinite (a quick whole-list test;
    False sends the list through the per-row checks)."""
    if not all(type(x) is float for x in v):
        return False
    return math.isfinite(sum(v))


def _ints_in_range(column: list[Any], bound: int) -> bool:
    """Every element None or an int in [-bound, bound) (a quick whole-column test)."""
    present = [x for x in column if x is not None]
    if not all(type(x) is int for x in present):
        return False
    return not present or (min(present) >= -bound and max(present) < bound)


# Rows as tuples: readings (nodeId, type, µs, locationId, value); node states
# (nodeId, µs, seq_num, parent, rssi, localtime). The natural key is the first three.


def _valid_readings(
    batch: Batch, problems: dict[int, Problem], latest: int, result: BatchResult
) -> Iterator[Row]:
    for i, s in enumerate(batch.readings):
        t = s.t
        if not t:
            continue
        problem = problems.get(i)
        if problem:
            result.reject("reading", s.first, problem, len(t))
            continue
        if (s.clean or _finite_floats(s.v)) and min(t) >= 0 and max(t) <= latest:
            yield from zip(repeat(s.node), repeat(s.type), t, repeat(s.location), s.v)
            continue
        for j, (us, v) in enumerate(zip(t, s.v, strict=True)):
            reason = _time_problem(us, latest) or _value_problem(v)
            if reason:
                result.reject("reading", s.first + j, reason)
                continue
            yield (s.node, s.type, us, s.location, None if v is None else float(v))


def _valid_states(
    batch: Batch, problems: dict[int, Problem], latest: int, result: BatchResult
) -> Iterator[Row]:
    for i, s in enumerate(batch.nodestates):
        problem = problems.get(i)
        if not s.t:
            continue
        if (
            not problem
            and min(s.t) >= 0
            and max(s.t) <= latest
            and None not in s.seq
            and _ints_in_range(s.seq, _INT32)
            and _ints_in_range(s.parent, _INT32)
            and _ints_in_range(s.rssi, _INT32)
            and _ints_in_range(s.localtime, _INT64)
        ):
            yield from zip(repeat(s.node), s.t, s.seq, s.parent, s.rssi, s.localtime)
            continue
        rows = zip(s.t, s.seq, s.parent, s.rssi, s.localtime, strict=True)
        for j, (us, seq, parent, rssi, localtime) in enumerate(rows):
            reason = (
                problem
                or _time_problem(us, latest)
                or ((codes.BAD_VALUE, "seq is missing (null)") if seq is None else None)
                or _opt_int_problem("seq", seq, _INT32)
                or _opt_int_problem("parent", parent, _INT32)
                or _opt_int_problem("rssi", rssi, _INT32)
                or _opt_int_problem("localtime", localtime, _INT64)
            )
            if reason:
                result.reject("nodestate", s.first + j, reason)
                continue
            yield (s.node, us, seq, parent, rssi, localtime)


# --- applying: read what exists for these keys, write only what is new or different ---------


def _existing(
    conn: Connection, stream: Stream, keys: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Stored rows among ``keys`` (times in µs): natural key → replaced columns."""
    t = stream.table
    g = len(stream.group)
    ranges: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [1 << 62, -(1 << 62)])
    for key in keys:
        span = ranges[key[:g]]
        us = key[g]
        if us < span[0]:
            span[0] = us
        if us > span[1]:
            span[1] = us
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    cols = [t.c[c] for c in (*stream.key, *stream.replace)]
    k = len(stream.key)
    groups = list(ranges.items())
    for start in range(0, len(groups), _GROUPS_PER_QUERY):
        conds = [
            and_(
                *(t.c[c] == v for c, v in zip(stream.group, grp, strict=True)),
                t.c.time.between(from_micros(lo), from_micros(hi)),
            )
            for grp, (lo, hi) in groups[start : start + _GROUPS_PER_QUERY]
        ]
        for row in conn.execute(select(*cols).where(or_(*conds))):
            key = (*row[:g], to_micros(row[g]), *row[g + 1 : k])
            found[key] = tuple(row[k:])
    return found


# Given the stored rows a batch would replace (natural key → replaced columns): the keys it
# may not replace, and how many of the batch's valid rows carry them (now rejected).
Guard = Callable[[dict[tuple[Any, ...], tuple[Any, ...]]], tuple[set[tuple[Any, ...]], int]]


def _apply(
    conn: Connection,
    stream: Stream,
    valid: Iterator[Row],
    result: BatchResult,
    writer: RowWriter,
    guard: Guard | None = None,
) -> None:
    rows: dict[tuple[Any, ...], Row] = {}
    n = 0
    for row in valid:
        rows[row[:3]] = row  # a repeat inside the batch: the last copy is the one applied
        n += 1
    if not rows:
        return
    existing = _existing(conn, stream, rows)
    if guard is not None and existing:
        refused, copies = guard(existing)
        for key in refused:  # (``existing`` spans time ranges: it may hold keys not sent)
            rows.pop(key, None)
        n -= copies
    result.unchanged += n - len(rows)
    changed: list[Row] = []
    if existing:
        new: list[Row] = []
        at = stream.replaced_at
        # Only PostgreSQL keeps a negative zero (MariaDB's DOUBLE and SQLite's REAL store
        # -0.0 as 0): elsewhere -0.0 is 0.0, and the same.
        same = _same_bits if conn.dialect.name == "postgresql" else _equal
        for key, row in rows.items():
            old = existing.get(key)
            if old is None:
                new.append(row)
            elif same(old, tuple(row[i] for i in at)):
                result.unchanged += 1
            else:
                changed.append(row)
    else:
        new = list(rows.values())
    # Sorted by natural key (unique, so no ties): one lock order for every writer.
    new.sort()
    changed.sort()
    writer.write(conn, stream, new, changed)
    result.stored += len(new) + len(changed)


def _equal(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return old == new


def _same_bits(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Equal, and floats of the same sign: 0.0 → -0.0 is a change (the float differs)."""
    return old == new and all(
        math.copysign(1.0, a) == math.copysign(1.0, b)
        for a, b in zip(old, new, strict=True) if type(a) is float and type(b) is float)


def _foreign_readings_guard(rule: WriteRule, batch: Batch, result: BatchResult) -> Guard:
    """Refuses the readings that would replace one stored at a location not the key's (a
    node an admin moved between sites keeps its old site's readings)."""
    at = READINGS.replace.index("locationId")

    def guard(
        existing: dict[tuple[Any, ...], tuple[Any, ...]],
    ) -> tuple[set[tuple[Any, ...]], int]:
        foreign = {k for k, old in existing.items() if not rule.may_replace_reading_at(old[at])}
        if not foreign:
            return foreign, 0
        already = {i for r in result.rejected if r.kind == "reading"
                   for i in range(r.index, r.index + r.count)}
        groups = {k[:2] for k in foreign}
        copies = 0
        for s in batch.readings:
            if (s.node, s.type) not in groups:
                continue
            for j, us in enumerate(s.t):
                if (s.node, s.type, us) in foreign and s.first + j not in already:
                    result.reject(
                        "reading", s.first + j, (codes.FOREIGN_READING, REPLACES_FOREIGN_READING))
                    copies += 1
        return foreign, copies

    return guard


def apply_batch(
    conn: Connection, principal: Principal, batch: Batch, writer: RowWriter = DEFAULT_WRITER
) -> BatchResult:
    result = BatchResult()
    rule = WriteRule(conn, principal)
    latest = to_micros(utcnow()) + DAY_US
    if batch.readings:
        reading_problems = _reading_series_problems(rule, batch)
        valid = _valid_readings(batch, reading_problems, latest, result)
        guard = None if rule.unrestricted else _foreign_readings_guard(rule, batch, result)
        _apply(conn, READINGS, valid, result, writer, guard)
        # The house page's cached days of these locations are stale now (rest/daycache.py).
        # Only times the batch could store: the others were rejected, and may not even be
        # dates (a hostile batch's year 300,000).
        invalidate(conn, ((s.location, us) for s in batch.readings
                          for us in {t - t % DAY_US for t in s.t if 0 <= t <= latest}))
    if batch.nodestates:
        state_problems = _state_series_problems(rule, batch)
        states = _valid_states(batch, state_problems, latest, result)
        _apply(conn, NODESTATES, states, result, writer)
    return result
