"""What the simulator is asked for (:class:`Plan`) and what it produces (:class:`NodeSpec`,
:class:`Packet`), with the seeded random streams every value is drawn from. The model that
turns them into values is :mod:`base.simmodel`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from base.ingest import IngestError
from models.sql import utcnow

EPOCH = datetime(1970, 1, 1)
DAY = 86_400
MAX_NODE_ID = 2**31 - 1
SLOTS_PER_HOUSE = 99
BATTERY_LIFE_DAYS = 400

# Decimal places each modelled sensor reports (its real resolution).
RESOLUTION = {"T": 2, "RH": 1, "CO2": 0, "BAT": 3, "POW": 0, "PAR": 0, "TSR": 0, "P": 1}
SUPPORTED = tuple(RESOLUTION)
DEFAULT_SENSORS = ("T", "RH", "CO2", "BAT")

_M64 = 2**64 - 1
# Stream tags, so that different uses of the same (seed, node, time) never share numbers.
_PACKET, _QUIET, _NODE, _HOUSE, _WEATHER, _OCCUPANCY, _PARENT = range(1, 8)


def _mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 rounds): a seed for an independent stream."""
    h = 0
    for p in parts:
        h = ((h ^ (p & _M64)) + 0x9E3779B97F4A7C15) & _M64
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        h = z ^ (z >> 31)
    return h


def _rng(*parts: int) -> random.Random:
    return random.Random(_mix(*parts))


def epoch_seconds(when: datetime) -> float:
    return (when - EPOCH).total_seconds()


def from_epoch_seconds(ts: float) -> datetime:
    return EPOCH + timedelta(microseconds=round(ts * 1_000_000))


@dataclass(frozen=True)
class Plan:
    """What to simulate. Node ids are ``node_base + 100 * house + slot`` (house from 1)."""

    houses: int = 1
    rooms: int = 4
    nodes_per_room: int = 1
    sensors: tuple[str | int, ...] = DEFAULT_SENSORS
    power_meter: bool = True
    start: datetime | None = None
    days: float = 7.0
    period: int = 300
    seed: int = 1
    deployment: str = "Simulation"
    node_base: int = 1000
    jitter: float = 3.0
    missing: float = 0.01
    quiet_per_day: float = 0.1

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise IngestError(f"simulation plan: {what}")

        need(self.houses >= 1, f"houses = {self.houses}; use 1 or more")
        need(1 <= self.rooms <= 60, f"rooms = {self.rooms}; use 1..60")
        need(self.nodes_per_room >= 1, f"nodes_per_room = {self.nodes_per_room}; use 1 or more")
        slots = self.rooms * self.nodes_per_room + int(self.power_meter)
        need(
            slots <= SLOTS_PER_HOUSE,
            f"{slots} nodes per house; at most {SLOTS_PER_HOUSE} (fewer rooms or nodes per room)",
        )
        need(len(self.sensors) >= 1, "no sensor types; give at least one, e.g. T")
        need(1 <= self.period <= DAY, f"period = {self.period}; use 1..{DAY} seconds")
        need(self.days > 0, f"days = {self.days}; use a positive number")
        need(self.jitter >= 0, f"jitter = {self.jitter}; use 0 or more seconds")
        need(0 <= self.missing < 1, f"missing = {self.missing}; use a fraction 0..1")
        need(0 <= self.quiet_per_day < 1, f"quiet_per_day = {self.quiet_per_day}; use 0..1")
        need(self.node_base >= 0, f"node_base = {self.node_base}; use 0 or more")
        need(
            self.node_base + 100 * self.houses + SLOTS_PER_HOUSE <= MAX_NODE_ID,
            f"node_base = {self.node_base} leaves no room for {self.houses} houses of node ids",
        )
        need(self.deployment.strip() != "", "deployment name is empty")

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The backfill range: from ``start`` for ``days``, else the ``days`` ending now."""
        span = timedelta(days=self.days)
        if self.start is not None:
            return self.start, self.start + span
        now = now or utcnow()
        end = from_epoch_seconds(math.floor(epoch_seconds(now) / self.period) * self.period)
        return end - span, end

    @property
    def jitter_max(self) -> float:
        # Below half a period, so a node's receipt times stay strictly increasing.
        return min(self.jitter, self.period / 2)


@dataclass(frozen=True)
class NodeSpec:
    """One simulated mote, as created in the database."""

    id: int
    house: int
    room: str
    room_type: str
    location_id: int
    node_type_id: int
    sensors: tuple[tuple[int, str], ...]  # (sensor type id, code)
    sink: int  # the house's gateway mote id (slot 0): the usual routing parent
    neighbours: tuple[int, ...] = ()


@dataclass(frozen=True)
class Packet:
    """What one node reports at one sample: its readings and its node state."""

    time: datetime
    node: NodeSpec
    step: int
    values: tuple[tuple[int, float], ...]
    parent: int
    localtime: int
    seq_num: int
    rssi: int

    def reading_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "time": self.time,
                "nodeId": self.node.id,
                "type": tid,
                "locationId": self.node.location_id,
                "value": value,
            }
            for tid, value in self.values
        ]

    def state_row(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "nodeId": self.node.id,
            "parent": self.parent,
            "localtime": self.localtime,
            "seq_num": self.seq_num,
            "rssi": self.rssi,
        }
