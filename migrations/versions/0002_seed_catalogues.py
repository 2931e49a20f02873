"""seed the reference catalogues and the sequence counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Sensor and node type ids are the natural key shared by every base station and
server, so they are fixed here rather than created on the fly. The rows are
written out literally: a migration must not change when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from base.migrate import refuse_downgrade_with_data

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# id, name, code, units
SENSOR_TYPES = [
    (0, "Temperature", "T", "deg.C"),
    (1, "Delta Temperature", "dT", "deg.C/s"),
    (2, "Humidity", "RH", "%"),
    (3, "Delta Humidity", "dRH", "%/s"),
    (4, "Light PAR", "PAR", "lux"),
    (5, "Light TSR", "TSR", "lux"),
    (6, "Battery Voltage", "BAT", "V"),
    (7, "Delta Battery Voltage", "dBAT", "V/s"),
    (8, "CO2", "CO2", "ppm"),
    (9, "Air Quality", "AQ", "ppm"),
    (10, "VOC", "VOC", "ppm"),
    (11, "Power", "POW", "W"),
    (12, "Heat Energy", "HE", "kWh"),
    (13, "Heat Volume", "HV", "L"),
    (14, "Delta CO2", "dCO2", "ppm/s"),
    (15, "Delta VOC", "dVOC", "ppm/s"),
    (16, "Delta Air Quality", "dAQ", "ppm/s"),
    (17, "Electricity Energy", "EE", "kWh"),
    (18, "Gas Volume", "GV", "m3"),
    (19, "Pressure", "P", "hPa"),
    (20, "Window Open", "WIN", "state"),
    (21, "Sound Level", "dB", "dBA"),
]

# id, name, sampling period in seconds
NODE_TYPES = [
    (0, "Temperature/Humidity", 300),
    (1, "Air Quality (CO2, VOC)", 300),
    (2, "Electricity Monitor", 6),
    (3, "Heat Meter", 300),
    (4, "Gas Meter", 300),
    (5, "Window Sensor", 300),
    (6, "Weather Station", 300),
]

ROOM_TYPES = [
    (1, "Bedroom"),
    (2, "Living Room"),
    (3, "Kitchen"),
    (4, "Bathroom"),
    (5, "Hall"),
    (6, "Loft"),
    (7, "Outside"),
    (8, "Utility"),
    (9, "Other"),
]

SEQUENCED_TABLES = ["Reading", "NodeState"]


def _table(name: str, *columns: sa.Column) -> sa.Table:
    return sa.table(name, *columns)  # type: ignore[arg-type]


sensor_type = _table(
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
node_type = _table(
    "NodeType",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("period", sa.Integer),
)
room_type = _table("RoomType", sa.column("id", sa.Integer), sa.column("name", sa.String))
sync_sequence = _table(
    "SyncSequence", sa.column("tableName", sa.String), sa.column("lastSeq", sa.BigInteger)
)


def upgrade() -> None:
    op.bulk_insert(
        sensor_type,
        [
            {"id": i, "name": n, "code": c, "units": u, "c0": 0.0, "c1": 1.0, "c2": 0.0, "c3": 0.0}
            for i, n, c, u in SENSOR_TYPES
        ],
    )
    op.bulk_insert(node_type, [{"id": i, "name": n, "period": p} for i, n, p in NODE_TYPES])
    op.bulk_insert(room_type, [{"id": i, "name": n} for i, n in ROOM_TYPES])
    op.bulk_insert(sync_sequence, [{"tableName": t, "lastSeq": 0} for t in SEQUENCED_TABLES])
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids do not advance PostgreSQL's serial; later rooms types would collide.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('\"RoomType\"', 'id'), "
            '(SELECT max(id) FROM "RoomType"))'
        )


def downgrade() -> None:
    refuse_downgrade_with_data(op.get_bind(), "0002")
    op.execute(sync_sequence.delete())
    op.execute(room_type.delete())
    op.execute(node_type.delete())
    op.execute(sensor_type.delete())
