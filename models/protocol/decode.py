"""Decoding a batch, both formats, into one :class:`Batch` (the server's side of
docs/PROTOCOL.md; the pusher's is :mod:`models.protocol.encode`).

Every malformation is a :class:`MalformedBatch` naming where, and a body that would expand
past its limit a :class:`BatchTooLarge`; neither is an HTTP error (rest/batch.py makes them
400 and 413). Row indices (``first``) count from 0 per kind, in body order.
"""

from __future__ import annotations

import lzma
import re
import sys
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Any

from models.protocol.batch import (
    CODEC_LZMA2,
    CODEC_NONE,
    CODEC_ZLIB,
    FORMAT,
    FORMAT_V2,
    IEEE,
    LZMA2_DICT,
    MAGIC_V2,
    MAX_BATCH_ROWS,
    MAX_SCALE,
    PLAIN,
    WITH_NULLS,
    BatchTooLarge,
    MalformedBatch,
)

_INT32 = 1 << 31
_INT64 = 1 << 63


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


# --- parsing: the structure must be right, or the whole batch is refused -------------------


def _int(where: str, value: Any, bound: int = _INT32) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -bound <= value < bound:
        raise MalformedBatch(f"{where} must be an integer, got {value!r}")
    return value


def _list(where: str, value: Any, length: int | None) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedBatch(f"{where} must be a list")
    if length is not None and len(value) != length:
        raise MalformedBatch(
            f"{where} has {len(value)} elements but t has {length}; they must match")
    return value


def _times(where: str, value: Any) -> list[int]:
    """Delta-coded times → absolute microseconds."""
    t = _list(where, value, None)
    for x in t:
        if type(x) is not int:  # bool is not int here either
            raise MalformedBatch(f"{where} must hold integers (microseconds), got {x!r}")
    return list(accumulate(t))


def _object(where: str, value: Any, keys: set[str], required: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBatch(f"{where} must be a JSON object")
    extra = set(value) - keys
    if extra:
        raise MalformedBatch(
            f"{where} has unknown field(s) {', '.join(sorted(extra))}; "
            f"valid: {', '.join(sorted(keys))}",
            valid=keys,
        )
    missing = [k for k in required if value.get(k) is None]
    if missing:
        raise MalformedBatch(f"{where} is missing {', '.join(missing)}")
    return value




def _count_rows(readings: int, nodestates: int) -> None:
    if readings + nodestates > MAX_BATCH_ROWS:
        raise BatchTooLarge(None, f"the batch holds more than {MAX_BATCH_ROWS} rows; send "
                                  f"smaller batches (pushlimit)")


def parse_v1(body: Any) -> Batch:
    """A parsed ``cogent-batch/1`` JSON document → :class:`Batch`."""
    doc = _object("the batch", body, {"format", "readings", "nodestates"}, ["format"])
    if doc["format"] != FORMAT:
        hint = (
            " (cogent-batch/2 is binary: send it as application/vnd.cogent-batch)"
            if doc["format"] == FORMAT_V2
            else ""
        )
        raise MalformedBatch(
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

_POW10 = [float(10**s) for s in range(MAX_SCALE + 1)]
_LITTLE = sys.byteorder == "little"
_NONZERO = re.compile(rb"[^\x00]")
# Decoded elements (times, values, columns) allowed per byte of the body limit: a column of
# equal deltas costs no bytes, so the count, not the size, is what needs a bound.
ELEMENTS_PER_LIMIT_BYTE = 1 / 8


def _malformed(what: str) -> Exception:
    return MalformedBatch(f"cogent-batch/2 body is malformed: {what}")


def _unpack(data: bytes, limit: int) -> bytes:
    """Check the envelope, decompress (never past ``limit``), verify the CRC."""
    if not data.startswith(MAGIC_V2):
        raise MalformedBatch(
            "a cogent-batch/2 body starts with the bytes 'cogent-batch/2\\n'; "
            "send JSON (cogent-batch/1) as application/json"
        )
    reader = _Reader(data, len(MAGIC_V2), 0)
    codec = reader.byte()
    size = reader.uvarint()
    crc = int.from_bytes(reader.take(4), "little")
    packed = data[reader.pos :]
    if size > limit:
        raise BatchTooLarge(limit)
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
            raise MalformedBatch(
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
            raise MalformedBatch(f"{where} must be a 32-bit integer, got {x}")
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

    def values(self, n: int, nested: bool = False) -> tuple[list[float | None], bool]:
        """(values, all finite and none NULL)."""
        if n == 0:
            return [], True
        mode = self.byte()
        if mode == WITH_NULLS:
            if nested:
                raise _malformed("a value column's NULL bitmap is followed by another")
            present = self.bitmap(n)
            inner, _ = self.values(len(present), nested=True)
            out: list[float | None] = [None] * n
            for i, v in zip(present, inner, strict=True):
                out[i] = v
            return out, False
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
