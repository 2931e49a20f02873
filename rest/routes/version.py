"""``GET /rest/version/``: application version and schema revisions, no key needed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from base.migrate import current_revision, head_revision
from rest import APPLICATION, __version__
from rest.state import AppState, get_state

router = APIRouter(tags=["version"])


def version_info(state: AppState) -> dict[str, Any]:
    return {
        "application": APPLICATION,
        "version": __version__,
        "schema": current_revision(state.engine),
        "head": head_revision(),
    }


_REVISION = {"type": ["string", "null"]}
VERSION_REPLY: dict[str, Any] = {
    "type": "object",
    "required": ["application", "version", "schema", "head"],
    "properties": {
        "application": {"type": "string"},
        "version": {"type": "string"},
        "schema": {**_REVISION, "description": "the database's revision (null: no schema)"},
        "head": {"type": "string", "description": "the newest revision this code knows"},
    },
}


@router.get(
    "/rest/version/",
    summary="Application version and schema revision",
    responses={200: {"content": {"application/json": {"schema": VERSION_REPLY}}}},
)
async def get_version(state: Annotated[AppState, Depends(get_state)]) -> dict[str, Any]:
    """`schema` is the revision the server's database is at, `head` the newest the code knows."""
    return await run_in_threadpool(version_info, state)
