"""``POST /rest/login/``: a base station's account name and password → a new key for its site
(``RestPusher.py login`` writes it into synchronise.conf). No key is needed to ask."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import Response

from base.db import write_engine
from rest.accounts import LoginRefused, login_for_key
from rest.body import read_json
from rest.errors import ApiError, bad_request
from rest.openapi import error_responses, json_body
from rest.responses import JSONBytesResponse
from rest.state import AppState, get_state

router = APIRouter(tags=["login"])
log = logging.getLogger("cogent.rest.login")
State = Annotated[AppState, Depends(get_state)]

LOGIN_BODY = {"type": "object", "required": ["name", "password"], "additionalProperties": False,
              "properties": {"name": {"type": "string", "maxLength": 64},
                             "password": {"type": "string", "maxLength": 1024}}}
LOGIN_REPLY = {"type": "object", "required": ["site", "key"],
               "properties": {"site": {"type": "string"}, "key": {"type": "string"}}}


def _login(state: AppState, name: str, password: str) -> tuple[str, str]:
    with Session(write_engine(state.engine)) as session:
        try:
            site, key = login_for_key(session, name, password)
        finally:
            session.commit()  # a wrong password is counted even though no key is given
    return site, key


@router.post("/rest/login/", summary="A base station's account → a new key for its site",
             openapi_extra=json_body(LOGIN_BODY), response_class=JSONBytesResponse,
             status_code=201,
             responses={201: {"content": {"application/json": {"schema": LOGIN_REPLY}}},
                        **error_responses(400, 401, 403, 413, 415, 429)})
async def post_login(request: Request, state: State) -> Response:
    body: Any = await read_json(request, 64 * 1024)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
            or not isinstance(body.get("password"), str) or set(body) - {"name", "password"}:
        raise bad_request("send {\"name\": ACCOUNT, \"password\": PASSWORD}")
    name, password = body["name"][:64], body["password"][:1024]
    try:
        site, key = await run_in_threadpool(_login, state, name, password)
    except LoginRefused as exc:
        log.warning("login refused for account %r: %s", name, exc)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"  # what a 401 must say; the key comes from here
        raise ApiError(exc.status, str(exc), headers=headers) from None
    log.info("account %r logged in: a new key for site %r", name, site)
    return JSONBytesResponse({"site": site, "key": key}, status_code=201)
