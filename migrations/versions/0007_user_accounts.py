"""user accounts: log in with a password to obtain a site's key

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "UserAccount",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=64).with_variant(
                mysql.VARCHAR(length=64, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            nullable=False,
        ),
        sa.Column("passwordHash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("siteId", sa.Integer(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failedLogins", sa.Integer(), nullable=False),
        sa.Column("lockedUntil", UTC_DATETIME, nullable=True),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("lastLogin", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["siteId"], ["Site.id"], name=op.f("fk_UserAccount_siteId_Site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_UserAccount")),
        sa.UniqueConstraint("name", name=op.f("uq_UserAccount_name")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("UserAccount") as batch_op:
        batch_op.create_index(batch_op.f("ix_UserAccount_siteId"), ["siteId"], unique=False)


def downgrade() -> None:
    op.drop_table("UserAccount")  # its index goes with it (MySQL refuses to drop it first)
