"""Sending set-aside rows again once their cause is fixed (``RestPusher.py retry``).

A row is set aside when it cannot be sent (no location, NaN) or the remote refused it
(unknown sensor type there, another site's location). The cursor has moved past it, so
no cycle looks at it again. When the cause goes away — the installer gives the node a
location and the readings are corrected, the server learns the sensor type — ``retry``
reads those rows by id and sends them through the same path as a cycle. What gets
through is no longer set aside; what is refused again stays, with its new reason and
one more attempt counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Row, Table, select

from base.config import Config, RemoteConfig
from models import SyncRejected
from push.client import RemoteClient
from push.cycle import RemoteSync, local_database_errors
from push.metadata import MetadataMapper
from push.streams import STREAMS

log = logging.getLogger(__name__)


@dataclass
class RetryReport:
    remote: str
    tried: int = 0
    delivered: int = 0
    gone: int = 0  # set aside, but deleted from the local database since: forgotten
    still: Counter[str] = field(default_factory=Counter)  # reason → rows still set aside

    @property
    def still_aside(self) -> int:
        return sum(self.still.values())

    def describe(self) -> str:
        if not self.tried:
            return f"{self.remote}: no set-aside rows to retry"
        text = (
            f"{self.remote}: {self.tried} set-aside rows tried: {self.delivered} delivered, "
            f"{self.still_aside} still set aside"
        )
        if self.gone:
            text += f", {self.gone} no longer in the local database (forgotten)"
        for reason, n in self.still.most_common(10):
            text += f"\n  {n} rows: {reason}"
        return text


class Retrier:
    """Retries one remote's set-aside rows, ``batch`` at a time."""

    def __init__(
        self,
        config: Config,
        remote: RemoteConfig,
        engine: Engine,
        client: RemoteClient | None = None,
    ):
        self.sync = RemoteSync(config, remote, engine, client=client)
        self.engine = engine
        self.remote = remote
        self.batch = config.pushlimit

    def close(self) -> None:
        self.sync.close()

    def run(self, reason: str | None = None) -> RetryReport:
        report = RetryReport(self.remote.name)
        with local_database_errors(self.engine):
            self.sync.check_schema()
            mapper = MetadataMapper(self.engine, self.sync.store, self.sync.client)
            for stream in STREAMS:
                after = -1
                while ids := self._page(stream.name, reason, after):
                    after = ids[-1]
                    rows = self._rows(stream.table, ids)
                    still = self.sync.send_rows(stream, rows, mapper).set_aside if rows else []
                    self.sync.store.settle_set_aside(self.remote.name, stream.name, ids, still)
                    report.tried += len(ids)
                    report.gone += len(ids) - len(rows)
                    report.delivered += len(rows) - len(still)
                    report.still.update(s.reason for s in still)
                    log.info(
                        "%s: retried %d set-aside %s rows: %d delivered, %d still set aside",
                        self.remote.name,
                        len(ids),
                        stream.name,
                        len(rows) - len(still),
                        len(still),
                    )
        return report

    def _page(self, table: str, reason: str | None, after: int) -> list[int]:
        stmt = (
            select(SyncRejected.localId)
            .where(
                SyncRejected.remote == self.remote.name,
                SyncRejected.tableName == table,
                SyncRejected.localId > after,
            )
            .order_by(SyncRejected.localId)
            .limit(self.batch)
        )
        if reason:
            stmt = stmt.where(SyncRejected.reason.contains(reason, autoescape=True))
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(stmt).scalars()]

    def _rows(self, table: Table, ids: list[int]) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)))
