"""adopt a Cogent-house database: copy the rows moved aside into this schema

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Does nothing on a database that was never Cogent-house's. On one that was,
migrations/env.py moved its tables aside before revision 0001 ran (see base/adopt.py);
this revision copies their rows in, ids kept, and drops each original table whose rows
are all in.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from base.adopt import copy_original

    copy_original(op.get_bind())


def downgrade() -> None:
    pass  # the copied rows are this schema's rows now
