"""``POST /rest/sync/batch/``: the bulk formats, validated per row, applied at once.

Two formats arrive here: ``cogent-batch/1`` (columnar JSON) and ``cogent-batch/2``
(binary integer columns, compressed; docs/PROTOCOL.md). Both become the same
:class:`Batch`. The whole batch is parsed and checked before anything is written;
rows that can never be accepted are reported with their reason, the rest are
applied in one transaction. Existing rows for the batch's keys are read first
(one index range per node and type), so only new or changed rows are written —
with the native upsert, which also settles a race with a concurrent copy of the
same batch — and a re-sent batch writes nothing and reports ``stored: 0``.
"""

from __future__ import annotations

import lzma
import math
import re
import sys
import zlib
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Any

from sqlalchemy import Connection, Table, and_, or_, select
from sqlalchemy.exc import IntegrityError

from models import NodeState, Reading, SensorType
from models.protocol import codes
from models.protocol.ack import MAX_RUNS, Ack, RejectedRun, merge_runs
from rest.authz import REPLACES_FOREIGN_READING, WriteRule
from rest.body import BATCH_V2_MAGIC, BinaryBatch, too_large
from rest.errors import ApiError, bad_request
from rest.keys import Principal
from rest.times import from_micros, to_micros, utcnow
from rest.upsert import insert_literal_rows, upsert

FORMAT = "cogent-batch/1"
FORMAT_V2 = "cogent-batch/2"
DAY_US = 86_400_000_000
_INT32 = 1 << 31
_INT64 = 1 << 63
_GROUPS_PER_QUERY = 50
_MYSQL_DUPLICATE_KEY = 1062


Rejected = RejectedRun  # a run of rows of one kind refused for one reason
Problem = tuple[str, str]  # (code, reason): models.protocol.codes, and words for people


@dataclass
class ReadingSeries:
    node: int
    type: int
    location: int
    first: int  # index of its first row in the batch
    t: list[int]  # absolute µs since 1970
    v: list[Any]
    clean: bool = False  # every value is known to be a finite float


@dataclass
class StateSeries:
    node: int
    first: int
    t: list[int]  # absolute µs since 1970
    seq: list[Any]
    parent: list[Any]
    rssi: list[Any]
    localtime: list[Any]


@dataclass
class Batch:
    readings: list[ReadingSeries] = field(default_factory=list)
    nodestates: list[StateSeries] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(s.t) for s in self.readings) + sum(len(s.t) for s in self.nodestates)


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


# --- parsing: the structure must be right, or the whole batch is refused -------------------


def _int(where: str, value: Any, bound: int = _INT32) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -bound <= value < bound:
        raise bad_request(f"{where} must be an integer, got {value!r}")
    return value


def _list(where: str, value: Any, length: int | None) -> list[Any]:
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list")
    if length is not None and len(value) != length:
        raise bad_request(f"{where} has {len(value)} elements but t has {length}; they must match")
    return value


def _times(where: str, value: Any) -> list[int]:
    """Delta-coded times → absolute microseconds."""
    t = _list(where, value, None)
    for x in t:
        if type(x) is not int:  # bool is not int here either
            raise bad_request(f"{where} must hold integers (microseconds), got {x!r}")
    return list(accumulate(t))


def _object(where: str, value: Any, keys: set[str], required: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be a JSON object")
    extra = set(value) - keys
    if extra:
        raise bad_request(
            f"{where} has unknown field(s) {', '.join(sorted(extra))}; "
            f"valid: {', '.join(sorted(keys))}",
            valid=keys,
        )
    missing = [k for k in required if value.get(k) is None]
    if missing:
        raise bad_request(f"{where} is missing {', '.join(missing)}")
    return value


# Rows in one batch, whatever its format: the pusher sends `pushlimit` (default 5,000) at a
# time; a million is far past any real batch and bounds the memory and CPU of one request.
MAX_BATCH_ROWS = 1_000_000


def _count_rows(readings: int, nodestates: int) -> None:
    if readings + nodestates > MAX_BATCH_ROWS:
        raise ApiError(413, f"the batch holds more than {MAX_BATCH_ROWS} rows; send smaller "
                            f"batches (pushlimit)")


def parse_batch(body: Any) -> Batch:
    """A parsed JSON body (``cogent-batch/1``) or a :class:`BinaryBatch` (``cogent-batch/2``)."""
    if isinstance(body, BinaryBatch):
        return decode_v2(body.data, body.limit)
    doc = _object("the batch", body, {"format", "readings", "nodestates"}, ["format"])
    if doc["format"] != FORMAT:
        hint = (
            " (cogent-batch/2 is binary: send it as application/vnd.cogent-batch)"
            if doc["format"] == FORMAT_V2
            else ""
        )
        raise bad_request(
            f"unsupported batch format {doc['format']!r}; this server takes {FORMAT!r} "
            f"(JSON) and {FORMAT_V2!r} (binary){hint}"
        )
    batch = Batch()
    index = 0
    for i, raw in enumerate(_list("readings", doc.get("readings") or [], None)):
        where = f"readings[{i}]"
        s = _object(
            where,
            raw,
            {"node", "type", "location", "t", "v"},
            ["node", "type", "location", "t", "v"],
        )
        t = _times(f"{where}.t", s["t"])
        series = ReadingSeries(
            node=_int(f"{where}.node", s["node"]),
            type=_int(f"{where}.type", s["type"]),
            location=_int(f"{where}.location", s["location"]),
            first=index,
            t=t,
            v=_list(f"{where}.v", s["v"], len(t)),
        )
        batch.readings.append(series)
        index += len(t)
        _count_rows(index, 0)
    total, index = index, 0
    keys = {"node", "t", "seq", "parent", "rssi", "localtime"}
    for i, raw in enumerate(_list("nodestates", doc.get("nodestates") or [], None)):
        where = f"nodestates[{i}]"
        s = _object(where, raw, keys, ["node", "t", "seq"])
        t = _times(f"{where}.t", s["t"])
        n = len(t)

        def column(name: str, s: dict[str, Any] = s, n: int = n, where: str = where) -> list[Any]:
            value = s.get(name)
            return [None] * n if value is None else _list(f"{where}.{name}", value, n)

        batch.nodestates.append(
            StateSeries(
                node=_int(f"{where}.node", s["node"]),
                first=index,
                t=t,
                seq=_list(f"{where}.seq", s["seq"], n),
                parent=column("parent"),
                rssi=column("rssi"),
                localtime=column("localtime"),
            )
        )
        index += n
        _count_rows(total, index)
    return batch


# --- cogent-batch/2: the binary format (docs/PROTOCOL.md) ------------------------------------

CODEC_NONE, CODEC_ZLIB, CODEC_LZMA2 = 0, 1, 2
LZMA2_DICT = 1 << 20
PLAIN = 0xFF
IEEE = 0xFF
MAX_SCALE = 9
_POW10 = [float(10**s) for s in range(MAX_SCALE + 1)]
_LITTLE = sys.byteorder == "little"
_NONZERO = re.compile(rb"[^\x00]")
# Decoded elements (times, values, columns) allowed per byte of the body limit: a column of
# equal deltas costs no bytes, so the count, not the size, is what needs a bound.
ELEMENTS_PER_LIMIT_BYTE = 1 / 8


def _malformed(what: str) -> Exception:
    return bad_request(f"cogent-batch/2 body is malformed: {what}")


def _unpack(data: bytes, limit: int) -> bytes:
    """Check the envelope, decompress (never past ``limit``), verify the CRC."""
    if not data.startswith(BATCH_V2_MAGIC):
        raise bad_request(
            "a cogent-batch/2 body starts with the bytes 'cogent-batch/2\\n'; "
            "send JSON (cogent-batch/1) as application/json"
        )
    reader = _Reader(data, len(BATCH_V2_MAGIC), 0)
    codec = reader.byte()
    size = reader.uvarint()
    crc = int.from_bytes(reader.take(4), "little")
    packed = data[reader.pos :]
    if size > limit:
        raise too_large(limit, "body, once decompressed,")
    try:
        if codec == CODEC_NONE:
            raw = packed
        elif codec == CODEC_ZLIB:
            z = zlib.decompressobj()
            raw = z.decompress(packed, size + 1)
            if not z.eof or z.unused_data or z.unconsumed_tail:
                raise _malformed("the zlib stream does not end where the body does")
        elif codec == CODEC_LZMA2:
            x = lzma.LZMADecompressor(
                format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": LZMA2_DICT}]
            )
            raw = x.decompress(packed, size + 1)
            if not x.eof or x.unused_data:
                raise _malformed("the LZMA2 stream does not end where the body does")
        else:
            raise _malformed(f"unknown codec {codec}; known: 0 (none), 1 (zlib), 2 (LZMA2)")
    except (zlib.error, lzma.LZMAError) as exc:
        raise _malformed(f"cannot decompress ({exc})") from None
    if len(raw) != size:
        raise _malformed(f"the payload is {len(raw)} bytes, the header says {size}")
    if zlib.crc32(raw) != crc:
        raise _malformed("CRC-32 mismatch: the payload was damaged on the way")
    return raw


class _Reader:
    """Reads the payload's varints and columns; every malformation is a 400."""

    def __init__(self, buf: bytes, pos: int, budget: int):
        self.buf = buf
        self.pos = pos
        self.budget = budget

    def spend(self, n: int, what: str) -> None:
        self.budget -= n
        if self.budget < 0:
            raise bad_request(
                f"cogent-batch/2 body holds too many rows/columns ({what}); send smaller batches"
            )

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _malformed("it ends too early")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise _malformed("it ends too early")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def uvarint(self) -> int:
        x = shift = 0
        while True:
            b = self.byte()
            x |= (b & 0x7F) << shift
            if b < 0x80:
                return x
            shift += 7
            if shift > 63:
                raise _malformed("a varint is longer than 10 bytes")

    def svarint(self) -> int:
        z = self.uvarint()
        return (z >> 1) ^ -(z & 1)

    def int32(self, where: str) -> int:
        x = self.svarint()
        if not -_INT32 <= x < _INT32:
            raise bad_request(f"{where} must be a 32-bit integer, got {x}")
        return x

    def _wide(self, n: int, width: int, code: str) -> array[Any]:
        """n values of ``width`` bytes stored as byte planes → an array of 8-byte values."""
        planes = self.take(n * width)
        wide = bytearray(8 * n)
        for k in range(width):
            wide[k::8] = planes[k * n : (k + 1) * n]
        out = array(code)
        out.frombytes(wide)
        if not _LITTLE:
            out.byteswap()
        return out

    def ints(self, n: int) -> list[int]:
        if n == 0:
            return []
        self.spend(n, "integer column")
        mode = self.byte()
        if mode <= 8:
            first = self.svarint()
            if n == 1:
                return [first]
            base = self.svarint()
            if mode == 0:
                return list(accumulate(repeat(base, n - 1), initial=first))
            u = self._wide(n - 1, mode, "Q")
            return list(accumulate(map(base.__add__, u), initial=first))
        if mode == PLAIN:
            return [self.svarint() for _ in range(n)]
        raise _malformed(f"unknown integer column mode {mode}")

    def values(self, n: int) -> tuple[list[float], bool]:
        """(values, all finite)."""
        if n == 0:
            return [], True
        mode = self.byte()
        if mode <= MAX_SCALE:
            p = _POW10[mode]
            return list(map(p.__rtruediv__, self.ints(n))), True
        if mode == IEEE:
            self.spend(n, "value column")
            return self._wide(n, 8, "d").tolist(), False
        raise _malformed(f"unknown value column mode {mode}")

    def bitmap(self, n: int) -> list[int]:
        """Positions of the set bits of an n-bit map (bit i: byte i // 8, bit i % 8)."""
        bits = self.take((n + 7) >> 3)
        if n & 7 and bits[-1] >> (n & 7):
            raise _malformed("a bitmap has bits set past its end")
        # Only the bytes with a bit set are looked at: an empty bitmap costs a C-speed scan.
        return [(at << 3) + b for m in _NONZERO.finditer(bits)
                for at in (m.start(),) for b in range(8) if bits[at] >> b & 1]

    def nullable(self, n: int) -> list[int | None]:
        if n == 0:
            return []
        flag = self.byte()
        if flag == 0:
            return list(self.ints(n))
        if flag == 1:
            return [None] * n
        if flag == 2:
            present = self.bitmap(n)
            out: list[int | None] = [None] * n
            for i, x in zip(present, self.ints(len(present)), strict=True):
                out[i] = x
            return out
        raise _malformed(f"unknown null flag {flag}")


def decode_v2(data: bytes, limit: int) -> Batch:
    raw = _unpack(data, limit)
    r = _Reader(raw, 0, max(int(limit * ELEMENTS_PER_LIMIT_BYTE), 1024))
    batch = Batch()
    index = 0
    for g in range(r.uvarint()):
        where = f"readings group {g}"
        node = r.int32(f"{where}: node")
        m = r.uvarint()
        times = r.ints(m)
        for j in range(r.uvarint()):
            kind = r.int32(f"{where}, series {j}: type")
            location = r.int32(f"{where}, series {j}: location")
            flag = r.byte()
            if flag == 0:
                t = times
            elif flag == 1:
                t = [times[i] for i in r.bitmap(m)]
            else:
                raise _malformed(f"{where}, series {j}: unknown presence flag {flag}")
            r.spend(len(t), "readings")
            v, clean = r.values(len(t))
            batch.readings.append(ReadingSeries(node, kind, location, index, t, v, clean))
            index += len(t)
            _count_rows(index, 0)
    total, index = index, 0
    for i in range(r.uvarint()):
        node = r.int32(f"node-state series {i}: node")
        n = r.uvarint()
        t = r.ints(n)
        seq = r.ints(n)
        parent, rssi, localtime = r.nullable(n), r.nullable(n), r.nullable(n)
        batch.nodestates.append(StateSeries(node, index, t, seq, parent, rssi, localtime))
        index += n
        _count_rows(total, index)
    if r.pos != len(raw):
        raise _malformed(f"{len(raw) - r.pos} bytes left over after the last series")
    return batch


# --- validation: per series (references, ownership) and per row (time, values) --------------


def _time_problem(us: int, latest: int) -> Problem | None:
    if us < 0:
        return codes.BAD_TIME, "time is before 1970"
    if us > latest:
        return codes.BAD_TIME, "time is more than a day in the future"
    return None


def _value_problem(v: Any) -> Problem | None:
    if v is None:
        return codes.VALUE_MISSING, "value is missing (null)"
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
Row = tuple[Any, ...]


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
            yield (s.node, s.type, us, s.location, float(v))


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


@dataclass(frozen=True)
class _Stream:
    table: Table
    columns: tuple[str, ...]  # the row tuple's columns; "time" holds µs
    group: tuple[str, ...]  # key columns that select one index range
    key: tuple[str, ...]  # the natural key (group + time [+ seq_num]): the tuple's first ones
    replace: tuple[str, ...]  # columns a re-sent row overwrites

    @property
    def replaced_at(self) -> tuple[int, ...]:
        """Where the replaced columns are in a row tuple."""
        return tuple(self.columns.index(c) for c in self.replace)


READINGS = _Stream(
    Reading.__table__,  # type: ignore[arg-type]
    ("nodeId", "type", "time", "locationId", "value"),
    ("nodeId", "type"),
    ("nodeId", "type", "time"),
    ("value", "locationId"),
)
NODESTATES = _Stream(
    NodeState.__table__,  # type: ignore[arg-type]
    ("nodeId", "time", "seq_num", "parent", "rssi", "localtime"),
    ("nodeId",),
    ("nodeId", "time", "seq_num"),
    ("parent", "rssi", "localtime"),
)


def _existing(
    conn: Connection, stream: _Stream, keys: Iterable[tuple[Any, ...]]
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
    stream: _Stream,
    valid: Iterator[Row],
    result: BatchResult,
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
    if conn.dialect.name in ("mysql", "mariadb"):
        _write_mysql(conn, stream, new, changed)
    elif new or changed:
        ti = stream.columns.index("time")
        dicts = [
            {
                c: (from_micros(v) if i == ti else v)
                for i, (c, v) in enumerate(zip(stream.columns, row, strict=True))
            }
            for row in sorted(new + changed)
        ]
        conn.execute(upsert(conn.dialect, stream.table, stream.key, stream.replace), dicts)
    result.stored += len(new) + len(changed)


def _equal(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return old == new


def _same_bits(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Equal, and floats of the same sign: 0.0 → -0.0 is a change (the float differs)."""
    return old == new and all(
        math.copysign(1.0, a) == math.copysign(1.0, b)
        for a, b in zip(old, new, strict=True) if type(a) is float and type(b) is float)


def _write_mysql(conn: Connection, stream: _Stream, new: list[Row], changed: list[Row]) -> None:
    """New rows with a plain INSERT (InnoDB takes them ~15 % faster than an upsert), changed
    ones with the upsert. A concurrent writer may have stored some "new" row since we looked:
    then the INSERT fails as a whole (MySQL undoes just that statement) and the upsert does
    the job."""
    if new:
        try:
            insert_literal_rows(conn, stream.table, stream.columns, new)
        except IntegrityError as exc:
            if getattr(exc.orig, "args", (None,))[0] != _MYSQL_DUPLICATE_KEY:
                raise
            changed = sorted(changed + new)
    if changed:
        insert_literal_rows(conn, stream.table, stream.columns, changed, stream.replace)


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


def apply_batch(conn: Connection, principal: Principal, batch: Batch) -> BatchResult:
    result = BatchResult()
    rule = WriteRule(conn, principal)
    latest = to_micros(utcnow()) + DAY_US
    if batch.readings:
        reading_problems = _reading_series_problems(rule, batch)
        valid = _valid_readings(batch, reading_problems, latest, result)
        guard = None if rule.unrestricted else _foreign_readings_guard(rule, batch, result)
        _apply(conn, READINGS, valid, result, guard)
    if batch.nodestates:
        state_problems = _state_series_problems(rule, batch)
        _apply(conn, NODESTATES, _valid_states(batch, state_problems, latest, result), result)
    return result
