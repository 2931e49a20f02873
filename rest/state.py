"""What every request handler needs: the settings and the database engine."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy import Engine, event

from base.db import READ_COMMITTED
from base.failover import make_cluster_engine
from rest.admission import Admission
from rest.bulkwrite import RowWriter
from rest.counters import Metrics
from rest.settings import Settings


@dataclass
class TouchThrottle:
    """Remembers when each key's lastUsed was last written, so it is written rarely."""

    interval: float
    _last: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def due(self, key_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.interval:
                return False
            self._last[key_id] = now
            return True


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    touch: TouchThrottle
    admission: Admission
    metrics: Metrics
    batch_touch: TouchThrottle
    writer: RowWriter


def limit_statement_time(engine: Engine, seconds: float) -> None:
    """Every connection of ``engine`` stops a statement after ``seconds`` (SQLite has no
    such limit; its statements are bounded by the request limits instead)."""
    name = engine.dialect.name
    if name in ("mysql", "mariadb"):
        sql = f"SET SESSION max_statement_time = {seconds:.3f}"
    elif name == "postgresql":
        sql = f"SET statement_timeout = {int(seconds * 1000)}"
    else:
        return

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()
        if name == "postgresql":
            dbapi_connection.commit()  # psycopg opened a transaction for the SET


def build_state(settings: Settings) -> AppState:
    kwargs: dict[str, Any] = {}
    if not settings.db_url.startswith("sqlite"):
        # Every connection READ COMMITTED (PostgreSQL's default; MariaDB's write transactions
        # had it anyway): base.db.write_engine says why not per transaction.
        kwargs = {"pool_size": settings.pool_size, "max_overflow": settings.pool_overflow,
                  "pool_timeout": settings.pool_timeout, "isolation_level": READ_COMMITTED}
    writer = RowWriter(settings.write_path)
    if settings.db_url.startswith(("mysql", "mariadb")) and writer.bulk_for("mysql"):
        kwargs["connect_args"] = {"local_infile": True}  # else PyMySQL refuses LOAD DATA LOCAL
    engine = make_cluster_engine(settings.db_nodes(), **kwargs)
    limit_statement_time(engine, settings.statement_timeout)
    return AppState(settings, engine, TouchThrottle(settings.touch_interval),
                    Admission(settings.batch_limit()), Metrics(engine),
                    TouchThrottle(settings.touch_interval), writer)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cogent
    return state
