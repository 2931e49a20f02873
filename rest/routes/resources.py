"""``/rest/<type>/`` and ``/rest/<type>/<id>`` for every table in ``models.DATA_TABLES``.

One route per type, generated here, so that the OpenAPI document describes each
type's columns; a catch-all answers unknown types with the list of valid ones.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from starlette.responses import Response

from rest.auth import AdminKey, OptionalKey, WriterKey
from rest.authz import refuse_catalogue_write
from rest.body import read_json
from rest.browse import ListQuery, build_select, encode_cursor, parse_list_query, parse_range
from rest.crud import create_row, delete_row, get_row, update_row
from rest.errors import ApiError, not_found
from rest.keys import Principal
from rest.legacy import legacy_body, with_table
from rest.openapi import error_responses, json_body, list_parameters, row_schema
from rest.resources import RESOURCES, Resource, get_resource
from rest.responses import JSONBytesResponse
from rest.scope import visible
from rest.state import AppState, get_state
from rest.txn import run_write

State = Annotated[AppState, Depends(get_state)]


def _readable(resource: Resource, principal: Principal | None) -> None:
    if principal is None and resource.kind != "catalogue":
        raise ApiError(
            401,
            f"{resource.name} needs a key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def list_rows(
    state: AppState, resource: Resource, principal: Principal | None, request: Request
) -> Response:
    settings = state.settings
    q = parse_list_query(
        resource, request.query_params.multi_items(), settings.default_limit, settings.max_limit
    )
    scope = visible(resource, principal)
    wanted = parse_range(request.headers.get("range"), settings.max_limit)
    if wanted is not None:  # the original dialect's paging: Range: items=a-b
        q.offset, q.limit = wanted
    stmt = build_select(resource, q, scope)
    with state.engine.connect() as conn:
        rows = [with_table(resource, dict(r)) for r in conn.execute(stmt).mappings()]
        if wanted is not None:
            total = conn.execute(select(func.count()).select_from(
                build_select(resource, ListQuery(where=q.where, limit=0), scope)
                .limit(None).order_by(None).subquery())).scalar_one()
    headers = {}
    if len(rows) > q.limit:
        rows = rows[: q.limit]
        if wanted is None:
            last = rows[-1]
            url = request.url.remove_query_params(["_after", "_cursor"])
            if q.sort == "id":
                url = url.include_query_params(_after=last["id"])
            else:
                url = url.include_query_params(
                    _cursor=encode_cursor(q, last[q.sort], last["id"]))
            headers["Link"] = f'<{url}>; rel="next"'
    if wanted is not None:
        start = wanted[0]
        end = start + len(rows) - 1 if rows else start
        headers["Content-Range"] = f"items {start}-{end}/{total}"
    return JSONBytesResponse(rows, headers=headers)


def _add_routes(router: APIRouter, resource: Resource) -> None:
    name = resource.name
    path = f"/rest/{name}/"
    item = f"/rest/{name}/{{row_id}}"
    tags: list[str | Enum] = [name]
    out_schema = row_schema(resource)
    one = {"content": {"application/json": {"schema": out_schema}}}
    many = {
        "content": {"application/json": {"schema": {"type": "array", "items": out_schema}}},
        "headers": {"Link": {"schema": {"type": "string"}, "description": 'next page, rel="next"'}},
    }
    readers = "no key" if resource.kind == "catalogue" else "any key (site keys: own rows)"
    writers = "admin key" if resource.kind == "catalogue" else "site or admin key"

    async def list_(request: Request, principal: OptionalKey, state: State) -> Response:
        _readable(resource, principal)
        return await run_in_threadpool(list_rows, state, resource, principal, request)

    async def get_(row_id: int, principal: OptionalKey, state: State) -> Response:
        _readable(resource, principal)

        def work() -> dict[str, Any]:
            with state.engine.connect() as conn:
                return with_table(resource, get_row(conn, resource, row_id, principal))

        return JSONBytesResponse(await run_in_threadpool(work))

    async def create_(request: Request, principal: WriterKey, state: State) -> Response:
        refuse_catalogue_write(resource, principal)
        body = legacy_body(resource, await read_json(request, state.settings.max_body))
        row = await run_in_threadpool(
            run_write, state.engine, lambda conn: create_row(conn, resource, principal, body)
        )
        return JSONBytesResponse(
            with_table(resource, row), status_code=201,
            headers={"Location": f"/rest/{name}/{row['id']}"}
        )

    async def update_(
        row_id: int, request: Request, principal: WriterKey, state: State
    ) -> Response:
        refuse_catalogue_write(resource, principal)
        body = legacy_body(resource, await read_json(request, state.settings.max_body))
        if isinstance(body, dict) and body.get("id") == row_id:
            body = {k: v for k, v in body.items() if k != "id"}  # the original sends it back
        row = await run_in_threadpool(
            run_write,
            state.engine,
            lambda conn: update_row(conn, resource, principal, row_id, body),
        )
        return JSONBytesResponse(with_table(resource, row))

    async def delete_(row_id: int, principal: AdminKey, state: State) -> Response:
        await run_in_threadpool(
            run_write, state.engine, lambda conn: delete_row(conn, resource, row_id)
        )
        return Response(status_code=204)

    router.add_api_route(
        path,
        list_,
        methods=["GET"],
        tags=tags,
        response_class=JSONBytesResponse,
        summary=f"List {name} rows ({readers})",
        description="Filters: col=value (repeat for any of), ge_/gt_/le_/lt_/ne_ + col; "
        "_sort=col or -col; _limit; next page from the Link header.",
        openapi_extra={"parameters": list_parameters(resource)},
        responses={200: many, **error_responses(400, 401, 403)},
    )
    router.add_api_route(
        item,
        get_,
        methods=["GET"],
        tags=tags,
        response_class=JSONBytesResponse,
        summary=f"Get one {name} ({readers})",
        responses={200: one, **error_responses(401, 403, 404)},
    )
    router.add_api_route(
        path,
        create_,
        methods=["POST"],
        tags=tags,
        status_code=201,
        response_class=JSONBytesResponse,
        summary=f"Create a {name} ({writers})",
        openapi_extra=json_body(row_schema(resource, for_input=True)),
        responses={201: one, **error_responses(400, 401, 403, 409, 413, 422)},
    )
    router.add_api_route(
        item,
        update_,
        methods=["PUT"],
        tags=tags,
        response_class=JSONBytesResponse,
        summary=f"Update some columns of a {name} ({writers})",
        openapi_extra=json_body({**row_schema(resource, for_input=True), "required": []}),
        responses={200: one, **error_responses(400, 401, 403, 404, 409, 413, 422)},
    )
    router.add_api_route(
        item,
        delete_,
        methods=["DELETE"],
        tags=tags,
        status_code=204,
        summary=f"Delete a {name} that nothing refers to (admin key)",
        responses={204: {"description": "deleted"}, **error_responses(401, 403, 404, 409)},
    )


def build_router() -> APIRouter:
    router = APIRouter()
    for resource in RESOURCES.values():
        _add_routes(router, resource)
    return router


def build_fallback_router() -> APIRouter:
    """Unknown types under /rest/: a 404 that lists the valid ones. Registered last."""
    router = APIRouter(include_in_schema=False)

    @router.api_route(
        "/rest/{type_name}/{tail:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"]
    )
    async def unknown(request: Request, type_name: str, tail: str) -> Response:
        resource = get_resource(type_name)  # raises the 404 listing the types
        if resource.name != type_name:
            raise not_found(f"types are lower-case: use /rest/{resource.name}/", valid=RESOURCES)
        if tail == "" or tail.isdigit():
            raise ApiError(
                405,
                f"{request.method} is not allowed here: use GET or POST on /rest/{resource.name}/ "
                f"and GET, PUT or DELETE on /rest/{resource.name}/<id>",
            )
        raise not_found(
            f"no such path under /rest/{resource.name}/: use /rest/{resource.name}/ "
            f"or /rest/{resource.name}/<id>"
        )

    return router
