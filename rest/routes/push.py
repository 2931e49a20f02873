"""The push protocol: ``POST /rest/sync/map/`` and ``POST /rest/sync/batch/``."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from models.protocol.ack import TooManyRuns, batch_digest
from rest.auth import WriterKey
from rest.batch import apply_batch, parse_batch
from rest.body import BinaryBatch, is_binary_batch, parse_json, read_body, read_json
from rest.errors import ApiError
from rest.mapping import map_metadata, parse_map_request
from rest.openapi import BATCH_BODY, BATCH_REPLY, MAP_BODY, MAP_REPLY, error_responses, json_body
from rest.responses import JSONBytesResponse
from rest.state import AppState, get_state
from rest.stations import note_batch
from rest.txn import run_write

router = APIRouter(tags=["sync"])
log = logging.getLogger("cogent.rest.sync")
State = Annotated[AppState, Depends(get_state)]


@router.post(
    "/rest/sync/map/",
    summary="Map metadata rows by natural key, creating what is missing",
    openapi_extra=json_body(MAP_BODY),
    responses={200: {"content": {"application/json": {"schema": MAP_REPLY}}}, **error_responses()},
    response_class=JSONBytesResponse,
)
async def post_map(request: Request, principal: WriterKey, state: State) -> Response:
    body = await read_json(request, state.settings.max_body)
    req = await run_in_threadpool(parse_map_request, body)  # the event loop stays free
    result = await run_in_threadpool(
        run_write, state.engine, lambda conn: map_metadata(conn, principal, req)
    )
    if result.errors:
        log.info("map for key %s: %d row(s) refused", principal.key_id, len(result.errors))
    return JSONBytesResponse(result.as_json())


@router.post(
    "/rest/sync/batch/",
    summary="Store a batch of readings and node states (idempotent)",
    openapi_extra=json_body(BATCH_BODY),
    responses={
        200: {"content": {"application/json": {"schema": BATCH_REPLY}}},
        **error_responses(),
    },
    response_class=JSONBytesResponse,
)
async def post_batch(request: Request, principal: WriterKey, state: State) -> Response:
    limit = state.settings.max_body
    data = await read_body(request, limit)
    # 429 at once when too many are being applied, before any decoding: a busy server spends
    # nothing on the batches it turns away.
    with state.admission.batch(principal.key_id):
        started = time.monotonic()
        digest = batch_digest(data)  # the acknowledgement names the batch it answers
        body: Any = (
            BinaryBatch(data, limit)
            if is_binary_batch(request.headers.get("content-type"), data)
            else parse_json(data) if len(data) < 4096  # a thread hop costs more than that
            else await run_in_threadpool(parse_json, data)
        )
        batch = await run_in_threadpool(parse_batch, body)
        try:
            ack = await run_in_threadpool(
                run_write, state.engine,
                lambda conn: apply_batch(conn, principal, batch, state.writer).ack(
                    digest, batch.rows))
        except TooManyRuns as exc:  # nothing was stored: the transaction rolled back
            raise ApiError(422, str(exc)) from None
    rejected = sum(r.count for r in ack.rejected)
    state.metrics.batch("native", ack.stored, ack.unchanged, rejected, time.monotonic() - started)
    await note_batch(state, principal)
    log.info(
        "batch from key %s (%s): stored %d, unchanged %d, rejected %d",
        principal.key_id,
        principal.site_name,
        ack.stored,
        ack.unchanged,
        rejected,
    )
    return JSONBytesResponse(ack.as_json())
