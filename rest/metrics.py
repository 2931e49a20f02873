"""Prometheus metrics: ``GET /metrics`` (a read-only or admin key), and the middleware
that counts requests.

Counted as they happen (rest/counters.py): requests by route and status, batches and their
rows by outcome, the time a batch takes to apply. Read at each scrape from the database and
the engine: seconds since each site's last contact, each station's clock offset, database
connections in use. With ``--workers N`` each worker process answers with its own counts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest.auth import OptionalKey
from rest.errors import ApiError, forbidden
from rest.openapi import error_responses
from rest.state import AppState, get_state


class CountRequests:
    """Counts every answered request by its route's template (never the raw path: ids and
    query strings would make a label per row)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            state: Any = getattr(scope.get("app"), "state", None)
            cogent = getattr(state, "cogent", None)
            if cogent is not None:
                cogent.metrics.requests.labels(scope["method"], template,
                                               str(status["code"])).inc()


router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics (a read-only or admin key)",
            responses={200: {"description": "Prometheus text format",
                             "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                       **error_responses(401, 403)})
async def get_metrics(principal: OptionalKey,
                      state: Annotated[AppState, Depends(get_state)]) -> Response:
    if principal is None:
        raise ApiError(401, "metrics need a read-only or admin key: send 'Authorization: Bearer "
                            "<key>' (Prometheus: authorization.credentials)",
                       headers={"WWW-Authenticate": "Bearer"})
    if principal.is_site:
        raise forbidden("metrics show every site: use a read-only or admin key")
    body = await run_in_threadpool(generate_latest, state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
