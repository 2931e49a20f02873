"""Schema revisions: where the URL comes from, upgrading, and reading revisions.

Both sides compare revisions before pushing (replication contract, rule 8),
so reading "what revision is this database at" and "what is head" lives here.
The two questions a daemon asks every cycle are answered without importing
Alembic, which would add about 10 MiB to a pusher that otherwise never needs it.
"""

from __future__ import annotations

import ast
import functools
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from base.adopt import ORIGINAL_REVISIONS
from base.config import find_config_path, load_config
from base.errors import ConfigError, SchemaMismatch

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

DB_URL_ENV = "COGENT_DB_URL"
# CPython 3.11's ast.parse is not safe in two threads at once ("AST constructor recursion
# depth mismatch"), and every remote's thread asks for the head revision on its first cycle.
_AST_LOCK = threading.Lock()
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
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["skip_logging"] = True
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url``; a revision Alembic cannot place (the database's or the
    one asked for) is a :class:`SchemaMismatch` in one line, with nothing changed."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(url), revision)
    except CommandError as exc:
        if "Can't locate revision" not in str(exc):
            raise
        unknown = str(exc).rsplit("identified by", 1)[-1].strip(" '\"")
        raise SchemaMismatch(
            f"cannot upgrade: revision {unknown!r} is not one this cogent-sync knows (its "
            f"revisions are {', '.join(revision_order())}); a database at it was made by a "
            f"newer cogent-sync or another program — upgrade cogent-sync, or check the "
            f"database URL (nothing was changed)") from None


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


@functools.cache
def head_revision() -> str:
    """The newest revision of migrations/versions, read from the revision files' own
    ``revision`` and ``down_revision`` (Alembic decides when they do not form one line)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        try:
            found = _revision_ids(path)
        except ValueError:  # not plain literals: leave it to Alembic
            return _alembic_head()
        if found is None:
            continue  # not a revision file (__init__.py)
        revision, down = found
        revisions.add(revision)
        parents.update(down)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _revision_ids(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """(revision, down revisions) assigned at the top of a revision file; None when it
    assigns no revision; ValueError when they are not plain literals."""
    values: dict[str, Any] = {}
    with _AST_LOCK:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value) if value is not None else None
    if "revision" not in values:
        return None
    revision, down = values["revision"], values.get("down_revision")
    if not isinstance(revision, str):
        raise ValueError(f"{path.name}: revision is not a string")
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    raise ValueError(f"{path.name}: down_revision is not a string or strings")


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _stored_revision(conn)
    return _stored_revision(bind)


def _stored_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(versions) > 1:
        raise RuntimeError(f"the database is at several schema heads at once: {versions}")
    return str(versions[0]) if versions else None


def revision_order() -> list[str]:
    """Every known revision, oldest first."""
    from alembic.script import ScriptDirectory

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
    if local in ORIGINAL_REVISIONS:
        return (
            f"the local database is a Cogent-house database (revision {local}): back it up, "
            f"then adopt it with 'python RestPusher.py migrate' (or '{local_cmd}')"
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


# Tables whose rows are the data a downgrade below 0002 would destroy or orphan.
_DATA_TABLES = ("Reading", "NodeState", "Node", "House")


def refuse_downgrade_with_data(conn: Connection, below: str) -> None:
    """Stop a downgrade below revision ``below`` when the database holds readings, node
    states, nodes or houses: it would delete them or the catalogue they refer to. Raised as
    Alembic's CommandError, which its command line prints as one line."""
    from alembic.util import CommandError

    held = []
    for table in _DATA_TABLES:
        q = conn.dialect.identifier_preparer.quote(table)
        n = int(conn.execute(text(f"SELECT COUNT(*) FROM {q}")).scalar_one())
        if n:
            held.append(f"{n} {table}")
    if held:
        raise CommandError(
            f"refusing to downgrade below {below}: this database holds {', '.join(held)} "
            f"rows, which that would delete or orphan; their data is intact ('alembic current' "
            f"shows where it stopped; back up and empty those tables first if you mean it)")


def refuse_downgrade_with_nulls(
    conn: Connection, columns: Mapping[str, Sequence[tuple[str, Any]]]
) -> None:
    """Stop a downgrade that would make a column NOT NULL while rows hold NULL in it."""
    from alembic.util import CommandError

    quote = conn.dialect.identifier_preparer.quote
    held = []
    for table, cols in columns.items():
        for name, _type in cols:
            n = int(conn.execute(text(
                f"SELECT COUNT(*) FROM {quote(table)} WHERE {quote(name)} IS NULL")).scalar_one())
            if n:
                held.append(f"{n} {table}.{name}")
    if held:
        raise CommandError(
            f"refusing to downgrade: NULL in {', '.join(held)}, which the older schema cannot "
            f"hold; set those values first if you mean it")
