"""The fleet page: one row per base station, for whoever looks after the houses.

``GET /fleet`` (linked from ``/``) lists every station that ever checked in — native or
original client — with its last contact, version, clock offset, reported backlog and the
readings its houses hold for the last 24 hours, and a state in words: ``ok``, ``late``
(no contact for more than one ``--silent-after`` third) or ``silent`` (none for
``--silent-after``, 15 minutes by default: three of a usual 5-minute push interval).

The page is behind a login (``/login``) with a read-only or admin account (``cogent-rest
users create --role readonly``); site accounts and keys do not see it. The session is a
cookie signed with the account's own password hash, so it holds across workers and
restarts, and ends when the password changes or the account is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from base.db import write_engine
from models import Deployment, House, Location, Reading, Site, UserAccount
from models.access import ROLE_SITE
from models.sql import utcnow
from rest.accounts import LoginRefused, check_password
from rest.body import read_body
from rest.state import AppState, get_state
from rest.stations import list_stations

COOKIE = "cogent_session"
SESSION_SECONDS = 12 * 3600
router = APIRouter(include_in_schema=False)
State = Annotated[AppState, Depends(get_state)]
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                         autoescape=select_autoescape(["html"]))


# --- the session ------------------------------------------------------------------------------


def _signature(account: UserAccount, payload: str) -> str:
    return hmac.new(account.passwordHash.encode(), payload.encode(), hashlib.sha256).hexdigest()


def session_token(account: UserAccount, now: float) -> str:
    payload = f"{account.id}.{int(now) + SESSION_SECONDS}"
    return f"{payload}.{_signature(account, payload)}"


def session_account(engine: Engine, token: str | None) -> UserAccount | None:
    """The account a valid, unexpired token names (read-only or admin, not disabled)."""
    if not token or token.count(".") != 2:
        return None
    account_id, expires, signature = token.split(".")
    if not (account_id.isdigit() and expires.isdigit()) or int(expires) < time.time():
        return None
    with Session(engine) as session:
        account = session.get(UserAccount, int(account_id))
        if account is None or account.disabled or account.role == ROLE_SITE:
            return None
        if not hmac.compare_digest(_signature(account, f"{account_id}.{expires}"), signature):
            return None
        session.expunge(account)
        return account


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template("login.html").render(error=None))


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    form = parse_qs((await read_body(request, 16 * 1024)).decode("utf-8", "replace"))
    name = (form.get("name") or [""])[0]
    password = (form.get("password") or [""])[0]

    def check() -> UserAccount:
        with Session(write_engine(state.engine)) as session:
            try:
                account = check_password(session, name[:64], password[:1024])
            finally:
                session.commit()
            if account.role == ROLE_SITE:
                raise LoginRefused("a base station's account cannot see the fleet page; use a "
                                   "read-only or admin account", status=403)
            session.expunge(account)
            return account

    try:
        account = await run_in_threadpool(check)
    except LoginRefused as exc:
        page = TEMPLATES.get_template("login.html").render(error=str(exc))
        return HTMLResponse(page, status_code=exc.status)
    reply = RedirectResponse("/fleet", status_code=303)
    reply.set_cookie(COOKIE, session_token(account, time.time()), max_age=SESSION_SECONDS,
                     httponly=True, samesite="strict", path="/")
    return reply


@router.get("/logout")
async def logout() -> Response:
    reply = RedirectResponse("/login", status_code=303)
    reply.delete_cookie(COOKIE, path="/")
    return reply


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    site: str
    host: str
    dialect: str
    version: str
    last_contact: datetime
    age_seconds: float
    clock_offset: float | None
    backlog: int | None
    readings_24h: int
    state: str
    schema: str
    set_aside: int | None
    last_batch_age: float | None


def fleet_rows(engine: Engine, silent_after: float, now: datetime) -> list[Row]:
    since = now - timedelta(days=1)
    with engine.connect() as conn:
        stations = list_stations(conn)
        recent = dict(conn.execute(
            select(House.siteId, func.count())
            .select_from(Reading)
            .join(Location, Location.id == Reading.locationId)
            .join(House, House.id == Location.houseId)
            .where(Reading.time >= since, House.siteId.is_not(None))
            .group_by(House.siteId)).all())
        site_ids = dict(conn.execute(select(Site.name, Site.id)).all())
    rows = []
    for s in stations:
        age = (now - s.last_contact).total_seconds()
        state = "silent" if age > silent_after else "late" if age > silent_after / 3 else "ok"
        batch_age = None if s.last_batch is None else (now - s.last_batch).total_seconds()
        rows.append(Row(s.site, s.host, s.dialect, s.version or "-", s.last_contact, age,
                        s.clock_offset, s.backlog, int(recent.get(site_ids.get(s.site), 0)),
                        state, s.schema or "-", s.set_aside, batch_age))
    return sorted(rows, key=lambda r: ({"silent": 0, "late": 1, "ok": 2}[r.state], r.site))


def house_list(engine: Engine) -> list[tuple[int, str, str, str]]:
    """(id, site, deployment, address) of every house, for links to their pages."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(House.id, Site.name, Deployment.name, House.address)
            .outerjoin(Site, Site.id == House.siteId)
            .outerjoin(Deployment, Deployment.id == House.deploymentId)
            .order_by(Site.name, Deployment.name, House.address)).all()
    return [(r[0], r[1] or "-", r[2] or "-", r[3] or "-") for r in rows]


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 2 * 86_400:
        return f"{s // 3600} h ago"
    return f"{s // 86_400} days ago"


def _offset(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    return f"{whole:+d} s" if whole else "0 s"


@router.get("/")
async def index() -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template("index.html").render())


@router.get("/fleet")
async def fleet(request: Request, state: State) -> Response:
    account = await run_in_threadpool(session_account, state.engine, request.cookies.get(COOKIE))
    if account is None:
        return RedirectResponse("/login", status_code=303)
    silent_after = state.settings.silent_after
    now = utcnow()
    rows = await run_in_threadpool(fleet_rows, state.engine, silent_after, now)
    houses = await run_in_threadpool(house_list, state.engine)
    page = TEMPLATES.get_template("fleet.html").render(
        rows=rows, houses=houses, ago=_ago, offset=_offset, account=account.name, now=now,
        silent_minutes=silent_after / 60, clock_warning=120,
        counts={k: sum(r.state == k for r in rows) for k in ("ok", "late", "silent")})
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
