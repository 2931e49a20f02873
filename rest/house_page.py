"""The house page: a house's locations by sensor types with the latest value and its age, and a
plot per location of the chosen range (7 days by default), drawn in the browser by uPlot
(shipped in rest/static/uplot from the npm registry, with its licence) from a series the
server averages into at most ``POINTS`` buckets, so a year of 5-minute readings is a few
hundred points per line. A bucket with no reading is a gap, drawn as a gap.

Behind the same login as the fleet page (rest/fleet.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, func, select
from starlette.responses import HTMLResponse, RedirectResponse, Response

from models import Deployment, House, Location, Node, Reading, Room, SensorType
from models.sql import utcnow
from rest.daycache import daily, time_bucket
from rest.errors import bad_request, not_found
from rest.fleet import COOKIE, TEMPLATES, session_account
from rest.responses import JSONBytesResponse
from rest.state import AppState, get_state

router = APIRouter(include_in_schema=False)
State = Annotated[AppState, Depends(get_state)]
POINTS = 600
RANGES = {"1": 1, "7": 7, "30": 30, "365": 365}  # days


def _locations(house_id: int) -> Any:
    return (select(Location.id, Room.name).join(Room, Room.id == Location.roomId)
            .where(Location.houseId == house_id).order_by(Room.name))


def house_summary(engine: Engine, house_id: int, now: datetime) -> dict[str, Any] | None:
    with engine.connect() as conn:
        head = conn.execute(select(House.address, Deployment.name)
                            .outerjoin(Deployment, Deployment.id == House.deploymentId)
                            .where(House.id == house_id)).first()
        if head is None:
            return None
        locations = conn.execute(_locations(house_id)).all()
        ids = [loc.id for loc in locations]
        # The latest reading of each node and type, by the (nodeId, type, time) index: a few
        # index probes instead of a scan of the house's rows.
        latest = []
        nodes = conn.execute(select(Node.id).where(Node.locationId.in_(ids))).scalars().all()
        for node in nodes:
            after = -1
            while True:  # each next type is one index probe (no engine here skips for DISTINCT)
                kind: int | None = conn.execute(
                    select(func.min(Reading.type))
                    .where(Reading.nodeId == node, Reading.type > after)).scalar()
                if kind is None:
                    break
                after = kind
                row = conn.execute(
                    select(Reading.locationId, Reading.value, Reading.time)
                    .where(Reading.nodeId == node, Reading.type == kind,
                           Reading.locationId.in_(ids))
                    .order_by(Reading.time.desc()).limit(1)).first()
                if row is not None:
                    latest.append((row.locationId, kind, row.value, row.time))
        types = {t.id: (t.name, t.units) for t in conn.execute(
            select(SensorType.id, SensorType.name, SensorType.units))}
    rooms = {loc.id: loc.name for loc in locations}
    return {
        "address": head.address, "deployment": head.name,
        "locations": [{"id": loc.id, "room": loc.name} for loc in locations],
        "latest": [{"room": rooms[loc], "type": types.get(kind, (str(kind), ""))[0],
                    "units": types.get(kind, ("", ""))[1], "value": value,
                    "age": (now - when).total_seconds()}
                   for loc, kind, value, when in sorted(latest, key=lambda r: (rooms[r[0]], r[1]))],
    }


def house_series(engine: Engine, house_id: int, days: int, now: datetime) -> dict[str, Any]:
    """Bucket averages per location and sensor type over the last ``days`` days (daily ones
    from the day cache past a month, rest/daycache.py)."""
    if days > 30:
        return _daily_series(engine, house_id, days, now)
    end = int(now.timestamp()) if now.tzinfo else int((now - datetime(1970, 1, 1)).total_seconds())
    start = end - days * 86_400
    step = max(300, (end - start) // POINTS)
    first = start - start % step
    bucket = time_bucket(engine.dialect.name, Reading.time, first, step)
    since = now - timedelta(days=days)
    with engine.connect() as conn:
        locations = conn.execute(_locations(house_id)).all()
        ids = [loc.id for loc in locations]
        rows = conn.execute(
            select(Reading.locationId, Reading.type, bucket.label("b"),
                   func.avg(Reading.value).label("v"))
            .where(Reading.locationId.in_(ids), Reading.time >= since)
            .group_by(Reading.locationId, Reading.type, bucket)).all()
        names = dict(conn.execute(select(SensorType.id, SensorType.name)).all())
    n = (end - first) // step + 1
    values: dict[tuple[int, int], list[float | None]] = {}
    for r in rows:
        series = values.setdefault((r.locationId, r.type), [None] * n)
        b = int(r.b)
        if 0 <= b < n and r.v is not None:
            series[b] = round(float(r.v), 3)
    return {
        "x": [first + i * step for i in range(n)], "step": step,
        "locations": [{"id": loc.id, "room": loc.name, "series": [
            {"type": t, "name": names.get(t, str(t)), "values": v}
            for (lid, t), v in sorted(values.items()) if lid == loc.id]} for loc in locations],
    }


async def _account(request: Request, state: AppState) -> Any:
    return await run_in_threadpool(session_account, state.engine, request.cookies.get(COOKIE))


@router.get("/house/{house_id}")
async def house_page(house_id: int, request: Request, state: State) -> Response:
    account = await _account(request, state)
    if account is None:
        return RedirectResponse("/login", status_code=303)
    info = await run_in_threadpool(house_summary, state.engine, house_id, utcnow())
    if info is None:
        raise not_found(f"no house {house_id}; the fleet page lists them")
    page = TEMPLATES.get_template("house.html").render(house_id=house_id, account=account.name,
                                                       ranges=RANGES, **info)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/house/{house_id}/series")
async def house_series_json(house_id: int, request: Request, state: State,
                            days: str = "7") -> Response:
    if await _account(request, state) is None:
        return JSONBytesResponse({"error": "log in at /login", "status": 401}, status_code=401)
    if days not in RANGES:
        raise bad_request(f"days must be one of {', '.join(RANGES)}")
    data = await run_in_threadpool(house_series, state.engine, house_id, RANGES[days], utcnow())
    return JSONBytesResponse(data)


def _daily_series(engine: Engine, house_id: int, days: int, now: datetime) -> dict[str, Any]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    first = today - timedelta(days=days)
    with engine.begin() as conn:
        locations = conn.execute(_locations(house_id)).all()
        averages = daily(conn, [loc.id for loc in locations], first, today)
        names = dict(conn.execute(select(SensorType.id, SensorType.name)).all())
    all_days = [first + timedelta(days=i) for i in range(days + 1)]
    epoch = datetime(1970, 1, 1)
    return {
        "x": [int((d - epoch).total_seconds()) for d in all_days], "step": 86_400,
        "locations": [{"id": loc.id, "room": loc.name, "series": [
            {"type": kind, "name": names.get(kind, str(kind)),
             "values": [None if (v := by_day.get(d)) is None else round(v, 3) for d in all_days]}
            for (lid, kind), by_day in sorted(averages.items()) if lid == loc.id]}
            for loc in locations],
    }
