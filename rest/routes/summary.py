"""``GET /rest/summary/reading/`` and ``/rest/summary/nodestate/``: per-day counts and checksums."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection, Select
from starlette.responses import Response, StreamingResponse

from models import NodeState, Reading
from models.summary import iter_summary, nodestate_summary, reading_summary
from rest.auth import AnyKey
from rest.cancel import query_while_connected
from rest.errors import bad_request
from rest.keys import Principal
from rest.openapi import error_responses
from rest.responses import dumps
from rest.scope import own_locations, own_nodes
from rest.state import AppState, get_state
from rest.times import parse_time

router = APIRouter(tags=["summary"])
State = Annotated[AppState, Depends(get_state)]

_INT_PARAMS = {"houseId": "house_id", "locationId": "location_id", "nodeId": "node_id"}
_TIME_PARAMS = {"start": "start", "end": "end"}


def _params(request: Request, extra_ints: dict[str, str]) -> dict[str, Any]:
    ints = {**_INT_PARAMS, **extra_ints}
    valid = [*ints, *_TIME_PARAMS]
    out: dict[str, Any] = {}
    for name, raw in request.query_params.multi_items():
        if name in ints:
            try:
                out[ints[name]] = int(raw)
                if not -(1 << 31) <= out[ints[name]] < 1 << 31:
                    raise ValueError
            except ValueError:
                raise bad_request(f"{name} must be a 32-bit integer, not {raw!r}") from None
        elif name in _TIME_PARAMS:
            try:
                out[_TIME_PARAMS[name]] = parse_time(raw)
            except ValueError as exc:
                raise bad_request(f"{name}: {exc}") from None
        else:
            raise bad_request(f"unknown parameter {name!r}; valid: {', '.join(valid)}", valid=valid)
    return out


MAX_UNSCOPED_DAYS = 31


def _require_scope(params: dict[str, Any]) -> None:
    """An admin or read-only key sees every house: a summary of all of them at once would
    group every row in the database (tens of seconds on a few million), so it names a house,
    location or node, or a range of at most :data:`MAX_UNSCOPED_DAYS` days. (A site key's
    summary is bounded by its own houses.)"""
    if any(k in params for k in ("house_id", "location_id", "node_id")):
        return
    start, end = params.get("start"), params.get("end")
    if start is not None and end is not None and end - start <= timedelta(days=MAX_UNSCOPED_DAYS):
        return
    raise bad_request(
        f"a summary of every house at once is not served: name a houseId, locationId or "
        f"nodeId, or a range (start and end) of at most {MAX_UNSCOPED_DAYS} days")


_CHUNK = 64 * 1024


async def _respond(request: Request, state: AppState, stmt: Select[Any]) -> Response:
    # The query runs before the reply starts, so a failing database still gets a proper error;
    # a client that leaves meanwhile has its query cancelled (rest/cancel.py).
    def first_row(conn: Connection) -> tuple[Iterator[dict[str, Any]], dict[str, Any] | None]:
        rows = iter_summary(conn, stmt)
        return rows, next(rows, None)

    conn, (rows, first) = await query_while_connected(request, state.engine, first_row)

    def body() -> Iterator[bytes]:
        try:
            out = bytearray(b"[")
            if first is not None:
                out += dumps(first)
                for row in rows:
                    out += b"," + dumps(row)
                    if len(out) >= _CHUNK:
                        yield bytes(out)
                        out.clear()
            out += b"]"
            yield bytes(out)
        finally:
            conn.close()

    return StreamingResponse(body(), media_type="application/json")


_DOC = (
    "Groups in UTC days. valueSum = Σ round(value*1000) half away from zero, "
    "timeSum = Σ whole seconds since midnight. `end` is exclusive."
)


def _summary_route(
    path: str,
    build: Callable[..., Select[Any]],
    scope: Callable[[Principal], Any],
    extra_ints: dict[str, str],
    fields: list[str],
) -> None:
    props: dict[str, Any] = {f: {"type": "integer"} for f in fields}
    props["day"] = {"type": "string", "format": "date"}
    item = {"type": "object", "properties": props}

    @router.get(
        path,
        summary=f"Per-day counts and checksums ({path.split('/')[-2]})",
        description=_DOC,
        responses={
            200: {"content": {"application/json": {"schema": {"type": "array", "items": item}}}},
            **error_responses(400, 401),
        },
    )
    async def summary(request: Request, principal: AnyKey, state: State) -> Response:
        params = _params(request, extra_ints)
        if not principal.is_site:
            _require_scope(params)
        stmt = build(**params)
        if principal.is_site:
            stmt = stmt.where(scope(principal))
        return await _respond(request, state, stmt)


_summary_route(
    "/rest/summary/reading/",
    reading_summary,
    lambda p: Reading.locationId.in_(own_locations(p.site_id)),
    {"type": "type_id"},
    ["locationId", "nodeId", "type", "count", "valueSum", "timeSum"],
)
_summary_route(
    "/rest/summary/nodestate/",
    nodestate_summary,
    lambda p: NodeState.nodeId.in_(own_nodes(p.site_id)),
    {},
    ["nodeId", "count", "timeSum", "seqSum"],
)
