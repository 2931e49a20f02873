"""Running the server: refuse a database at the wrong schema revision, then start uvicorn."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from base.db import redact
from base.errors import ConfigError, SchemaMismatch
from base.failover import make_cluster_engine
from base.migrate import current_revision, head_revision
from rest.logs import uvicorn_log_config
from rest.settings import SETTINGS_ENV, Settings

WORKER_HEALTHCHECK_SECONDS = 60


def check_schema(db_url: str, failover: Sequence[str] = ()) -> str:
    """The database's revision if it is the code's head; else SchemaMismatch saying what to run.
    With ``failover`` nodes, whichever node answers first is asked."""
    engine = make_cluster_engine([db_url, *failover])
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        why = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(f"cannot reach the database {redact(db_url)}: {why}") from None
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        return current
    upgrade = f"alembic -x url={redact(db_url)} upgrade head"
    if current is None:
        raise SchemaMismatch(
            f"the database {redact(db_url)} has no cogent-sync schema; create it with: {upgrade}"
        )
    raise SchemaMismatch(
        f"the database is at schema revision {current} but this server needs {head}; "
        f"run: {upgrade} (if {current} is newer than {head}, upgrade this server's code instead)"
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from rest.protocol import HeaderDeadlineProtocol

    check_schema(settings.db_url, settings.db_failover)
    log_config = uvicorn_log_config(settings.log_level)
    HeaderDeadlineProtocol.header_timeout = settings.header_timeout
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": log_config,
        "proxy_headers": True,
        "http": HeaderDeadlineProtocol,
        # The first SIGTERM stops the server within this, even with requests still running
        # (their transactions roll back; a pusher re-sends its batch).
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run(
            "rest.app:create_app_from_env", factory=True, workers=settings.workers,
            # uvicorn kills a worker that does not answer its health check within 5 s by
            # default; a worker busy with batches on a loaded machine can take longer, and
            # killing it cut its requests off mid-way (a fleet of 1,000 stations lost its
            # map requests that way). A hung worker is still replaced, after a minute.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **common
        )
    else:
        from rest.app import create_app

        uvicorn.run(create_app(settings), **common)
