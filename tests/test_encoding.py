"""The batch encoding: cogent-batch/2 round-trips exactly, and matches cogent-batch/1.

The encoder (models/protocol/encode.py, the pusher's) and the decoder
(models/protocol/decode.py, the server's) are the two halves of one codec; these tests hold
them to each other and to docs/PROTOCOL.md:
any finite double and any microsecond time comes back bit for bit, row i of the
body is ``encoded.rows[i]`` (the server's rejections name rows by that index),
NaN and infinities are never sent, and a damaged body is a 4xx, never a crash.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import namedtuple
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.protocol.batch import CODEC_LZMA2, CODEC_NONE, CODEC_ZLIB
from models.protocol.decode import decode_v2
from models.protocol.encode import (
    BatchPayload,
    ReadingGroup,
    StateColumns,
    ValueSeries,
    decimal_scale,
)
from models.sql import to_micros
from push.streams import NODE_STATES, READINGS, encode
from rest.batch import parse_batch
from rest.body import BinaryBatch, is_binary_batch
from rest.errors import ApiError

LIMIT = 32 << 20
EPOCH = datetime(1970, 1, 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
# What sensors report: a few decimals, sometimes any double at all.
SENSOR_VALUE = st.one_of(
    FINITE,
    st.builds(round, st.floats(-1e6, 1e6), st.integers(0, 4)),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 21.0625, 0.1, -3.3]),
)
TIME_US = st.one_of(
    st.integers(0, 2**62),
    st.integers(1_700_000_000_000_000, 1_700_000_000_000_000 + 10**12),
)

ReadingRow = namedtuple(
    "ReadingRow", "id time nodeId type locationId value syncSeq"
)  # the shape of a fetched Reading row
StateRow = namedtuple("StateRow", "id time nodeId parent localtime seq_num rssi syncSeq")


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def decode(payload: BatchPayload, codec: int = CODEC_LZMA2):
    body = payload.binary(codec)
    assert is_binary_batch(None, body)
    return parse_batch(BinaryBatch(body, LIMIT))


def flat_readings(batch) -> list[tuple[int, int, int, int, bytes | None]]:
    return [
        (s.node, s.type, s.location, t, None if v is None else bits(float(v)))
        for s in batch.readings
        for t, v in zip(s.t, s.v, strict=True)
    ]


def flat_states(batch) -> list[tuple]:
    return [
        (s.node, *row)
        for s in batch.nodestates
        for row in zip(s.t, s.seq, s.parent, s.rssi, s.localtime, strict=True)
    ]


# --- exactness of the value coding -----------------------------------------------------------


@given(st.lists(SENSOR_VALUE, min_size=1, max_size=40))
def test_decimal_scale_is_exact_or_declines(values):
    scaled = decimal_scale(values)
    if scaled is None:
        return
    s, ints = scaled
    p = float(10**s)
    assert [bits(n / p) for n in ints] == [bits(v) for v in values]
    assert all(abs(n) <= 2**53 for n in ints)


def test_sensor_resolutions_scale_to_small_integers():
    assert decimal_scale([21.37, 21.4, 21.0]) == (2, [2137, 2140, 2100])
    assert decimal_scale([3.217, 3.2]) == (3, [3217, 3200])
    assert decimal_scale([512.0, 498.0]) == (0, [512, 498])
    assert decimal_scale([math.pi]) is None
    assert decimal_scale([-0.0]) is None  # would come back as +0.0
    assert decimal_scale([1e300]) is None


# --- the payload round trip ------------------------------------------------------------------


@st.composite
def payloads(draw) -> BatchPayload:
    payload = BatchPayload()
    for _ in range(draw(st.integers(0, 3))):
        times = sorted(set(draw(st.lists(TIME_US, min_size=1, max_size=30))))
        group = ReadingGroup(draw(INT32), times, [])
        for _ in range(draw(st.integers(1, 3))):
            subset = draw(st.booleans())
            rows = (
                sorted(draw(st.sets(st.integers(0, len(times) - 1), min_size=1)))
                if subset
                else None
            )
            n = len(times) if rows is None else len(rows)
            values = draw(st.lists(SENSOR_VALUE, min_size=n, max_size=n))
            group.series.append(ValueSeries(draw(INT32), draw(INT32), rows, values))
        payload.readings.append(group)
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(1, 20))
        column = st.lists(st.one_of(st.none(), INT32), min_size=n, max_size=n)
        payload.nodestates.append(
            StateColumns(
                node=draw(INT32),
                times=sorted(draw(st.lists(TIME_US, min_size=n, max_size=n))),
                seq=draw(st.lists(INT32, min_size=n, max_size=n)),
                parent=draw(column),
                rssi=draw(column),
                localtime=draw(st.lists(st.one_of(st.none(), INT64), min_size=n, max_size=n)),
            )
        )
    return payload


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payloads(), st.sampled_from([CODEC_LZMA2, CODEC_ZLIB, CODEC_NONE]))
def test_any_payload_decodes_to_exactly_what_was_encoded_and_equals_format_1(payload, codec):
    binary = decode(payload, codec)
    json_form = parse_batch(payload.as_json())
    assert flat_readings(binary) == flat_readings(json_form)
    assert flat_states(binary) == flat_states(json_form)
    # Row numbering is the same in both forms: series by series, row by row.
    assert [s.first for s in binary.readings] == [s.first for s in json_form.readings]
    assert [s.first for s in binary.nodestates] == [s.first for s in json_form.nodestates]
    expected = [
        (g.node, s.type, s.location, g.times[i], bits(v))
        for g in payload.readings
        for s in g.series
        for i, v in zip(range(len(g.times)) if s.rows is None else s.rows, s.values, strict=True)
    ]
    assert flat_readings(binary) == expected


@given(st.lists(INT64, min_size=1, max_size=50))
def test_any_64_bit_integer_column_round_trips(values):
    payload = BatchPayload(
        nodestates=[
            StateColumns(1, sorted(v % 2**62 for v in values), [0] * len(values),
                        [None] * len(values), [None] * len(values), values)
        ]
    )  # fmt: skip
    [series] = decode(payload).nodestates
    assert series.localtime == values


# --- encoding local rows ---------------------------------------------------------------------


class FakeMapper:
    """Remote ids: node +1000, location +500, sensor types as they are; location 13 unmapped."""

    def ensure(self, **_: Any) -> None:
        pass

    def remote_id(self, kind: str, local_id: int) -> int | None:
        if kind == "location":
            return None if local_id == 13 else local_id + 500
        if kind == "node":
            return local_id + 1000
        return local_id

    def reason_unmapped(self, kind: str, local_id: int | None) -> str:
        return f"{kind} {local_id} could not be mapped"


reading_rows = st.lists(
    st.tuples(
        st.sampled_from([101, 102, 103]),  # node
        st.sampled_from([0, 2, 6]),  # type
        st.sampled_from([1, 2, 13, None]),  # location (13: unmapped)
        st.integers(0, 40),  # time step
        st.integers(0, 3_000_000),  # jitter µs
        st.one_of(SENSOR_VALUE, st.sampled_from([math.nan, math.inf, -math.inf, None])),
    ),
    max_size=80,
)


def as_rows(spec) -> list[ReadingRow]:
    seen, rows = set(), []
    for i, (node, kind, loc, step, jitter, value) in enumerate(spec):
        when = datetime(2026, 1, 1) + timedelta(minutes=5 * step, microseconds=jitter)
        if (node, kind, when) in seen:
            continue  # the local natural key is unique
        seen.add((node, kind, when))
        text = when.isoformat(" ", "microseconds")  # SQLite's text form; MySQL gives datetimes
        rows.append(ReadingRow(i + 1, text if i % 2 else when, node, kind, loc, value, i + 1))
    return rows


@settings(max_examples=200)
@given(reading_rows)
def test_encoded_readings_decode_in_the_order_of_encoded_rows_and_never_carry_nan(spec):
    """NaN and infinities are set aside; NULL is data and decodes as NULL."""
    rows = as_rows(spec)
    encoded = encode(READINGS, rows, FakeMapper())  # type: ignore[arg-type]
    aside = {a.local_id: a.reason for a in encoded.set_aside}
    for r in rows:
        bad_value = r.value is not None and not math.isfinite(r.value)
        if bad_value or r.locationId in (None, 13):
            assert r.id in aside
    assert len(aside) + encoded.count == len(rows)
    batch = decode(encoded.payload)
    decoded = flat_readings(batch)
    assert len(decoded) == encoded.count
    for (node, kind, loc, t, value), row in zip(decoded, encoded.rows, strict=True):
        assert (node, kind, loc) == (row.nodeId + 1000, row.type, row.locationId + 500)
        assert t == to_micros(row.time)
        if row.value is None:
            assert value is None
            continue
        assert value == bits(row.value)
        assert math.isfinite(row.value)


def test_a_node_whose_types_miss_different_samples_shares_one_time_column():
    t0 = datetime(2026, 1, 1)
    rows = [
        ReadingRow(i, t0 + timedelta(minutes=5 * (i // 2)), 101, i % 2 * 2, 1, 20.0 + i, i)
        for i in range(20)
        if i not in (3, 8)
    ]
    encoded = encode(READINGS, rows, FakeMapper())  # type: ignore[arg-type]
    [group] = encoded.payload.readings
    assert len(group.times) == 10 and len(group.series) == 2
    assert [s.rows is None for s in group.series] == [False, False]
    batch = decode(encoded.payload)
    assert [v for s in batch.readings for v in s.v] == [r.value for r in encoded.rows]


def test_node_states_round_trip_with_nulls():
    t0 = datetime(2026, 1, 1)
    rows = [
        StateRow(i, t0 + timedelta(seconds=300 * i + i), 7, None if i % 3 else 0,
                 i * 300 if i % 4 else None, i % 256, -60 - i % 5, i)
        for i in range(50)
    ]  # fmt: skip
    encoded = encode(NODE_STATES, rows, FakeMapper())  # type: ignore[arg-type]
    batch = decode(encoded.payload)
    assert flat_states(batch) == [
        (1007, to_micros(r.time), r.seq_num, r.parent, r.rssi, r.localtime) for r in encoded.rows
    ]


# --- damaged and hostile bodies ----------------------------------------------------------------


def sample_body(codec: int = CODEC_LZMA2) -> bytes:
    group = ReadingGroup(5, [1_767_268_800_000_000 + i * 300_000_000 for i in range(100)], [])
    group.series.append(ValueSeries(0, 3, None, [20.0 + i / 100 for i in range(100)]))
    return BatchPayload([group]).binary(codec)


def refused(body: bytes, limit: int = LIMIT) -> ApiError:
    with pytest.raises(ApiError) as info:  # as the server answers it
        parse_batch(BinaryBatch(body, limit))
    return info.value


def test_truncated_corrupt_or_padded_bodies_are_400():
    body = sample_body()
    assert refused(body[:-5]).status == 400
    assert refused(body + b"\0").status == 400
    assert refused(b"cogent-batch/3\n" + body[15:]).status == 400
    damaged = bytearray(sample_body(CODEC_NONE))
    damaged[-3] ^= 0xFF
    assert "CRC" in refused(bytes(damaged)).message
    for cut in range(0, len(body), 7):
        assert refused(body[:cut]).status == 400


def test_a_body_that_expands_past_the_limit_is_413_before_it_is_expanded():
    raw = b"\0" * (1 << 20)
    bomb = b"cogent-batch/2\n" + bytes([1, 0x80, 0x80, 0x40])
    bomb += zlib.crc32(raw).to_bytes(4, "little") + zlib.compress(raw, 9)
    assert refused(bomb, limit=65536).status == 413


def test_a_tiny_body_declaring_billions_of_rows_is_refused_cheaply():
    # One group of 2**40 times, all 1 µs apart: a few bytes that would be a huge list.
    payload = bytearray([1, 2])  # one group, node 1
    payload += bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20])  # m = 2**40
    payload += bytes([0, 2, 2])  # mode 0, first 1, base 1
    body = (
        b"cogent-batch/2\n" + bytes([0, len(payload)]) + zlib.crc32(payload).to_bytes(4, "little")
    )
    error = refused(body + bytes(payload))
    assert error.status == 400 and "too many" in error.message


def test_nan_in_a_raw_double_column_is_rejected_per_row_not_stored():
    group = ReadingGroup(5, [1_767_268_800_000_000, 1_767_268_800_000_001], [])
    group.series.append(ValueSeries(0, 3, None, [math.pi, math.pi]))
    body = bytearray(BatchPayload([group]).binary(CODEC_NONE))
    nan = struct.pack("<d", math.nan)
    # The two doubles sit in 8 byte planes of 2 bytes, before the final node-state count (0):
    # put a NaN in row 1.
    for k in range(8):
        body[len(body) - 17 + 2 * k + 1] = nan[k]
    payload = bytes(body[21:])
    body[17:21] = zlib.crc32(payload).to_bytes(4, "little")
    [series] = decode_v2(bytes(body), LIMIT).readings
    assert series.clean is False
    assert math.isnan(series.v[1]) and series.v[0] == math.pi


def test_a_null_bitmap_inside_a_null_bitmap_is_malformed_not_a_crash():
    from models.protocol.batch import MalformedBatch

    payload = BatchPayload()
    group = ReadingGroup(7, [0], [])
    # WITH_NULLS, bitmap "1 present", then WITH_NULLS again, as a hostile client might nest.
    group.series.append(ValueSeries(0, 1, None, [1.0], b"\xfe\x01" * 600 + b"\x00\x00\x01"))
    payload.readings.append(group)
    with pytest.raises(MalformedBatch, match="NULL bitmap"):
        decode_v2(payload.binary(CODEC_NONE), 1 << 20)


def test_values_with_nulls_round_trip_in_the_binary_format():
    payload = BatchPayload()
    group = ReadingGroup(7, [0, 1, 2, 3], [])
    group.series.append(ValueSeries(0, 1, None, [None, 21.5, None, 3.25]))
    group.series.append(ValueSeries(2, 1, None, [None, None, None, None]))
    payload.readings.append(group)
    batch = decode_v2(payload.binary(), 1 << 20)
    assert [s.v for s in batch.readings] == [[None, 21.5, None, 3.25], [None] * 4]


def _sample_payload() -> bytes:
    payload = BatchPayload()
    group = ReadingGroup(7, [0, 300_000_000, 600_000_000, 900_000_000], [])
    group.series.append(ValueSeries(0, 1, None, [21.5, 21.75, None, 22.0]))
    group.series.append(ValueSeries(2, 1, [0, 2], [55.5, 56.0]))
    payload.readings.append(group)
    payload.nodestates.append(StateColumns(7, [0, 300_000_000], [1, 2], [None, 3], [-60, None],
                                           [10, 20]))
    return payload.payload_v2()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutation_of_a_binary_batch_is_refused_in_words_never_a_crash(data):
    """Hostile bodies for cogent-batch/2 (issue 11): flipped, cut, inserted and overwritten
    bytes of a real batch, in every codec; the server's parser answers 400/413 or a batch,
    never another exception (which would be a 500)."""
    raw = bytearray(_sample_payload())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif raw:
            raw[at] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFE, 0xFF]))
    codec = data.draw(st.sampled_from([CODEC_NONE, CODEC_ZLIB, CODEC_LZMA2]))
    head = bytearray(b"")
    # Frame the mutated payload as a body in the chosen codec, as a hostile client could.
    from models.protocol.batch import MAGIC_V2

    packed = {CODEC_NONE: bytes(raw), CODEC_ZLIB: zlib.compress(bytes(raw))}.get(codec)
    if packed is None:
        import lzma

        from models.protocol.batch import LZMA2_FILTERS

        packed = lzma.compress(bytes(raw), format=lzma.FORMAT_RAW, filters=LZMA2_FILTERS)
    head += MAGIC_V2
    head.append(codec)
    length = len(raw)
    while True:  # the uvarint of the decompressed length
        if length < 0x80:
            head.append(length)
            break
        head.append(length & 0x7F | 0x80)
        length >>= 7
    head += zlib.crc32(bytes(raw)).to_bytes(4, "little")
    body = bytes(head) + packed
    try:
        parse_batch(BinaryBatch(body, LIMIT))
    except ApiError as exc:
        assert exc.status in (400, 413), exc
