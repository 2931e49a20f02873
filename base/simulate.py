"""Simulated readings and node states written into the local database.

Creates the plan's deployment, houses, rooms, locations, nodes and sensors
(matched by natural key, so idempotent), then writes the packets
:mod:`base.simmodel` generates: as a backfill in batches of a few thousand
rows per transaction, or in real time, each packet when its time comes. Rows
whose natural key already exists are skipped, so re-running over the same
range is harmless. ``syncSeq`` is left NULL for the pusher to stamp.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from base.db import write_engine
from base.ingest import (
    NODESTATE,
    READING,
    IngestError,
    resolve_sensor_type,
    sensor_type_ids,
)
from base.simmodel import (
    DEFAULT_SENSORS,
    RESOLUTION,
    SUPPORTED,
    NodeSpec,
    Packet,
    Plan,
    epoch_seconds,
    generate,
)
from models import Deployment, House, Location, Node, NodeType, Room, RoomType, Sensor
from models.base import table_of
from models.sql import get_or_create, insert_ignoring_duplicates, utcnow

__all__ = [
    "DEFAULT_SENSORS",
    "SUPPORTED",
    "NodeSpec",
    "Packet",
    "Plan",
    "Progress",
    "SimulationResult",
    "backfill",
    "ensure_metadata",
    "generate",
    "run_realtime",
    "simulate_days",
    "utcnow",
]

log = logging.getLogger("cogent.simulate")


# name, room type name. Room names are global in Cogent-house (Room's natural key is its
# name), so every house's "Kitchen" is the same Room row with a Location per house.
ROOMS = (
    ("Living Room", "Living Room"),
    ("Kitchen", "Kitchen"),
    ("Bedroom 1", "Bedroom"),
    ("Bathroom", "Bathroom"),
    ("Bedroom 2", "Bedroom"),
    ("Hall", "Hall"),
    ("Bedroom 3", "Bedroom"),
    ("Outside", "Outside"),
    ("Loft", "Loft"),
    ("Dining Room", "Other"),
    ("Study", "Other"),
)
METER_ROOM = ("Utility", "Utility")

# Node types by their Cogent-house ids: "Base" (temperature/humidity), "CO2", "Current Cost".
NODE_TYPE_TH = 0
NODE_TYPE_AIR = 2
NODE_TYPE_POWER = 1


@dataclass(frozen=True)
class Progress:
    """Reported after each committed batch (backfill) or packet (real time)."""

    readings: int
    nodestates: int
    until: datetime  # simulated sample time reached
    fraction: float | None  # of the backfill range; None in real time
    elapsed: float  # wall-clock seconds


@dataclass
class SimulationResult:
    """Rows offered to the database; rows whose natural key already existed were skipped."""

    readings: int = 0
    nodestates: int = 0
    start: datetime | None = None
    end: datetime | None = None
    elapsed: float = 0.0
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)


ProgressCallback = Callable[[Progress], None]


# --------------------------------------------------------------------------- metadata


def house_address(plan: Plan, house: int) -> str:
    return f"Simulated House {house}"


def room_of(index: int) -> tuple[str, str]:
    if index < len(ROOMS):
        return ROOMS[index]
    return f"Room {index + 1}", "Other"


def node_id(plan: Plan, house: int, slot: int) -> int:
    return plan.node_base + 100 * house + slot


def ensure_metadata(
    engine: Engine, plan: Plan, start: datetime | None = None
) -> tuple[NodeSpec, ...]:
    """Create the plan's deployment, houses, rooms, locations, nodes and sensors if missing.

    Matched by natural key, so running it again changes nothing. A node id that
    already belongs to another location is refused rather than moved: it is
    somebody else's mote (choose another ``node_base``). ``start`` becomes the
    start date of houses created now.
    """
    plan.validate()
    for attempt in range(3):
        try:
            with write_engine(engine).begin() as conn:
                return _ensure(conn, plan, start)
        except IntegrityError:
            # Another writer created the same row at the same moment: look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _ensure(conn: Connection, plan: Plan, start: datetime | None) -> tuple[NodeSpec, ...]:
    catalogue = sensor_type_ids(conn)
    sensors: list[tuple[int, str]] = []
    for token in plan.sensors:
        tid = resolve_sensor_type(str(token), catalogue)
        code = catalogue[tid]
        if code not in RESOLUTION:
            raise IngestError(
                f"the simulator has no model for sensor type {code!r}; "
                f"it simulates {', '.join(SUPPORTED)}"
            )
        if (tid, code) not in sensors:
            sensors.append((tid, code))
    pow_id = resolve_sensor_type("POW", catalogue)
    node_types = set(conn.execute(select(table_of(NodeType).c.id)).scalars())
    for nt in (NODE_TYPE_TH, NODE_TYPE_AIR, NODE_TYPE_POWER):
        if nt not in node_types:
            raise IngestError(f"node type {nt} is missing; run 'alembic upgrade head' first")
    codes = {c for _, c in sensors}
    room_node_type = (
        NODE_TYPE_AIR if "CO2" in codes else NODE_TYPE_POWER if codes == {"POW"} else NODE_TYPE_TH
    )

    dep_id = get_or_create(conn, table_of(Deployment), {"name": plan.deployment})
    rooms = [room_of(i) for i in range(plan.rooms)]
    if plan.power_meter:
        rooms.append(METER_ROOM)
    room_ids = {name: _room(conn, name, kind) for name, kind in rooms}

    specs: list[NodeSpec] = []
    for h in range(1, plan.houses + 1):
        house_id = get_or_create(
            conn,
            table_of(House),
            {"deploymentId": dep_id, "address": house_address(plan, h)},
            {"startDate": start},
        )
        loc_ids = {
            name: get_or_create(
                conn, table_of(Location), {"houseId": house_id, "roomId": room_ids[name]}
            )
            for name, _ in rooms
        }
        house_specs: list[tuple[int, str, str, int, tuple[tuple[int, str], ...]]] = []
        slot = 0
        for name, kind in rooms[: plan.rooms]:
            for _ in range(plan.nodes_per_room):
                slot += 1
                house_specs.append((slot, name, kind, room_node_type, tuple(sensors)))
        if plan.power_meter:
            slot += 1
            name, kind = METER_ROOM
            house_specs.append((slot, name, kind, NODE_TYPE_POWER, ((pow_id, "POW"),)))
        ids = tuple(node_id(plan, h, s) for s, *_ in house_specs)
        for s, name, kind, ntype, node_sensors in house_specs:
            nid = node_id(plan, h, s)
            _node(conn, nid, loc_ids[name], ntype)
            for tid, _code in node_sensors:
                get_or_create(conn, table_of(Sensor), {"nodeId": nid, "sensorTypeId": tid})
            specs.append(
                NodeSpec(
                    id=nid,
                    house=h,
                    room=name,
                    room_type=kind,
                    location_id=loc_ids[name],
                    node_type_id=ntype,
                    sensors=node_sensors,
                    sink=node_id(plan, h, 0),
                    neighbours=tuple(i for i in ids if i != nid),
                )
            )
    return tuple(specs)


def _room(conn: Connection, name: str, kind: str) -> int:
    room_type = get_or_create(conn, table_of(RoomType), {"name": kind})
    return get_or_create(conn, table_of(Room), {"name": name}, {"roomTypeId": room_type})


def _node(conn: Connection, nid: int, location_id: int, node_type_id: int) -> None:
    nodes = table_of(Node)
    row = conn.execute(
        select(nodes.c.locationId, nodes.c.nodeTypeId).where(nodes.c.id == nid)
    ).one_or_none()
    if row is None:
        conn.execute(insert(nodes).values(id=nid, locationId=location_id, nodeTypeId=node_type_id))
        return
    if row.locationId not in (None, location_id):
        raise IngestError(
            f"node {nid} already exists at location {row.locationId}, not the simulated "
            f"location {location_id}; it is another mote: pick another node id base "
            f"(--node-base) or another deployment"
        )
    changes: dict[str, Any] = {}
    # A node first heard by the listener has no location yet; the plan places it.
    if row.locationId is None:
        changes["locationId"] = location_id
    if row.nodeTypeId is None:
        changes["nodeTypeId"] = node_type_id
    if changes:
        conn.execute(update(nodes).where(nodes.c.id == nid).values(**changes))


# --------------------------------------------------------------------------- writing


def _write(engine: Engine, readings: list[dict[str, Any]], states: list[dict[str, Any]]) -> None:
    with write_engine(engine).begin() as conn:
        insert_ignoring_duplicates(conn, READING, readings)
        insert_ignoring_duplicates(conn, NODESTATE, states)


def backfill(
    engine: Engine,
    plan: Plan,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 5000,
    now: datetime | None = None,
) -> SimulationResult:
    """Write the plan's readings and node states for [start, end) in batches.

    The range defaults to :meth:`Plan.window`. Each batch of about
    ``batch_size`` rows is one transaction; rows whose natural key exists are
    skipped, so re-running over the same range is harmless. ``progress`` is
    called after every committed batch.
    """
    plan.validate()
    if batch_size < 1:
        raise IngestError(f"batch size {batch_size}; use 1 or more")
    span_days = timedelta(days=plan.days)
    if start is None and end is None:
        start, end = plan.window(now)
    elif start is None:
        assert end is not None
        start = end - span_days
    elif end is None:
        end = start + span_days
    if end <= start:
        raise IngestError(f"empty range: start {start} is not before end {end}")
    clock = _time.monotonic()
    nodes = ensure_metadata(engine, plan, start)
    result = SimulationResult(start=start, end=end, nodes=nodes)
    span = epoch_seconds(end) - epoch_seconds(start)
    readings: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    until = start

    def flush() -> None:
        _write(engine, readings, states)
        result.readings += len(readings)
        result.nodestates += len(states)
        readings.clear()
        states.clear()
        result.elapsed = _time.monotonic() - clock
        if progress is not None:
            done = min(max((epoch_seconds(until) - epoch_seconds(start)) / span, 0.0), 1.0)
            progress(Progress(result.readings, result.nodestates, until, done, result.elapsed))

    for packet in generate(plan, nodes, start, end):
        readings.extend(packet.reading_rows())
        states.append(packet.state_row())
        until = packet.time
        if len(readings) + len(states) >= batch_size:
            flush()
    until = end
    flush()
    log.info(
        "simulated %d readings and %d node states for %s .. %s in %.1f s",
        result.readings,
        result.nodestates,
        start,
        end,
        result.elapsed,
    )
    return result


def simulate_days(
    engine: Engine,
    days: float = 7.0,
    *,
    houses: int = 1,
    seed: int = 1,
    end: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """Backfill ``days`` of ``houses`` simulated houses ending at ``end`` (default now).

    The one call a demo needs. The database must be migrated to head.
    """
    plan = Plan(houses=houses, days=days, seed=seed)
    start, stop = plan.window(end)
    return backfill(engine, plan, start=start, end=stop, progress=progress)


def run_realtime(
    engine: Engine,
    plan: Plan,
    *,
    stop: threading.Event | None = None,
    duration: float | None = None,
    since: datetime | None = None,
    progress: ProgressCallback | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> SimulationResult:
    """Write each packet when its receipt time comes, until ``stop`` is set or ``duration`` ends.

    Starts with the first sample at or after ``since`` (default now), so it
    continues a backfill that ended there. Each packet is its own transaction.
    """
    plan.validate()
    begin = since or clock()
    nodes = ensure_metadata(engine, plan, begin)
    stop = stop or threading.Event()
    started = _time.monotonic()
    deadline = None if duration is None else started + duration
    result = SimulationResult(start=begin, nodes=nodes)
    for packet in generate(plan, nodes, begin, None):
        while True:
            wait = (packet.time - clock()).total_seconds()
            if deadline is not None:
                left = deadline - _time.monotonic()
                if left <= 0 or left < wait:
                    stop.wait(max(left, 0))
                    result.elapsed = _time.monotonic() - started
                    return result
            if wait <= 0 or stop.wait(wait):
                break
        if stop.is_set():
            break
        rows = packet.reading_rows()
        _write(engine, rows, [packet.state_row()])
        result.readings += len(rows)
        result.nodestates += 1
        result.end = packet.time
        result.elapsed = _time.monotonic() - started
        if progress is not None:
            progress(
                Progress(result.readings, result.nodestates, packet.time, None, result.elapsed)
            )
    result.elapsed = _time.monotonic() - started
    return result
