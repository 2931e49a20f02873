"""Who is calling, as FastAPI dependencies: keys only in ``Authorization: Bearer``."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import update
from sqlalchemy.orm import Session

from base.db import write_engine
from models import ApiKey, Site
from models.sql import utcnow
from rest.errors import ApiError, bad_request, forbidden
from rest.keys import KEY_PREFIX, AuthFailed, Principal, authenticate
from rest.state import AppState, get_state

log = logging.getLogger("cogent.rest.auth")

_KEY_PARAMS = {"key", "apikey", "api_key", "token", "access_token", "auth", "authorization"}


def refuse_keys_in_query(request: Request) -> None:
    """Keys in URLs end up in logs and browser histories: refuse them outright."""
    for name, value in request.query_params.multi_items():
        if name.lower() in _KEY_PARAMS or value.startswith(KEY_PREFIX):
            raise bad_request(
                "keys are not accepted in the URL; send 'Authorization: Bearer <key>' instead, "
                "and revoke this key: it may now be in logs"
            )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _touch(state: AppState, key: ApiKey) -> None:
    now = utcnow()
    interval = timedelta(seconds=state.settings.touch_interval)
    if key.lastUsed is not None and now - key.lastUsed < interval:
        return
    if not state.touch.due(key.id):
        return
    try:
        with write_engine(state.engine).begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.id == key.id).values(lastUsed=now))
            if key.siteId is not None:
                conn.execute(update(Site).where(Site.id == key.siteId).values(lastSeen=now))
    except Exception as exc:  # bookkeeping must never fail a request
        log.warning("could not record the use of key %s: %s", key.id, exc)


def optional_principal(
    request: Request, state: Annotated[AppState, Depends(get_state)]
) -> Principal | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    try:
        with Session(state.engine) as session:
            key, principal = authenticate(session, header)
    except AuthFailed as exc:
        raise _unauthorized(str(exc)) from None
    _touch(state, key)
    return principal


def require_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise _unauthorized("this needs a key: send 'Authorization: Bearer <key>'")
    return principal


def require_writer(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    if not principal.can_write:
        raise forbidden(f"a {principal.role} key cannot write; use a site or admin key")
    return principal


def require_admin(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    if not principal.is_admin:
        raise forbidden(f"only an admin key may do this (this is a {principal.role} key)")
    return principal


OptionalKey = Annotated[Principal | None, Depends(optional_principal)]
AnyKey = Annotated[Principal, Depends(require_principal)]
WriterKey = Annotated[Principal, Depends(require_writer)]
AdminKey = Annotated[Principal, Depends(require_admin)]
