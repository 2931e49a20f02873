"""Scenario ``writepaths``: the server's two ways of writing a batch's new rows
(rest/bulkwrite.py), side by side on MariaDB and PostgreSQL — the measurement behind
``--write-path auto``. The same readings, in transactions of one batch each, through
``RowWriter.write`` with ``insert`` and with ``bulk`` (LOAD DATA LOCAL INFILE / COPY),
alternating so that both see the same machine."""

from __future__ import annotations

import random
import time
from typing import Any

from base.db import make_engine, write_engine
from rest.bulkwrite import READINGS, RowWriter
from tests.factories import place_node

T0 = 1_600_000_000_000_000
STEP = 300_000_000


def _rows(node: int, location: int, n: int, offset: int, rng: random.Random) -> list[Any]:
    return [(node, 0, T0 + offset + i * STEP, location, round(rng.uniform(10, 30), 2))
            for i in range(n)]


def measure(url: str, batches: int, batch_rows: int) -> dict[str, float]:
    """Rows per second of each path on the database at ``url`` (migrated, empty)."""
    engine = make_engine(url, connect_args={"local_infile": True}) if url.startswith(
        "mysql") else make_engine(url)
    rng = random.Random(7)
    spent = {"insert": 0.0, "bulk": 0.0}
    try:
        placed = place_node(engine, 9001, deployment="Write paths", address="1 Bench Road")
        offset = 0
        for _ in range(batches):
            for path in ("insert", "bulk"):
                rows = _rows(placed.node, placed.location, batch_rows, offset, rng)
                offset += batch_rows * STEP
                writer = RowWriter(path)
                t0 = time.perf_counter()
                with write_engine(engine).begin() as conn:
                    writer.write(conn, READINGS, rows, [])
                spent[path] += time.perf_counter() - t0
                if writer.load_data_refused:
                    raise RuntimeError("the database refused LOAD DATA LOCAL INFILE")
    finally:
        engine.dispose()
    return {path: batches * batch_rows / seconds for path, seconds in spent.items()}


def writepaths(opts: Any, databases: dict[str, Any], res: Any) -> None:
    from bench.scenarios import say

    batches = max(2, min(20, opts.readings // opts.pushlimit))
    out: dict[str, Any] = {"batches": batches, "batch_rows": opts.pushlimit}
    for name, db in databases.items():
        say(opts, f"write paths on {name}: {batches} batches of {opts.pushlimit:,} readings "
                  f"each way…")
        url = db.create(f"writepaths_{name.lower()}")
        try:
            out[name] = measure(url, batches, opts.pushlimit)
        finally:
            if not opts.keep:
                db.drop(url)
    res.figures["writepaths"] = out
