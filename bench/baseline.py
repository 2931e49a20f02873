"""A reference for the original Cogent-house push protocol, to measure ours against.

Cogent-house's RestPusher read rows from the local database, turned each into a
dictionary of its columns (times as ISO-8601 text, the table name under
``__table__``), and POSTed them as one JSON list per 10,000 rows, the body
compressed with zlib; the server decompressed it, parsed it, built an ORM object
per row, ``session.add``-ed it and committed. This module is that, on the same
HTTP stack as cogent-rest (uvicorn + FastAPI, keep-alive ``requests`` client), so
the comparison isolates the protocol and the write path:

    python -m bench.baseline serve --db URL --host 127.0.0.1 --port 6544
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from base.db import make_engine
from models import NodeState, Reading
from push.client import request_wire_size, response_wire_size

ROWS_PER_POST = 10_000
BATCHED_FLUSH = os.environ.get("COGENT_BENCH_BATCHED_FLUSH", "") == "1"
TABLES = {
    "Reading": ("time", "nodeId", "type", "locationId", "value"),
    "NodeState": ("time", "nodeId", "parent", "localtime", "seq_num", "rssi"),
}


def create_app(db_url: str) -> FastAPI:
    # One INSERT per added object, as SQLAlchemy did when Cogent-house was written (before
    # 2.0 batched the flush of new objects into multi-row INSERT … RETURNING statements).
    engine = make_engine(db_url, use_insertmanyvalues=BATCHED_FLUSH)
    models: dict[str, Any] = {"Reading": Reading, "NodeState": NodeState}
    app = FastAPI()

    @app.get("/rest/version/")
    def version() -> dict[str, str]:
        return {"application": "cogent-house reference"}

    def store(items: list[dict[str, Any]]) -> int:
        with Session(engine) as session:
            for item in items:
                model = models[item.pop("__table__")]
                item["time"] = datetime.fromisoformat(item["time"])
                session.add(model(**item))
            session.commit()
        return len(items)

    @app.post("/rest/{table}/")
    async def post(table: str, request: Request) -> JSONResponse:
        items = json.loads(zlib.decompress(await request.body()))
        stored = await run_in_threadpool(store, items)
        return JSONResponse({"success": True, "stored": stored})

    return app


def serve(argv: list[str]) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.baseline serve")
    parser.add_argument("--db", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6544)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.db), host=args.host, port=args.port, log_level="warning")


@dataclass
class BaselineResult:
    readings: int = 0
    nodestates: int = 0
    seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)  # per table, sent + received, headers too


def push(local: Path, url: str, limit_readings: int | None = None) -> BaselineResult:
    """Push every reading (or the first ``limit_readings``) and the node states of the same
    period, the way Cogent-house did."""
    result = BaselineResult()
    session = requests.Session()
    src = sqlite3.connect(local)
    t0 = time.perf_counter()
    try:
        cut = None
        for table, cols in TABLES.items():
            where = ""
            params: tuple[Any, ...] = ()
            if table == "Reading" and limit_readings:
                where = " WHERE id <= (SELECT id FROM Reading ORDER BY id LIMIT 1 OFFSET ?)"
                params = (limit_readings - 1,)
            elif table == "NodeState" and cut is not None:
                where = " WHERE time <= ?"
                params = (cut,)
            query = src.execute(
                f'SELECT {", ".join(cols)} FROM "{table}"{where} ORDER BY id', params
            )
            while rows := query.fetchmany(ROWS_PER_POST):
                items = []
                for row in rows:
                    item = dict(zip(cols, row, strict=True))
                    item["time"] = datetime.fromisoformat(row[0]).isoformat()
                    item["__table__"] = table
                    items.append(item)
                body = zlib.compress(json.dumps(items).encode())
                resp = session.post(
                    f"{url}{table}/", data=body, headers={"Content-Type": "application/json"}
                )
                content = resp.content
                resp.raise_for_status()
                result.requests[table] = result.requests.get(table, 0) + 1
                result.bytes[table] = (
                    result.bytes.get(table, 0)
                    + request_wire_size(resp, body)
                    + response_wire_size(resp, content)
                )
                if table == "Reading":
                    result.readings += len(rows)
                    cut = rows[-1][0]
                else:
                    result.nodestates += len(rows)
    finally:
        result.seconds = time.perf_counter() - t0
        src.close()
        session.close()
    return result


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: python -m bench.baseline serve --db URL [--host H] [--port P]")
    serve(sys.argv[2:])
