"""``POST /rest/sync/hello/``: a pusher's check-in, once every cycle, even with nothing to send.

It needs the key, so a wrong or revoked key is caught on an idle cycle too; it counts as
the station's contact (``cogent-rest keys list`` last used, the station's row in
``StationStatus``: version, clock offset, backlog); and it answers what the pusher needs
before pushing: who the key is and the server's schema revision and clock.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from base.migrate import current_revision
from models.sql import utcnow
from rest import __version__
from rest.auth import WriterKey
from rest.body import read_json
from rest.errors import bad_request
from rest.openapi import error_responses, json_body
from rest.state import AppState, get_state
from rest.stations import HOSTNAME_MAX, VERSION_MAX, CheckIn, record_station_checkin
from rest.times import format_time, parse_time
from rest.txn import run_write

router = APIRouter(tags=["sync"])
State = Annotated[AppState, Depends(get_state)]
HELLO_MAX_BODY = 16 * 1024

HELLO_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["host"],
    "properties": {
        "host": {"type": "string", "maxLength": HOSTNAME_MAX, "description": "station host name"},
        "version": {"type": ["string", "null"], "maxLength": VERSION_MAX},
        "clock": {"type": ["string", "null"], "description": "the station's clock, ISO-8601 UTC"},
        "backlog": {"type": ["integer", "null"], "minimum": 0,
                    "description": "rows the station has not yet delivered here"},
        "dialect": {"enum": ["native"]},
        "schema": {"type": ["string", "null"], "maxLength": 32,
                   "description": "the station's schema revision"},
        "set_aside": {"type": ["integer", "null"], "minimum": 0,
                      "description": "rows the station set aside for this server"},
    },
}
HELLO_REPLY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "site": {"type": ["string", "null"]},
        "role": {"enum": ["admin", "site"]},
        "schema": {"type": ["string", "null"]},
        "server_version": {"type": "string"},
        "time": {"type": "string", "description": "the server's clock, ISO-8601 UTC"},
    },
}


def parse_checkin(body: Any) -> CheckIn:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object with host, version, clock, backlog")
    unknown = set(body) - set(HELLO_BODY["properties"])
    if unknown:
        raise bad_request(f"unknown field(s) {sorted(unknown)}; valid: "
                          f"{sorted(HELLO_BODY['properties'])}")
    host, version = body.get("host"), body.get("version")
    if not isinstance(host, str) or not host.strip() or len(host) > HOSTNAME_MAX:
        raise bad_request(f"host must be the station's name (1..{HOSTNAME_MAX} characters)")
    if version is not None and (not isinstance(version, str) or len(version) > VERSION_MAX):
        raise bad_request(f"version must be a string of at most {VERSION_MAX} characters")
    clock, backlog = body.get("clock"), body.get("backlog")
    when = None
    if clock is not None:
        if not isinstance(clock, str):
            raise bad_request("clock must be an ISO-8601 time")
        try:
            when = parse_time(clock)
        except (ValueError, OverflowError) as exc:
            raise bad_request(f"clock: {exc}") from None
    if backlog is not None and (type(backlog) is not int or not 0 <= backlog < 1 << 63):
        raise bad_request("backlog must be a count of rows (a non-negative integer)")
    schema, aside = body.get("schema"), body.get("set_aside")
    if schema is not None and (not isinstance(schema, str) or len(schema) > 32):
        raise bad_request("schema must be a revision id of at most 32 characters")
    if aside is not None and (type(aside) is not int or not 0 <= aside < 1 << 63):
        raise bad_request("set_aside must be a count of rows (a non-negative integer)")
    return CheckIn(host.strip(), version, when, backlog, schema=schema, set_aside=aside)


@router.post(
    "/rest/sync/hello/",
    summary="A pusher's check-in: authenticates, records the station, returns the schema",
    openapi_extra=json_body(HELLO_BODY),
    responses={200: {"content": {"application/json": {"schema": HELLO_REPLY}}},
               **error_responses()},
)
async def post_hello(request: Request, principal: WriterKey, state: State) -> dict[str, Any]:
    checkin = parse_checkin(await read_json(request, HELLO_MAX_BODY))
    now = utcnow()
    site = principal.site_id
    if site is not None:
        await run_in_threadpool(
            run_write, state.engine, lambda conn: record_station_checkin(conn, site, checkin, now))
    return {
        "site": principal.site_name,
        "role": principal.role,
        "schema": await run_in_threadpool(current_revision, state.engine),
        "server_version": __version__,
        "time": format_time(now),
    }
