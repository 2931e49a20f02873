"""Every error leaves the server as JSON: ``{"error": ..., "status": ...[, "valid": [...]]}``.

Messages say what was wrong and what to do about it. Bad input never gives a 5xx;
a 5xx means the server or its database is in trouble, and says whether to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from rest.responses import JSONBytesResponse

log = logging.getLogger("cogent.rest")


class ApiError(Exception):
    """An answer other than success, with a message for the person who has to act."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        valid: Iterable[str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.valid = sorted(valid) if valid is not None else None
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.valid is not None:
            out["valid"] = self.valid
        return out


def bad_request(message: str, valid: Iterable[str] | None = None) -> ApiError:
    return ApiError(400, message, valid=valid)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def not_found(message: str, valid: Iterable[str] | None = None) -> ApiError:
    return ApiError(404, message, valid=valid)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, message, headers={"Retry-After": "5"})


def error_response(err: ApiError) -> Response:
    return JSONBytesResponse(err.body(), status_code=err.status, headers=err.headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("path", "query", "body"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> Response:
        return error_response(ApiError(422, _describe_validation(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            msg = f"no such endpoint: {req.url.path}; the API is described at /docs"
        elif exc.status_code == 405:
            msg = f"{req.method} is not allowed on {req.url.path}; see /docs for what is"
        else:
            msg = str(exc.detail)
        return error_response(ApiError(exc.status_code, msg, headers=dict(exc.headers or {})))

    @app.exception_handler(ClientDisconnect)
    async def _gone(req: Request, _exc: ClientDisconnect) -> Response:
        # A base station's link dropped mid-upload: routine on 3G, not a server error.
        log.info(
            "%s %s: the client went away before its whole body arrived; nothing written",
            req.method,
            req.url.path,
        )
        return error_response(bad_request("the request body ended early; nothing was written"))

    @app.exception_handler(PoolTimeout)
    async def _pool_full(_req: Request, exc: PoolTimeout) -> Response:
        log.warning("every database connection is busy: %s", exc)
        return error_response(unavailable(
            "the server is busy (every database connection is in use); retry in a few seconds"))

    @app.exception_handler(OperationalError)
    async def _db_down(_req: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable: %s", exc.orig)
        return error_response(unavailable("the database is unavailable; retry in a few seconds"))

    @app.exception_handler(DBAPIError)
    async def _db_error(_req: Request, exc: DBAPIError) -> Response:
        log.error("database error: %s", exc.orig)
        return error_response(
            ApiError(500, "the database refused the operation; see the server log")
        )

    @app.exception_handler(Exception)
    async def _internal(_req: Request, exc: Exception) -> Response:
        log.exception("internal error")
        return error_response(ApiError(500, "internal server error; see the server log"))
