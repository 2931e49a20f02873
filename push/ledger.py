"""The pusher's state in the local database: cursors, id maps, set-aside rows, status.

Each remote has its own cursors, id map and set-aside rows. The cursor of a
stream only moves forward, and only in the same local transaction that
records the rows the remote rejected from that batch, so a crash leaves either
both or neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update

from base.db import write_engine
from models import SyncCursor, SyncIdMap, SyncRejected, SyncRemote
from models.base import table_of
from models.sql import upsert, utcnow


@dataclass(frozen=True)
class SetAside:
    table: str
    local_id: int
    sync_seq: int | None
    reason: str


@dataclass(frozen=True)
class MappedRow:
    table: str
    local_id: int
    remote_id: int
    digest: str


class LocalStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.writer = write_engine(engine)

    # -- cursors ---------------------------------------------------------------------------------
    def cursor(self, remote: str, stream: str) -> int:
        with self.engine.connect() as conn:
            pos = conn.execute(
                select(SyncCursor.position).where(
                    SyncCursor.remote == remote, SyncCursor.stream == stream
                )
            ).scalar_one_or_none()
        return int(pos or 0)

    def advance(
        self, remote: str, stream: str, position: int, set_aside: Sequence[SetAside] = ()
    ) -> None:
        """Record set-aside rows and move the cursor forward, in one transaction."""
        now = utcnow()
        with self.writer.begin() as conn:
            if set_aside:
                self._set_aside(conn, remote, set_aside, now)
            conn.execute(
                upsert(
                    self.engine.dialect,
                    table_of(SyncCursor),
                    ["remote", "stream"],
                    ["position", "updated"],
                ),
                [{"remote": remote, "stream": stream, "position": position, "updated": now}],
            )

    def set_aside(self, remote: str, rows: Sequence[SetAside]) -> None:
        if rows:
            with self.writer.begin() as conn:
                self._set_aside(conn, remote, rows, utcnow())

    def _set_aside(self, conn, remote: str, rows: Sequence[SetAside], now: datetime) -> None:  # type: ignore[no-untyped-def]
        table = table_of(SyncRejected)
        values = [
            {
                "remote": remote,
                "tableName": r.table,
                "localId": r.local_id,
                "syncSeq": r.sync_seq,
                "reason": r.reason[:2000],
                "firstSeen": now,
                "lastSeen": now,
                "attempts": 1,
            }
            for r in rows
        ]
        conn.execute(
            upsert(
                self.engine.dialect,
                table,
                ["remote", "tableName", "localId"],
                ["reason", "lastSeen", "syncSeq"],
            ),
            values,
        )

    def settle_set_aside(
        self, remote: str, table: str, tried: Sequence[int], still: Sequence[SetAside]
    ) -> None:
        """After a retry of the set-aside rows ``tried`` (local ids of ``table``): forget the
        ones that got through, keep ``still`` with their new reason and one more attempt."""
        t = table_of(SyncRejected)
        again = [s.local_id for s in still]
        with self.writer.begin() as conn:
            conn.execute(
                t.delete().where(
                    t.c.remote == remote,
                    t.c.tableName == table,
                    t.c.localId.in_(set(tried) - set(again)),
                )
            )
            if still:
                self._set_aside(conn, remote, still, utcnow())
                conn.execute(
                    t.update()
                    .where(t.c.remote == remote, t.c.tableName == table, t.c.localId.in_(again))
                    .values(attempts=t.c.attempts + 1)
                )

    def reset_cursor(self, remote: str, stream: str, position: int = 0) -> None:
        with self.writer.begin() as conn:
            conn.execute(
                upsert(
                    self.engine.dialect,
                    table_of(SyncCursor),
                    ["remote", "stream"],
                    ["position", "updated"],
                ),
                [
                    {
                        "remote": remote,
                        "stream": stream,
                        "position": position,
                        "updated": utcnow(),
                    }
                ],
            )

    # -- id map ----------------------------------------------------------------------------------
    def id_map(self, remote: str, table: str) -> dict[int, tuple[int, str | None]]:
        """local id → (remote id, digest of what was last sent) for one table."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SyncIdMap.localId, SyncIdMap.remoteId, SyncIdMap.digest).where(
                    SyncIdMap.remote == remote, SyncIdMap.tableName == table
                )
            )
            return {int(r.localId): (int(r.remoteId), r.digest) for r in rows}

    def save_mappings(self, remote: str, rows: Iterable[MappedRow]) -> None:
        now = utcnow()
        values = [
            {
                "remote": remote,
                "tableName": r.table,
                "localId": r.local_id,
                "remoteId": r.remote_id,
                "digest": r.digest,
                "updated": now,
            }
            for r in rows
        ]
        if not values:
            return
        with self.writer.begin() as conn:
            for i in range(0, len(values), 500):
                conn.execute(
                    upsert(
                        self.engine.dialect,
                        table_of(SyncIdMap),
                        ["remote", "tableName", "localId"],
                        ["remoteId", "digest", "updated"],
                    ),
                    values[i : i + 500],
                )

    def forget_rows(self, remote: str, rows: list[tuple[str, int]]) -> None:
        """Forget the mappings of (table name, local id) pairs."""
        if not rows:
            return
        t = table_of(SyncIdMap)
        with self.writer.begin() as conn:
            for table_name, local_id in rows:
                conn.execute(
                    t.delete().where(
                        t.c.remote == remote, t.c.tableName == table_name, t.c.localId == local_id
                    )
                )

    def forget_mappings(self, remote: str) -> None:
        with self.writer.begin() as conn:
            conn.execute(table_of(SyncIdMap).delete().where(SyncIdMap.remote == remote))

    # -- set-aside rows --------------------------------------------------------------------------
    def rejected_count(self, remote: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(SyncRejected)
                    .where(SyncRejected.remote == remote)
                ).scalar_one()
            )

    def rejected(self, remote: str, limit: int = 10) -> list[SyncRejected]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SyncRejected)
                .where(SyncRejected.remote == remote)
                .order_by(SyncRejected.lastSeen.desc(), SyncRejected.id.desc())
                .limit(limit)
            )
            return [SyncRejected(**r._mapping) for r in rows]

    # -- status ----------------------------------------------------------------------------------
    def remote_state(self, remote: str) -> SyncRemote | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(SyncRemote).where(SyncRemote.remote == remote)).first()
        return SyncRemote(**row._mapping) if row else None

    def record_attempt(
        self,
        remote: str,
        *,
        ok: bool,
        error: str | None = None,
        revision: str | None = None,
        metadata_synced: datetime | None = None,
    ) -> None:
        now = utcnow()
        values: dict[str, object] = {"remote": remote, "lastAttempt": now}
        if ok:
            values["lastSuccess"] = now
        if error is not None:
            values["lastError"] = error[:4000]
            values["lastErrorAt"] = now
        if revision is not None:
            values["remoteRevision"] = revision
        if metadata_synced is not None:
            values["lastMetadataSync"] = metadata_synced
        cols = [c for c in values if c != "remote"]
        with self.writer.begin() as conn:
            exists = conn.execute(
                select(SyncRemote.remote).where(SyncRemote.remote == remote)
            ).first()
            if exists:
                conn.execute(
                    update(SyncRemote)
                    .where(SyncRemote.remote == remote)
                    .values({c: values[c] for c in cols})
                )
            else:
                conn.execute(table_of(SyncRemote).insert().values(values))
