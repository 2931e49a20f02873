"""Alembic environment: same URL rules and engine settings as the applications."""

from __future__ import annotations

import logging.config

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection

from base.adopt import prepare_adoption
from base.db import make_engine
from base.migrate import resolve_url
from models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Tables we do not model (an adopted Cogent-house database keeps Weather, Event,
    Occupier, ...) are left alone, and do not count as drift."""
    return not (type_ == "table" and reflected and compare_to is None)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_object=_ours,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        **kwargs,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    _configure(
        url=resolve_url(context.get_x_argument(as_dictionary=True), config.attributes),
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_pragma(conn: Connection, setting: str) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA {setting}")


def _migrate(conn: Connection) -> None:
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Batch mode copies a table and drops the old one, which enforced foreign keys
        # refuse while rows refer to it; the references are checked once at the end.
        conn.commit()
        _sqlite_pragma(conn, "foreign_keys = OFF")  # outside any transaction, or a no-op
    try:
        prepare_adoption(conn)
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise CommandError(f"the migration left rows that refer to missing rows: "
                                   f"{broken[:5]}; restore the backup and report this")
    finally:
        if sqlite:
            conn.commit()
            _sqlite_pragma(conn, "foreign_keys = ON")


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = resolve_url(context.get_x_argument(as_dictionary=True), config.attributes)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _migrate(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
