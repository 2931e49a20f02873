"""station status: what each base station last reported on check-in

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "StationStatus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("siteId", sa.Integer(), nullable=False),
        sa.Column(
            "hostname",
            sa.String(length=255).with_variant(
                mysql.VARCHAR(length=255, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column("dialect", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("stationClock", UTC_DATETIME, nullable=True),
        sa.Column("lastContact", UTC_DATETIME, nullable=False),
        sa.Column("clockOffset", sa.Float(), nullable=True),
        sa.Column("backlog", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["siteId"], ["Site.id"], name=op.f("fk_StationStatus_siteId_Site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_StationStatus")),
        sa.UniqueConstraint("siteId", "hostname", name=op.f("uq_StationStatus_siteId_hostname")),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("StationStatus")
