"""Set-aside rows as a person needs to see them: by reason, house, node, sensor type and time.

``SyncRejected`` holds one row per set-aside reading or node state (local id and reason).
Local ids mean nothing to an installer; what they need is *which series* (house, node,
sensor type), *when* (first and last time), *why*, and *the command that sends them
again* once the cause is fixed. The grouping runs in SQL, so a million set-aside rows
cost one query, not a million rows in memory.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, null, select

from models import House, Location, Node, NodeState, Reading, SensorType, SyncRejected


@dataclass
class Series:
    """Set-aside rows of one (table, house, node, sensor type) with one reason."""

    table: str  # "Reading" | "NodeState"
    house: str | None  # address; None: the row has no location, or is gone
    node: int | None  # None: the row is no longer in the local database
    sensor_type: str | None  # readings only
    first: datetime | None
    last: datetime | None
    count: int

    def describe(self) -> str:
        if self.node is None:
            return f"{self.count} {_what(self.table, self.count)} no longer in the local database"
        where = f"house {self.house!r}" if self.house else "no location"
        kind = f", {self.sensor_type}" if self.sensor_type else ""
        span = ""
        if self.first and self.last:
            span = f", {self.first:%Y-%m-%d %H:%M}"
            if self.last != self.first:
                span += f" to {self.last:%Y-%m-%d %H:%M}"
            span += " UTC"
        rows = f"{self.count} {_what(self.table, self.count)}"
        return f"{where}, node {self.node}{kind}: {rows}{span}"

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "house": self.house,
            "node": self.node,
            "sensor_type": self.sensor_type,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "count": self.count,
        }


@dataclass
class Reason:
    """Every set-aside row of one remote with one reason, and what to do about it."""

    reason: str
    count: int = 0
    series: list[Series] = field(default_factory=list)

    def advice(self) -> str:
        return advice(self.reason)

    def retry_command(self, remote: str, config_path: str | None = None) -> str:
        conf = f" -c {_quote(config_path)}" if config_path else ""
        return f"RestPusher.py{conf} retry --remote {_quote(remote)} --reason {_quote(self.reason)}"

    def as_json(self, remote: str, config_path: str | None) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "advice": self.advice(),
            "retry": self.retry_command(remote, config_path),
            "series": [s.as_json() for s in self.series],
        }


def advice(reason: str) -> str:
    """What to fix before ``retry`` can succeed, from the reason's words."""
    low = reason.lower()
    if "no locationid" in low or "has no location" in low:
        return (
            "give the node a location, and set it on these readings (Reading.locationId), "
            "then send them again"
        )
    if "belongs to another site" in low or "refused" in low:
        return (
            "the server gave this house or location to another site: push it with the key "
            "of the site that owns it, or ask the server's operator; then send them again"
        )
    if low.startswith("value") or "value " in low or "nan" in low or "infinite" in low:
        return (
            "a value that can never be stored: correct these rows locally (or delete them: "
            "retry then forgets them), then send them again"
        )
    if "sensor type" in low or "sensortype" in low:
        return "add the sensor type on the server, then send them again"
    return "fix the cause, then send them again"


def root_cause(reason: str) -> str:
    """``its location 4 was refused: its house 2 was refused: house '2 Mill Lane' … belongs
    to another site`` → the part after the last "was refused: ", shared by every row that one
    refusal set aside (and a substring of each reason, so ``retry --reason`` finds them all)."""
    return reason.rsplit(_CHAIN, 1)[-1] if _CHAIN in reason else reason


_CHAIN = "was refused: "


def set_aside_reasons(engine: Engine, remote: str) -> list[Reason]:
    """Every set-aside row of ``remote``, grouped by root cause (most rows first) and series."""
    types = _sensor_types(engine)
    by_reason: dict[str, Reason] = {}
    series: dict[tuple[str, str, str | None, int | None, str | None], Series] = {}
    with engine.connect() as conn:
        for table, stmt in (("Reading", _readings(remote)), ("NodeState", _node_states(remote))):
            for row in conn.execute(stmt):
                cause = root_cause(row.reason)
                reason = by_reason.setdefault(cause, Reason(cause))
                reason.count += int(row.n)
                node = None if row.node is None else int(row.node)
                kind = None if row.type is None else types.get(int(row.type), f"type {row.type}")
                key = (cause, table, row.address, node, kind)
                first, last = _time(row.first), _time(row.last)
                if key in series:  # the same series under another chain of refusals
                    known = series[key]
                    known.count += int(row.n)
                    known.first = min(filter(None, (known.first, first)), default=None)
                    known.last = max(filter(None, (known.last, last)), default=None)
                    continue
                series[key] = Series(table, row.address, node, kind, first, last, int(row.n))
                reason.series.append(series[key])
    reasons = sorted(by_reason.values(), key=lambda r: (-r.count, r.reason))
    for r in reasons:
        r.series.sort(
            key=lambda s: (s.node is None, s.house or "", s.node or 0, s.table, s.sensor_type or "")
        )
    return reasons


def _readings(remote: str) -> Any:
    r = SyncRejected
    return (
        select(
            r.reason,
            House.address,
            Reading.nodeId.label("node"),
            Reading.type,
            func.min(Reading.time).label("first"),
            func.max(Reading.time).label("last"),
            func.count().label("n"),
        )
        .select_from(r)
        .outerjoin(Reading, Reading.id == r.localId)
        .outerjoin(Location, Location.id == Reading.locationId)
        .outerjoin(House, House.id == Location.houseId)
        .where(r.remote == remote, r.tableName == "Reading")
        .group_by(r.reason, House.address, Reading.nodeId, Reading.type)
    )


def _node_states(remote: str) -> Any:
    r = SyncRejected
    return (
        select(
            r.reason,
            House.address,
            NodeState.nodeId.label("node"),
            null().label("type"),
            func.min(NodeState.time).label("first"),
            func.max(NodeState.time).label("last"),
            func.count().label("n"),
        )
        .select_from(r)
        .outerjoin(NodeState, NodeState.id == r.localId)
        .outerjoin(Node, Node.id == NodeState.nodeId)
        .outerjoin(Location, Location.id == Node.locationId)
        .outerjoin(House, House.id == Location.houseId)
        .where(r.remote == remote, r.tableName == "NodeState")
        .group_by(r.reason, House.address, NodeState.nodeId)
    )


def _quote(text: str) -> str:
    """Shell quoting that stays readable for text with single quotes in it."""
    if "'" in text and not any(c in text for c in '"\\$`!'):
        return f'"{text}"'
    return shlex.quote(text)


def _sensor_types(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {int(i): str(n) for i, n in conn.execute(select(SensorType.id, SensorType.name))}


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))  # SQLite's MIN()/MAX() of a DATETIME: text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None  # naive UTC


def _what(table: str, n: int) -> str:
    if table == "Reading":
        return "reading" if n == 1 else "readings"
    return "node state" if n == 1 else "node states"
