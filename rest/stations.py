"""Check-ins from base stations: recorded per (site, host name), listed for people.

Both dialects land here — the native pusher's hello and the original pusher's
``pushstatus/`` — so the fleet page and ``GET /rest/pushstatus/`` see every station
whichever client it still runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from models import Site, StationStatus
from models.base import table_of
from models.sql import utcnow
from models.stations import DIALECT_NATIVE

HOSTNAME_MAX = 255
VERSION_MAX = 64


@dataclass(frozen=True)
class CheckIn:
    host: str
    version: str | None
    clock: datetime | None  # the station's clock, naive UTC, as it reported it
    backlog: int | None
    dialect: str = DIALECT_NATIVE
    schema: str | None = None  # the station's schema revision
    set_aside: int | None = None  # rows the station set aside for this server


def record_station_checkin(conn: Connection, site_id: int, checkin: CheckIn, now: datetime) -> None:
    """Remember what the station said and when; its clock offset is station minus server."""
    offset = None if checkin.clock is None else (checkin.clock - now).total_seconds()
    values = {
        "dialect": checkin.dialect,
        "version": None if checkin.version is None else checkin.version[:VERSION_MAX],
        "stationClock": checkin.clock,
        "lastContact": now,
        "clockOffset": offset,
        "backlog": checkin.backlog,
        "schemaRevision": checkin.schema,
        "setAside": checkin.set_aside,
    }
    host = checkin.host[:HOSTNAME_MAX]
    table = table_of(StationStatus)
    where = (table.c.siteId == site_id) & (table.c.hostname == host)
    if not conn.execute(update(table).where(where).values(values)).rowcount:
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(siteId=site_id, hostname=host, **values))
        except IntegrityError:  # the same station checked in twice at once
            conn.execute(update(table).where(where).values(values))
    conn.execute(update(table_of(Site)).where(table_of(Site).c.id == site_id).values(lastSeen=now))


@dataclass(frozen=True)
class Station:
    site: str
    host: str
    dialect: str
    version: str | None
    last_contact: datetime
    clock_offset: float | None
    backlog: int | None
    schema: str | None = None
    set_aside: int | None = None
    last_batch: datetime | None = None


def list_stations(conn: Connection, site_id: int | None = None) -> list[Station]:
    """Every station that ever checked in (only one site's when ``site_id`` is given)."""
    status, site = table_of(StationStatus), table_of(Site)
    query = (
        select(site.c.name, site.c.lastBatch, status)
        .join(site, site.c.id == status.c.siteId)
        .order_by(site.c.name, status.c.hostname)
    )
    if site_id is not None:
        query = query.where(status.c.siteId == site_id)
    return [
        Station(
            site=row.name,
            host=row.hostname,
            dialect=row.dialect,
            version=row.version,
            last_contact=row.lastContact,
            clock_offset=row.clockOffset,
            backlog=row.backlog,
            schema=row.schemaRevision,
            set_aside=row.setAside,
            last_batch=row.lastBatch,
        )
        for row in conn.execute(query)
    ]


def record_batch(conn: Connection, site_id: int, now: datetime) -> None:
    """When the site's last batch arrived (the fleet page's "last batch")."""
    conn.execute(update(table_of(Site)).where(table_of(Site).c.id == site_id)
                 .values(lastBatch=now))


async def note_batch(state: Any, principal: Any) -> None:
    """Record the site's last batch, at most once a minute per site (a write per batch would
    cost more than the figure is worth)."""
    from fastapi.concurrency import run_in_threadpool

    from rest.txn import run_write

    site = principal.site_id
    if site is None or not state.batch_touch.due(site):
        return
    now = utcnow()
    await run_in_threadpool(run_write, state.engine, lambda conn: record_batch(conn, site, now))
