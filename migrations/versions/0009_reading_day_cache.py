"""a cache of daily reading averages per location, for the house page's long ranges

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
DOUBLE = sa.Double().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "ReadingDay",
        sa.Column("locationId", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("type", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", UTC_DATETIME, nullable=False),
        sa.Column("total", DOUBLE, nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("locationId", "type", "day", name=op.f("pk_ReadingDay")),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("ReadingDay")
