"""The server's settings: one typed object, built by the CLI and passed to ``create_app``."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import orjson

MIB = 1024 * 1024
DEFAULT_PORT = 6543
SETTINGS_ENV = "COGENT_REST_SETTINGS"


@dataclass(frozen=True)
class Settings:
    db_url: str
    # Further nodes of the same cluster (MariaDB Galera), tried in order when the node in use
    # fails (base/failover.py); empty: one database.
    db_failover: tuple[str, ...] = ()
    max_body: int = 32 * MIB
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    # Connections per worker; FastAPI runs sync handlers in a thread pool of 40.
    pool_size: int = 10
    pool_overflow: int = 20
    # Seconds a request waits for a pooled connection before it is answered 503.
    pool_timeout: float = 10.0
    # Seconds one SQL statement may run (MariaDB/MySQL, PostgreSQL) before the database stops it
    # and the request is answered 503: an abandoned or huge query cannot hold a connection.
    statement_timeout: float = 60.0
    # Batches applied at once per worker; more get 429 + Retry-After (0: as many as the pool
    # has connections, 4 on SQLite, which has one writer anyway).
    max_batches: int = 0
    # How new rows are written (rest/bulkwrite.py): auto, insert or bulk.
    write_path: str = "auto"
    # Seconds a request's whole body may take to arrive (408 after).
    body_timeout: float = 60.0
    # Seconds a request's headers may take to arrive (the connection is closed after).
    header_timeout: float = 20.0
    # Seconds a SIGTERM waits for requests in progress before the server stops anyway.
    shutdown_timeout: float = 10.0
    # The fleet page calls a station silent after this long without contact (late after a third).
    silent_after: float = 900.0
    # Seconds between fillings of the house page's day cache in the background (0: never).
    warm_interval: float = 600.0

    def batch_limit(self) -> int:
        if self.max_batches:
            return self.max_batches
        return 4 if self.db_url.startswith("sqlite") else self.pool_size
    default_limit: int = 1000
    max_limit: int = 10_000
    # ApiKey.lastUsed / Site.lastSeen are written at most this often per key.
    touch_interval: float = 60.0
    log_level: str = "info"

    def db_nodes(self) -> tuple[str, ...]:
        return (self.db_url, *self.db_failover)

    def to_env(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()

    @classmethod
    def from_env(cls) -> Settings:
        """Settings handed to worker processes through the environment (``--workers N``)."""
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(
                f"{SETTINGS_ENV} is not set; start the server with cogent-rest serve"
            )
        values = orjson.loads(raw)
        values["db_failover"] = tuple(values.get("db_failover", ()))
        return cls(**values)
