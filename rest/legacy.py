"""The original Cogent-house REST dialect, so that a fleet moves over one station at a time.

The original RestPusher (github jbrusey/cogent-house ``cogent/push/RestPusher.py``) keeps
talking to this server with only its ``resturl`` changed (``http://SITE:KEY@host/rest/``:
HTTP Basic, see :func:`rest.keys.parse_authorization`). Its conversation:

* ``GET /rest/<type>/?col=value`` and ``POST /rest/<type>/`` with rows that carry
  ``"__table__"`` (the native routes, with :func:`legacy_body` applied to what it sends);
* ``PUT /rest/<type>/?id=N`` — update the one row the query names, or create it;
* ``POST /rest/bulk/`` — a zlib-compressed JSON list of Reading and NodeState rows, stored
  through the same validation and idempotent upsert as ``/rest/sync/batch/``;
* ``GET /rest/lastSync/?house=ADDRESS`` — the time of the house's latest reading;
* ``POST /rest/pushstatus/`` — the station's host name, clock and version; ``GET`` lists
  every station's last check-in, native or legacy.

Type names are matched whatever their case (:class:`TypeNameCase`).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, and_, func, select
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from models import House, Location, Reading
from models.protocol.batch import MAX_BATCH_ROWS
from models.protocol.decode import Batch, ReadingSeries, StateSeries
from models.sql import to_micros, utcnow
from models.stations import DIALECT_LEGACY
from rest.auth import OptionalKey, WriterKey
from rest.batch import apply_batch
from rest.body import read_body, read_json
from rest.crud import create_row, update_row
from rest.errors import ApiError, bad_request, forbidden
from rest.openapi import error_responses, json_body
from rest.resources import RESOURCES, Resource, get_resource
from rest.responses import JSONBytesResponse
from rest.scope import visible
from rest.state import AppState, get_state
from rest.stations import CheckIn, list_stations, note_batch, record_station_checkin
from rest.times import parse_time
from rest.txn import run_write
from rest.values import BadValue, from_json

router = APIRouter(tags=["Cogent-house dialect"])
log = logging.getLogger("cogent.rest.legacy")
State = Annotated[AppState, Depends(get_state)]

LEGACY_PATHS = ("bulk", "lastsync", "pushstatus")


class TypeNameCase:
    """``/rest/SensorType/`` is ``/rest/sensortype/``: the original matched type names
    whatever their case (and its own client asks for ``lastSync/``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.names = {*RESOURCES, *LEGACY_PATHS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/rest/"):
            name, sep, tail = scope["path"][6:].partition("/")
            low = name.lower()
            if low != name and low in self.names:
                scope = {**scope, "path": f"/rest/{low}{sep}{tail}"}
        await self.app(scope, receive, send)


def with_table(resource: Resource, row: dict[str, Any]) -> dict[str, Any]:
    """A row as the original served it: ``"__table__"`` names its table."""
    return {"__table__": resource.table.name, **row}


def legacy_body(resource: Resource, body: Any) -> Any:
    """What the original client sends, as the native routes take it: a row that names its
    ``__table__`` loses that key, a null ``id`` (the original's "assign one") and the
    original's columns this schema does not have (``House.serverid``, ``NodeType.seq``...);
    a one-element list is its row. Native bodies pass unchanged."""
    body = _one_row(body)
    if not isinstance(body, dict) or "__table__" not in body:
        return body
    out = {k: v for k, v in body.items() if k in resource.fields}
    if out.get("id", 0) is None:
        del out["id"]
    return out


# --- PUT /rest/<type>/?id=N -------------------------------------------------------------------


def _query_values(resource: Resource, params: list[tuple[str, str]]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values as JSON would carry them, values as the database compares them)."""
    as_json: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    for name, raw in params:
        field = resource.fields.get(name)
        if field is None:
            raise bad_request(f"unknown column {name!r} for {resource.name}",
                              valid=resource.fields)
        try:
            value: Any = raw
            if field.kind == "int":
                value = int(raw)
            elif field.kind == "float":
                value = float(raw)
            typed[name] = from_json(field, value)
            as_json[name] = value
        except (ValueError, BadValue) as exc:
            raise bad_request(f"{name}={raw!r}: {exc}") from None
    return as_json, typed


def put_by_query(conn: Connection, resource: Resource, principal: Any,
                 params: list[tuple[str, str]], body: Any) -> dict[str, Any]:
    """The original's ``PUT /rest/<type>/?col=value``: update the one row the query names
    (among those the key may see), or create it when there is none."""
    given, match = _query_values(resource, params)
    if not match:
        raise bad_request(f"say which {resource.name} to update: PUT /rest/{resource.name}/<id> "
                          f"or /rest/{resource.name}/?id=N")
    body = legacy_body(resource, body)
    if not isinstance(body, dict):
        raise bad_request(f"send a JSON object of {resource.name} columns")
    cond = and_(*(resource.column(c) == v for c, v in match.items()))
    scope = visible(resource, principal)
    if scope is not None:
        cond = and_(cond, scope)
    ids = list(conn.execute(select(resource.id).where(cond).limit(2)).scalars())
    if len(ids) > 1:
        raise ApiError(409, f"the query names more than one {resource.name}; name one by id")
    if not ids:
        return create_row(conn, resource, principal, {**given, **body})
    changes = {k: v for k, v in body.items() if k != "id"}
    return update_row(conn, resource, principal, ids[0], changes)


# --- POST /rest/bulk/ -------------------------------------------------------------------------


def _decompress(data: bytes, limit: int) -> bytes:
    """zlib as the original client sends it; plain JSON too (the original accepted both)."""
    if data[:1] in (b"[", b"{", b" ", b"\n"):
        return data
    inflate = zlib.decompressobj()
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise bad_request(f"bulk/ body is neither JSON nor zlib-compressed JSON: {exc}") from None
    if len(out) > limit or inflate.unconsumed_tail:
        raise ApiError(413, f"bulk/ body is over {limit} bytes once decompressed; send fewer rows")
    return out


def _field(row: dict[str, Any], name: str, where: str, required: bool = True) -> Any:
    value = row.get(name)
    if value is None and required:
        raise bad_request(f"{where}: {name} is missing")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad_request(f"{where}: {name} must be an integer, not {value!r}")
    return value


def parse_bulk(data: bytes, limit: int) -> Batch:
    """The original client's ``bulk/`` body → the batch the native endpoint applies."""
    try:
        rows = orjson.loads(_decompress(data, limit))
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"bulk/ body is not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise bad_request("bulk/ takes a JSON list of rows, each naming its __table__")
    if len(rows) > MAX_BATCH_ROWS:
        raise ApiError(413, f"bulk/ holds more than {MAX_BATCH_ROWS} rows; send fewer")
    readings: dict[tuple[int, int, int], tuple[list[int], list[Any]]] = defaultdict(
        lambda: ([], []))
    states: dict[int, tuple[list[Any], ...]] = defaultdict(lambda: ([], [], [], [], []))
    for i, row in enumerate(rows):
        where = f"row {i}"
        if not isinstance(row, dict):
            raise bad_request(f"{where}: each row is a JSON object naming its __table__")
        table = str(row.get("__table__", "")).lower()
        try:
            us = to_micros(parse_time(str(row.get("time"))))
        except (ValueError, OverflowError) as exc:
            raise bad_request(f"{where}: time {row.get('time')!r}: {exc}") from None
        node = _field(row, "nodeId", where)
        if table == "reading":
            key = (node, _field(row, "type", where), _field(row, "locationId", where, False) or 0)
            times, values = readings[key]
            times.append(us)
            values.append(row.get("value"))
        elif table == "nodestate":
            series = states[node]
            series[0].append(us)
            series[1].append(row.get("seq_num") if row.get("seq_num") is not None else 0)
            series[2].append(row.get("parent"))
            series[3].append(row.get("rssi"))
            series[4].append(row.get("localtime"))
        else:
            raise bad_request(f"{where}: bulk/ takes Reading and NodeState rows, not "
                              f"{row.get('__table__')!r}")
    batch = Batch()
    first = 0
    for (node, kind, location), (times, values) in readings.items():
        batch.readings.append(ReadingSeries(node, kind, location, first, times, values))
        first += len(times)
    first = 0
    for node, (times, seq, parent, rssi, localtime) in states.items():
        batch.nodestates.append(StateSeries(node, first, times, seq, parent, rssi, localtime))
        first += len(times)
    return batch


_ROW = {"type": "object", "properties": {"__table__": {"type": "string"}}}
_BULK_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "zlib-compressed JSON list of rows"},
    "application/json": {"schema": {"type": "array", "items": _ROW}}}}}


def _replies(status: int, schema: dict[str, Any], *errors: int) -> dict[int | str, Any]:
    return {status: {"description": "as the original answered",
                     "content": {"application/json": {"schema": schema}}},
            **error_responses(*errors)}


@router.post("/rest/bulk/", summary="Readings and node states as the original client sends them",
             status_code=201, response_class=JSONBytesResponse, openapi_extra=_BULK_BODY,
             responses=_replies(201, {"type": "array", "maxItems": 0},
                                400, 401, 403, 413, 415, 503))
async def post_bulk(request: Request, principal: WriterKey, state: State) -> Response:
    limit = state.settings.max_body
    data = await read_body(request, limit)
    with state.admission.batch(principal.key_id):  # before decoding: see rest/routes/push.py
        started = time.monotonic()
        batch = await run_in_threadpool(parse_bulk, data, limit)
        result = await run_in_threadpool(
            run_write, state.engine, lambda conn: apply_batch(conn, principal, batch, state.writer))
    rejected = sum(r.count for r in result.rejected)
    state.metrics.batch("cogent-house", result.stored, result.unchanged, rejected,
                        time.monotonic() - started)
    await note_batch(state, principal)
    if rejected:
        log.warning("bulk/ from key %s (%s): %d row(s) rejected, first: %s", principal.key_id,
                    principal.site_name, rejected, result.rejected[0].reason)
    # The original answered 201 and an empty list; a 5xx is the only failure its client sees.
    return JSONBytesResponse([], status_code=201, headers={
        "X-Cogent-Stored": str(result.stored), "X-Cogent-Unchanged": str(result.unchanged),
        "X-Cogent-Rejected": str(rejected)})


# --- GET /rest/lastSync/ ----------------------------------------------------------------------


def last_reading_time(conn: Connection, principal: Any, address: str) -> datetime | None:
    houses = select(House.id).where(House.address == address)
    if principal.is_site:
        houses = houses.where(House.siteId == principal.site_id)
    locations = select(Location.id).where(Location.houseId.in_(houses))
    latest: datetime | None = conn.execute(
        select(func.max(Reading.time)).where(Reading.locationId.in_(locations))).scalar()
    return latest


@router.get("/rest/lastsync/", summary="Time of a house's latest reading (original dialect)",
            response_class=JSONBytesResponse,
            responses=_replies(200, {"type": ["string", "null"]}, 400, 401),
            openapi_extra={"parameters": [{"name": "house", "in": "query",
                                           "schema": {"type": "string"}}]})
async def get_last_sync(request: Request, principal: OptionalKey, state: State) -> Response:
    if principal is None:
        raise ApiError(401, "lastSync/ needs a key: put it in the resturl "
                            "(http://SITE:KEY@host/rest/) or send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    address = request.query_params.get("house")
    if not address:
        return JSONBytesResponse(None)

    def work() -> datetime | None:
        with state.engine.connect() as conn:
            return last_reading_time(conn, principal, address)

    latest = await run_in_threadpool(work)
    return JSONBytesResponse(None if latest is None else latest.isoformat())


# --- /rest/pushstatus/ ------------------------------------------------------------------------


@router.post("/rest/pushstatus/", summary="A station's check-in (original dialect)",
             status_code=201, response_class=JSONBytesResponse,
             openapi_extra=json_body({"type": "object", "properties": {
                 "hostname": {"type": "string"}, "localtime": {"type": ["string", "null"]},
                 "version": {"type": ["string", "null"]}}, "required": ["hostname"]}),
             responses=_replies(201, _ROW, 400, 401, 403, 413, 415, 503))
async def post_push_status(request: Request, principal: WriterKey, state: State) -> Response:
    body = legacy_body_any(await read_json(request, state.settings.max_body))
    if principal.site_id is None:
        raise forbidden("pushstatus/ records a base station: use its site's key")
    host = body.get("hostname")
    if not isinstance(host, str) or not host.strip():
        raise bad_request("pushstatus/ needs hostname (the station's host name)")
    clock = None
    if body.get("localtime") is not None:
        try:
            clock = parse_time(str(body["localtime"]))
        except ValueError as exc:
            raise bad_request(f"localtime {body['localtime']!r}: {exc}") from None
    version = body.get("version")
    checkin = CheckIn(host.strip(), None if version is None else str(version), clock, None,
                      DIALECT_LEGACY)
    site_id = principal.site_id
    await run_in_threadpool(run_write, state.engine, lambda conn: record_station_checkin(
        conn, site_id, checkin, utcnow()))
    return JSONBytesResponse({"__table__": "PushStatus", "hostname": checkin.host,
                              "localtime": None if clock is None else clock.isoformat(),
                              "version": checkin.version}, status_code=201)


def _one_row(body: Any) -> Any:
    """The original client sometimes sends its row as a one-element list."""
    return body[0] if isinstance(body, list) and len(body) == 1 else body


def legacy_body_any(body: Any) -> dict[str, Any]:
    body = _one_row(body)
    if not isinstance(body, dict):
        raise bad_request("send a JSON object")
    return body


@router.get("/rest/pushstatus/", summary="Every base station's last check-in",
            response_class=JSONBytesResponse,
            responses=_replies(200, {"type": "array", "items": _ROW}, 401))
async def get_push_status(principal: OptionalKey, state: State) -> Response:
    if principal is None:
        raise ApiError(401, "pushstatus/ needs a key", headers={"WWW-Authenticate": "Bearer"})
    site = principal.site_id if principal.is_site else None

    def work() -> list[dict[str, Any]]:
        with state.engine.connect() as conn:
            return [{"__table__": "PushStatus", "site": s.site, "hostname": s.host,
                     "dialect": s.dialect, "version": s.version,
                     "lastContact": s.last_contact.isoformat(), "clockOffset": s.clock_offset,
                     "backlog": s.backlog} for s in list_stations(conn, site)]

    return JSONBytesResponse(await run_in_threadpool(work))


@router.put("/rest/{type_name}/", summary="Update the row a query names, or create it "
            "(original dialect: PUT node/?id=N)", response_class=JSONBytesResponse,
            status_code=201, openapi_extra=json_body(_ROW),
            responses=_replies(201, _ROW, 400, 401, 403, 404, 409, 413, 415, 422, 503))
async def put_query(type_name: str, request: Request, principal: WriterKey,
                    state: State) -> Response:
    resource = get_resource(type_name)
    from rest.authz import refuse_catalogue_write

    refuse_catalogue_write(resource, principal)
    body = await read_json(request, state.settings.max_body)
    params = list(request.query_params.multi_items())
    row = await run_in_threadpool(run_write, state.engine, lambda conn: put_by_query(
        conn, resource, principal, params, body))
    return JSONBytesResponse(with_table(resource, row), status_code=201,
                             headers={"Location": f"/rest/{resource.name}/{row['id']}"})
