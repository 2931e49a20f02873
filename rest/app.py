"""The ASGI application: ``create_app(settings)``; nothing is read or connected at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.staticfiles import StaticFiles

from rest import APPLICATION, __version__, fleet, house_page, legacy, metrics
from rest.auth import refuse_keys_in_query
from rest.daywarmer import DayWarmer
from rest.errors import install_error_handlers
from rest.pages import install_offline_docs
from rest.responses import JSONBytesResponse
from rest.routes import hello, login, push, resources, summary, version
from rest.settings import Settings
from rest.state import build_state

DESCRIPTION = """\
The central server of cogent-sync: base stations push readings and node states
here (`/rest/sync/…`), people and programs browse them at `/rest/<type>/`.
Keys travel only in `Authorization: Bearer <key>`. Errors are JSON:
`{"error": "...", "status": N}`. The full contract is docs/PROTOCOL.md.
"""


def create_app(settings: Settings) -> FastAPI:
    state = build_state(settings)

    warmer = DayWarmer(state.engine, settings.warm_interval)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warmer.start()
        yield
        warmer.stop()
        state.engine.dispose()

    app = FastAPI(
        title=f"{APPLICATION} REST",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
        dependencies=[Depends(refuse_keys_in_query)],
        docs_url=None,  # served from local files instead of a CDN: rest/pages.py
        redoc_url=None,
    )
    app.state.cogent = state
    # Pages of readings compress ~10x; base stations on 3G links ask for gzip.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    app.add_middleware(legacy.TypeNameCase)
    app.add_middleware(metrics.CountRequests)
    install_error_handlers(app)
    app.include_router(version.router)
    app.include_router(metrics.router)
    app.include_router(push.router)
    app.include_router(hello.router)
    app.include_router(login.router)
    app.include_router(fleet.router)
    app.include_router(house_page.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    app.include_router(summary.router)
    app.include_router(resources.build_router())
    app.include_router(legacy.router)  # after the native routes, before the catch-all
    app.include_router(resources.build_fallback_router())
    _add_security_scheme(app)
    install_offline_docs(app)
    return app


def _add_security_scheme(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "cgk_… key"}
            }
            schema["security"] = [{"bearer": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (``--workers N``): settings come via the environment."""
    from rest.protocol import HeaderDeadlineProtocol

    settings = Settings.from_env()
    HeaderDeadlineProtocol.header_timeout = settings.header_timeout  # this worker's connections
    return create_app(settings)
