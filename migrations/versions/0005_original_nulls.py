"""the columns Cogent-house left nullable may hold NULL here too

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

A Cogent-house database can hold a house without a deployment or an address, a
location without a room, a sensor without a calibration, a deployment or room
without a name. Adopting it must keep those rows, so the columns accept NULL; the
pusher sets such a row aside, with what depends on it, instead of sending it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_TEXT = sa.String(length=255).with_variant(
    mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
)
DOUBLE = sa.Double().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")

COLUMNS = {
    "Deployment": [("name", KEY_TEXT)],
    "House": [("deploymentId", sa.Integer()), ("address", KEY_TEXT)],
    "Room": [("name", KEY_TEXT)],
    "Location": [("houseId", sa.Integer()), ("roomId", sa.Integer())],
    "Sensor": [("calibrationSlope", DOUBLE), ("calibrationOffset", DOUBLE)],
}


def _set_nullable(nullable: bool) -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, type_ in columns:
                batch.alter_column(name, existing_type=type_, nullable=nullable)


def upgrade() -> None:
    _set_nullable(True)


def downgrade() -> None:
    from base.migrate import refuse_downgrade_with_nulls

    refuse_downgrade_with_nulls(op.get_bind(), COLUMNS)
    _set_nullable(False)
