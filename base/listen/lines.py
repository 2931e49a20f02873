"""Text lines → readings: the native ``NODE TYPE VALUE [TIME]`` format and emonhub frames."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from base.errors import ConfigError
from base.ingest import IngestError, resolve_sensor_type
from base.listen.settings import FORMATS, MAX_NODE_ID, SECTION, FieldSpec
from models.sql import utcnow

FUTURE_SLACK = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1)  # MySQL DATETIME cannot even hold years before 1000


class BadLine(ValueError):
    """A line that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Record:
    node: int
    type: int
    value: float
    time: datetime


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
