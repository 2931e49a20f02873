"""Encoding a batch: the pusher's side of docs/PROTOCOL.md (the server's is
:mod:`models.protocol.decode`).

:class:`BatchPayload` holds rows as columns — readings grouped per node
(:class:`ReadingGroup`: the times, and a :class:`ValueSeries` per sensor type and location
over a subset of them), node states as :class:`StateColumns` per node — and writes them as
``cogent-batch/2`` (:meth:`BatchPayload.binary`) or ``cogent-batch/1`` JSON
(:meth:`BatchPayload.as_json`).
"""

from __future__ import annotations

import lzma
import math
import operator
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, cast

from models.protocol.batch import (
    CODEC_LZMA2,
    CODEC_NONE,
    CODEC_ZLIB,
    FORMAT,
    IEEE,
    LZMA2_FILTERS,
    MAGIC_V2,
    MAX_SCALE,
    PLAIN,
    WITH_NULLS,
)

_POW10 = [float(10**s) for s in range(MAX_SCALE + 1)]
_INT64 = 1 << 63
_EXACT = 1 << 53
_LITTLE = sys.byteorder == "little"


# --- the batch, in the two forms a server may take ------------------------------------------


@dataclass
class ValueSeries:
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
    series: list[ValueSeries]
    times_col: bytes = b""  # the times' column, when already encoded


@dataclass
class StateColumns:
    node: int
    times: list[int]
    seq: list[int]
    parent: list[int | None]
    rssi: list[int | None]
    localtime: list[int | None]


@dataclass
class BatchPayload:
    readings: list[ReadingGroup] = field(default_factory=list)
    nodestates: list[StateColumns] = field(default_factory=list)

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
                int_column(out, g.times)
            _uvarint(out, len(g.series))
            for s in g.series:
                _svarint(out, s.type)
                _svarint(out, s.location)
                if s.rows is None or len(s.rows) == m:
                    out.append(0)
                else:
                    out.append(1)
                    bitmap(out, m, s.rows)
                if s.values_col:
                    out += s.values_col
                else:
                    value_column(out, s.values)
        _uvarint(out, len(self.nodestates))
        for ns in self.nodestates:
            _svarint(out, ns.node)
            _uvarint(out, len(ns.times))
            int_column(out, ns.times)
            int_column(out, ns.seq)
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


def int_column(out: bytearray, xs: Sequence[int]) -> None:
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
        int_column(out, xs)  # type: ignore[arg-type]
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
    int_column(out, present)


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


def bitmap(out: bytearray, n: int, positions: Iterable[int]) -> None:
    """An n-bit map with ``positions`` set: bit i in byte i // 8 at 1 << (i % 8)."""
    bits = bytearray((n + 7) >> 3)
    for i in positions:
        bits[i >> 3] |= 1 << (i & 7)
    out += bits


def value_column(out: bytearray, values: Sequence[float | None]) -> None:
    if not values:
        return  # a column of no values is absent
    if None in values:  # NULL is data (a reading the logger could not take)
        out.append(WITH_NULLS)
        bitmap(out, len(values), [i for i, v in enumerate(values) if v is not None])
        value_column(out, [v for v in values if v is not None])
        return
    values = cast("Sequence[float]", values)
    scaled = decimal_scale(values)
    if scaled is not None:
        out.append(scaled[0])
        int_column(out, scaled[1])
        return
    out.append(IEEE)
    _planes(out, array("d", values), 8)
