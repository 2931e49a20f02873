"""Schema revisions: where the URL comes from, upgrading, and reading revisions.

Both sides compare revisions before pushing (replication contract, rule 8),
so reading "what revision is this database at" and "what is head" lives here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from base.config import find_config_path, load_config
from base.errors import ConfigError

DB_URL_ENV = "COGENT_DB_URL"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def resolve_url(x_args: Mapping[str, str], attributes: Mapping[str, Any] | None = None) -> str:
    """``-x url=``, else ``$COGENT_DB_URL``, else ``localurl`` of synchronise.conf."""
    if attributes and attributes.get("url"):
        return str(attributes["url"])
    if x_args.get("url"):
        return x_args["url"]
    env = os.environ.get(DB_URL_ENV)
    if env:
        return env
    path = find_config_path(x_args.get("config"))
    if not path.is_file():
        raise ConfigError(
            "no database given: use 'alembic -x url=URL upgrade head', set COGENT_DB_URL, "
            f"or put localurl in {path}"
        )
    return load_config(path).localurl


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic config that works from any directory (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["skip_logging"] = True
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(bind).get_current_revision()


def revision_order() -> list[str]:
    """Every known revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def schema_advice(
    local: str | None,
    remote: str | None,
    *,
    remote_name: str = "the remote",
    local_url: str = "LOCAL_URL",
) -> str | None:
    """None when the revisions match; otherwise what differs and which side to upgrade, how."""
    if local == remote:
        return None
    order = revision_order()
    local_cmd = f"alembic -x url={local_url} upgrade head"
    if local is None:
        return f"the local database has no schema yet: run '{local_cmd}'"
    if remote is None:
        return (
            f"{remote_name} has no schema revision: its operator must run "
            f"'alembic -x url=SERVER_DB_URL upgrade head' on the server"
        )
    if remote not in order:
        return (
            f"{remote_name} is at schema revision {remote}, newer than this base station "
            f"knows (local {local}): upgrade cogent-sync here, then run '{local_cmd}'"
        )
    if local not in order:
        return (
            f"the local database is at revision {local}, unknown to this cogent-sync; "
            f"upgrade cogent-sync here"
        )
    if order.index(local) < order.index(remote):
        return (
            f"the local database is at schema revision {local}, {remote_name} at {remote}: "
            f"upgrade the local side with '{local_cmd}'"
        )
    return (
        f"{remote_name} is at schema revision {remote}, the local database at {local}: "
        f"the server's operator must run 'alembic -x url=SERVER_DB_URL upgrade head' "
        f"(and upgrade cogent-sync there)"
    )
