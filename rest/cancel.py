"""Queries that stop when their client leaves.

A request whose client gives up keeps its database connection busy until the statement
ends — with many such clients (an impatient script retrying a slow summary), every pooled
connection is taken and every request waits. :func:`query_while_connected` runs the slow
part in a thread on a connection of its own and watches the client meanwhile; when the
client disconnects, the statement is cancelled on the database (SQLite ``interrupt``,
MariaDB/MySQL ``KILL QUERY``, PostgreSQL's cancel request) and the connection goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool
from starlette.requests import ClientDisconnect, Request

log = logging.getLogger("cogent.rest")
T = TypeVar("T")
POLL_SECONDS = 0.25


def canceller(engine: Engine, conn: Connection) -> Callable[[], None]:
    """A function that stops the statement running on ``conn`` (callable from any thread)."""
    raw: Any = conn.connection.driver_connection
    name = engine.dialect.name
    if name == "sqlite":
        return raw.interrupt
    if name == "postgresql":
        return getattr(raw, "cancel_safe", raw.cancel)
    thread = int(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())

    def kill() -> None:
        # A connection of its own: the pool may be exactly what is exhausted.
        killer = create_engine(engine.url, poolclass=NullPool)
        try:
            with killer.connect() as c:
                c.execute(text(f"KILL QUERY {thread}"))
        finally:
            killer.dispose()

    return kill


async def query_while_connected(request: Request, engine: Engine,
                                work: Callable[[Connection], T]) -> tuple[Connection, T]:
    """(the connection, ``work(connection)``), run in a thread; the caller closes the
    connection. If the client disconnects first, the statement is cancelled, the connection
    closed, and ClientDisconnect raised."""
    cancel: dict[str, Callable[[], None]] = {}

    def job() -> tuple[Connection, T]:
        conn = engine.connect()
        try:
            cancel["now"] = canceller(engine, conn)
            return conn, work(conn)
        except BaseException:
            conn.close()
            raise

    task = asyncio.ensure_future(run_in_threadpool(job))
    while True:
        done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
        if done:
            return task.result()
        if await request.is_disconnected():
            break
    stop = cancel.get("now")
    if stop is not None:
        try:
            await run_in_threadpool(stop)
        except Exception as exc:  # the statement then ends at its statement timeout
            log.warning("could not cancel the query of a client that left: %s", exc)
    with contextlib.suppress(BaseException):
        conn, _ = await task  # the cancelled statement fails: its connection is closed
        conn.close()
    log.info("client left %s before the answer: its query was cancelled", request.url.path)
    raise ClientDisconnect()
