"""the original Cogent-house catalogue: sensor, node and room types keep its ids

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Revision 0002 seeded a catalogue of our own whose ids 12-21 (sensor types), 0-6 (node
types) and 2-9 (room types) mean something else in Cogent-house, whose databases are the
ones this project adopts. This revision gives every original id its original meaning:

* a type of ours the original also has moves to the original's id (our "Heat Energy" 12
  becomes the original's 18), carrying its readings, sensors and nodes along;
* a type of ours the original lacks moves to an id outside the original's range (200+);
* every original row that is missing is added.

Only rows that still carry 0002's meaning move: a database adopted from Cogent-house
already has the original meanings and keeps them, as does any row an operator changed.
The pusher's id map for the catalogue is cleared, so both sides are matched afresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The original catalogue (Cogent-house populateData): id, name, code, units, c1.
ORIGINAL_SENSOR_TYPES = [
    (0, "Temperature", "T", "deg.C", 1.0),
    (1, "Delta Temperature", "dT", "deg.C/s", 1.0),
    (2, "Humidity", "RH", "%", 1.0),
    (3, "Delta Humidity", "dRH", "%/s", 1.0),
    (4, "Light PAR", "PAR", "Lux", 1.0),
    (5, "Light TSR", "TSR", "Lux", 1.0),
    (6, "Battery Voltage", "BAT", "V", 1.0),
    (7, "Delta Battery Voltage", "dBT", "V/s", 1.0),
    (8, "CO2", "CO2", "ppm", 1.0),
    (9, "Air Quality", "AQ", "ppm", 1.0),
    (10, "VOC", "VOC", "ppm", 1.0),
    (11, "Power", "POW", "W", 1.0),
    (12, "Heat", "HET", "W", 1.0),
    (13, "Duty cycle", "DUT", "ms", 1.0),
    (14, "Error", "ERR", "", 1.0),
    (15, "Power Min", "PMI", "w", 1.0),
    (16, "Power Max", "PMA", "w", 1.0),
    (17, "Power Consumption", "CON", "kWh", 1.0),
    (18, "Heat Energy", "HEN", "kWh", 1.0),
    (19, "Heat Volume", "HVO", "L", 1.0),
    (20, "Delta CO2", "dCO2", "ppm/s", 1.0),
    (21, "Delta VOC", "dVOC", "ppm/s", 1.0),
    (22, "Delta AQ", "dAQ", "v/s", 1.0),
    (23, "Temperature Health", "TH", "%", 1.0),
    (24, "Temperature Cold", "TC", "%", 1.0),
    (25, "Temperature Comfort", "TM", "%", 1.0),
    (26, "Temperature Warm", "TW", "%", 1.0),
    (27, "Temperature Over", "TO", "%", 1.0),
    (28, "Humidity Dry", "HD", "%", 1.0),
    (29, "Humidity Comfort", "HD", "%", 1.0),
    (30, "Humidity Damp", "HD", "%", 1.0),
    (31, "Humidity Risk", "HR", "%", 1.0),
    (32, "CO2 Acceptable", "CA", "%", 1.0),
    (33, "CO2 Minor", "Cmin", "%", 1.0),
    (34, "CO2 Medium", "CMED", "%", 1.0),
    (35, "CO2 Major", "CMAJ", "%", 1.0),
    (36, "VOC Acceptable", "VA", "%", 1.0),
    (37, "VOC Poor", "VP", "%", 1.0),
    (38, "AQ Acceptable", "AA", "%", 1.0),
    (39, "AQ Poor", "AP", "%", 1.0),
    (40, "Opti Smart Count", "imp", "imp", 1.0),
    (41, "Temperature ADC0", "T", "deg.C", 1.0),
    (42, "Delta Temperature ADC0", "dT", "deg.C/s", 1.0),
    (43, "Gas Pulse Count", "imp", "imp", 1.0),
    (44, "Delta Opti", "imp", "imp", 1.0),
    (45, "Window State", "ste", "ste", 1.0),
    (46, "Black Bulb", "bb", "v", 0.0),
    (47, "Delta Black Bulb", "d/bb", "v/s", 0.0),
    (99, "Gas Consumption", "Gas", "kWh", 1.0),
    (102, "Outside Temperature", "ws_temp_out", "deg.C", 1.0),
    (103, "Outside Humidity", "ws_hum_out", "deg.C", 1.0),
    (104, "WS Inside Temperature", "ws_temp_in", "deg.C", 1.0),
    (105, "WS Inside Humidity", "ws_hum_in", "deg.C", 1.0),
    (106, "Dew Point", "ws_dew", "deg.C", 1.0),
    (107, "Apparent Temperature", "ws_apparent_temp", "deg.C", 1.0),
    (108, "Wind Gust", "ws_wind_gust", "mph", 1.0),
    (109, "Average Wind Speed", "ws_wind_ave", "mph", 1.0),
    (110, "Wind Direction", "ws_wind_dir", "", 1.0),
    (111, "Wind Chill", "ws_wind_chill", "deg.C", 1.0),
    (112, "Rain Fall", "ws_rain", "mm", 1.0),
    (113, "Absolute Pressure", "ws_abs_pressure", "hpa", 1.0),
]
# Ours that the original lacks, at ids beyond its range.
OWN_SENSOR_TYPES = [
    (200, "Gas Volume", "GV", "m3", 1.0),
    (201, "Pressure", "P", "hPa", 1.0),
    (202, "Sound Level", "dB", "dBA", 1.0),
]
# 0002's rows (id, name, code) that move, and where to.
SENSOR_TYPE_MOVES = {
    (12, "Heat Energy", "HE"): 18,
    (13, "Heat Volume", "HV"): 19,
    (14, "Delta CO2", "dCO2"): 20,
    (15, "Delta VOC", "dVOC"): 21,
    (16, "Delta Air Quality", "dAQ"): 22,
    (18, "Gas Volume", "GV"): 200,
    (19, "Pressure", "P"): 201,
    (20, "Window Open", "WIN"): 45,
    (21, "Sound Level", "dB"): 202,
}
# 0002's rows that stay where they are and take the original's words for the same thing.
SENSOR_TYPE_SAME_ID = {
    (4, "Light PAR", "PAR"),
    (5, "Light TSR", "TSR"),
    (7, "Delta Battery Voltage", "dBAT"),
    (17, "Electricity Energy", "EE"),
}

# Sampling periods are seconds here; the original wrote 307200 binary milliseconds (300 s).
ORIGINAL_NODE_TYPES = [
    (0, "Base", "31,4"),
    (1, "Current Cost", "31,5"),
    (2, "CO2", "63,4"),
    (3, "Air Quality", "255,4"),
    (4, "Heat Meter", "31,4"),
    (5, "EnergyBoard", "31,4"),
    (6, "TempADC0 Node", "31,4"),
    (7, "Gas Node", "31,4"),
    (8, "Window Sensor", "31,4"),
    (10, "ClusterHead CO2", "31,4"),
    (11, "ClusterHead AQ", "31,4"),
    (12, "ClusterHead CC", "31,4"),
    (13, "ClusterHead BB", "31,4"),
]
OWN_NODE_TYPES = [(200, "Weather Station", None)]
NODE_TYPE_MOVES = {
    (0, "Temperature/Humidity"): 0,
    (1, "Air Quality (CO2, VOC)"): 3,
    (2, "Electricity Monitor"): 1,
    (3, "Heat Meter"): 4,
    (4, "Gas Meter"): 7,
    (5, "Window Sensor"): 8,
    (6, "Weather Station"): 200,
}

# Room types are matched by name, so only the seeded rows' ids change.
ORIGINAL_ROOM_TYPES = [(1, "Bedroom"), (2, "Living Area"), (3, "Wet Room"), (4, "Unocupied")]
ROOM_TYPE_MOVES = {
    (2, "Living Room"): 102,
    (3, "Kitchen"): 103,
    (4, "Bathroom"): 104,
    (5, "Hall"): 105,
    (6, "Loft"): 106,
    (7, "Outside"): 107,
    (8, "Utility"): 108,
    (9, "Other"): 109,
}

PARKED = 1_000_000  # a row waits at PARKED + its new id while the ids it needs are freed

sensor_type = sa.table(
    "SensorType",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("code", sa.String),
    sa.column("units", sa.String),
    sa.column("c0", sa.Float),
    sa.column("c1", sa.Float),
    sa.column("c2", sa.Float),
    sa.column("c3", sa.Float),
)
node_type = sa.table(
    "NodeType",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("period", sa.Integer),
    sa.column("configured", sa.String),
)
room_type = sa.table("RoomType", sa.column("id", sa.Integer), sa.column("name", sa.String))
id_map = sa.table("SyncIdMap", sa.column("tableName", sa.String))

# Who refers to each catalogue: (table, column).
REFERRERS = {
    "SensorType": [("Reading", "type"), ("Sensor", "sensorTypeId")],
    "NodeType": [("Node", "nodeTypeId")],
    "RoomType": [("Room", "roomTypeId")],
}


def _rows(conn: sa.Connection, table: sa.TableClause) -> dict[int, dict[str, object]]:
    return {int(r["id"]): dict(r) for r in conn.execute(sa.select(table)).mappings()}


def _repoint(conn: sa.Connection, catalogue: str, old: int, new: int) -> None:
    for name, column in REFERRERS[catalogue]:
        referrer = sa.table(name, sa.column(column, sa.Integer))
        conn.execute(
            sa.update(referrer).where(referrer.c[column] == old).values({column: new})
        )


def _move(
    conn: sa.Connection,
    table: sa.TableClause,
    moves: dict[int, int],
    final: Mapping[int, Mapping[str, object]],
) -> None:
    """Move rows ``old → new`` (any permutation), each ending as ``final[new]``."""
    current = _rows(conn, table)
    for old, new in moves.items():  # park: every old id is free afterwards
        parked = {**current[old], "id": PARKED + new, "name": f"parked {PARKED + new}"}
        conn.execute(sa.insert(table).values(parked))  # names may be unique: not this one
        _repoint(conn, table.name, old, PARKED + new)
        conn.execute(sa.delete(table).where(table.c.id == old))
    present = set(_rows(conn, table))
    for new in moves.values():
        row = {**final[new], "id": new}
        if new in present:
            conn.execute(sa.update(table).where(table.c.id == new).values(row))
        else:
            conn.execute(sa.insert(table).values(row))
        _repoint(conn, table.name, PARKED + new, new)
        conn.execute(sa.delete(table).where(table.c.id == PARKED + new))


def _add_missing(
    conn: sa.Connection, table: sa.TableClause, rows: Mapping[int, Mapping[str, object]]
) -> None:
    present = set(_rows(conn, table))
    missing = [{**row, "id": i} for i, row in rows.items() if i not in present]
    if missing:
        conn.execute(sa.insert(table), missing)


def _sensor_types(conn: sa.Connection) -> None:
    final = {
        i: {"name": n, "code": c, "units": u, "c0": 0.0, "c1": c1, "c2": 0.0, "c3": 0.0}
        for i, n, c, u, c1 in ORIGINAL_SENSOR_TYPES + OWN_SENSOR_TYPES
    }
    rows = _rows(conn, sensor_type)
    seeded = {(i, r["name"], r["code"]) for i, r in rows.items()}
    _move(conn, sensor_type, {k[0]: v for k, v in SENSOR_TYPE_MOVES.items() if k in seeded}, final)
    for key in SENSOR_TYPE_SAME_ID & seeded:
        words = {f: final[key[0]][f] for f in ("name", "code", "units")}
        conn.execute(sa.update(sensor_type).where(sensor_type.c.id == key[0]).values(words))
    _add_missing(conn, sensor_type, final)


def _node_types(conn: sa.Connection) -> None:
    final = {
        i: {"name": n, "period": 300, "configured": c}
        for i, n, c in ORIGINAL_NODE_TYPES + OWN_NODE_TYPES
    }
    rows = _rows(conn, node_type)
    seeded = {(i, r["name"]) for i, r in rows.items()}
    moves = {k[0]: v for k, v in NODE_TYPE_MOVES.items() if k in seeded}
    _move(conn, node_type, moves, final)
    _add_missing(conn, node_type, final)


def _room_types(conn: sa.Connection) -> None:
    final = {i: {"name": n} for i, n in ORIGINAL_ROOM_TYPES}
    rows = _rows(conn, room_type)
    seeded = {(i, r["name"]) for i, r in rows.items()}
    moves = {k[0]: v for k, v in ROOM_TYPE_MOVES.items() if k in seeded}
    names = {k[1]: v for k, v in ROOM_TYPE_MOVES.items()}
    _move(conn, room_type, moves, {v: {"name": n} for n, v in names.items()})
    taken = {str(r["name"]) for r in _rows(conn, room_type).values()}
    _add_missing(conn, room_type, {i: r for i, r in final.items() if r["name"] not in taken})


def upgrade() -> None:
    conn = op.get_bind()
    _sensor_types(conn)
    _node_types(conn)
    _room_types(conn)
    conn.execute(
        sa.delete(id_map).where(id_map.c.tableName.in_(["sensortype", "nodetype", "roomtype"]))
    )
    if conn.dialect.name == "postgresql":
        # Explicit ids do not advance PostgreSQL's serial; the next room type would collide.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('\"RoomType\"', 'id'), "
            '(SELECT max(id) FROM "RoomType"))'
        )


def downgrade() -> None:
    # The original meanings are kept: moving readings back to ids that mean something
    # else in Cogent-house would relabel them. 0003's schema is unchanged by this revision.
    pass
