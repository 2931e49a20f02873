"""Alembic environment: same URL rules and engine settings as the applications."""

from __future__ import annotations

import logging.config

from alembic import context

from base.db import make_engine
from base.migrate import resolve_url
from models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
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


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = resolve_url(context.get_x_argument(as_dictionary=True), config.attributes)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
