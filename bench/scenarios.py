"""The five scenarios of issue 7, each returning plain numbers for the report."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import baseline, copies
from bench.dataset import Dataset, fleet_datasets, make_dataset
from bench.procstats import RssSampler
from bench.remote import (
    REPO,
    MariaDB,
    RemoteDatabase,
    baseline_server,
    cogent_server,
    create_keys,
)


@dataclass
class Options:
    readings: int = 1_000_000
    memory_readings: tuple[int, ...] = (1_000_000, 5_000_000)
    baseline_readings: int = 200_000
    stations: tuple[int, ...] = (100, 1000)
    station_readings: int = 0  # per station; 0: fleet_readings shared among the stations
    fleet_readings: int = 1_000_000
    fleet_workers: tuple[int, ...] = (1, 2)
    fleet_procs: int = 4
    pushlimit: int = 5000
    mysql: str = "mysql://root@127.0.0.1:3306/mysql"
    workdir: Path = REPO / "var" / "bench"
    keep: bool = False
    quiet: bool = False

    @property
    def cache(self) -> Path:
        return self.workdir / "cache"


@dataclass
class Results:
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def say(opts: Options, text: str) -> None:
    if not opts.quiet:
        print(text, flush=True)


def write_config(path: Path, local_url: str, resturl: str, key: str, pushlimit: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    d = path.parent
    path.write_text(
        "\n".join(
            [
                "[general]",
                f"localurl = {local_url}",
                f"pushlimit = {pushlimit}",
                "synctime = 60",
                "backoff_min = 0.5",
                "backoff_max = 120",  # a busy server's Retry-After is honoured up to this
                "loglevel = WARNING",
                f"logfile = {d / 'push.log'}",
                f"lockfile = {d / 'push.lock'}",
                f"pidfile = {d / 'push.pid'}",
                "[locations]",
                "central = 1",
                "[central]",
                f"resturl = {resturl}",
                f"apikey = {key}",
                "timeout = 600",
                "connect_timeout = 10",
                "",
            ]
        )
    )
    return path


def run_pusher(config: Path) -> dict[str, Any]:
    """``python -m bench.pushrun CONFIG`` in a process of its own: its peak RSS is the pusher's."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pushrun", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the pusher failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def push_through_server(
    opts: Options, db: RemoteDatabase, data: Dataset, label: str
) -> tuple[dict[str, Any], tuple[int, int]]:
    """Catch up ``data`` through a fresh cogent-rest server; (pushrun output, remote counts)."""
    url = db.create(label)
    try:
        [key] = create_keys(url, [f"bench-{label}"])
        local = data.copy(opts.workdir / label / "base.db")
        with cogent_server(url) as server:
            config = write_config(
                opts.workdir / label / "synchronise.conf",
                local.url,
                server.url,
                key,
                opts.pushlimit,
            )
            out = run_pusher(config)
        counts = (db.count(url, "Reading"), db.count(url, "NodeState"))
        return out, counts
    finally:
        if not opts.keep:
            db.drop(url)


def catchup(opts: Options, db: MariaDB, res: Results, baseline_too: bool = True) -> None:
    say(opts, f"catch-up: dataset of {opts.readings:,} readings")
    data = make_dataset(opts.readings, opts.cache)
    f = res.figures
    f["dataset"] = {"readings": data.readings, "nodestates": data.nodestates}

    say(opts, "  (a) direct executemany copy…")
    url = db.create("direct")
    try:
        db.copy_metadata(data.path, url)
        direct = copies.executemany_copy(db, data.path, url, batch=opts.pushlimit)
    finally:
        if not opts.keep:
            db.drop(url)
    f["direct"] = vars(direct)

    say(opts, "  (b) LOAD DATA LOCAL INFILE…")
    url = db.create("loaddata")
    try:
        db.copy_metadata(data.path, url)
        load = copies.load_data_copy(db, data.path, url)
    finally:
        if not opts.keep:
            db.drop(url)
    f["loaddata"] = vars(load)

    say(opts, "  cogent-sync: pusher → cogent-rest → MariaDB…")
    out, counts = push_through_server(opts, db, data, "catchup")
    f["ours"] = out
    f["ours_delivered"] = counts == (data.readings, data.nodestates)
    if not f["ours_delivered"]:
        res.notes.append(
            f"catch-up delivered {counts} rows, expected {(data.readings, data.nodestates)}"
        )

    if not baseline_too:
        return
    n = min(opts.baseline_readings, data.readings)
    say(opts, f"  (c) Cogent-house baseline protocol ({n:,} readings)…")
    url = db.create("baseline")
    try:
        db.copy_metadata(data.path, url)
        with baseline_server(url) as server:
            base = baseline.push(data.path, server.url, limit_readings=n)
        f["baseline_delivered"] = db.count(url, "Reading") == base.readings
    finally:
        if not opts.keep:
            db.drop(url)
    f["baseline"] = vars(base)


def memory(opts: Options, db: MariaDB, res: Results) -> None:
    peaks: dict[int, int] = {}
    for n in opts.memory_readings:
        if n == opts.readings and "ours" in res.figures:
            peaks[n] = res.figures["ours"]["peak_rss_kib"]
            continue
        say(opts, f"memory: pusher with a backlog of {n:,} readings")
        data = make_dataset(n, opts.cache)
        out, counts = push_through_server(opts, db, data, f"memory{n}")
        peaks[n] = out["peak_rss_kib"]
        if counts != (data.readings, data.nodestates):
            res.notes.append(f"memory run of {n} delivered {counts}")
    res.figures["memory"] = {str(k): v for k, v in peaks.items()}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[i]


def fleet(opts: Options, db: RemoteDatabase, res: Results) -> None:
    """Every fleet size and server worker count: all stations released at one instant."""
    runs: dict[str, Any] = {}
    for stations in opts.stations:
        per_station = opts.station_readings or max(100, opts.fleet_readings // stations)
        say(opts, f"fleet: {stations} base stations x {per_station:,} readings")
        data = fleet_datasets(stations, per_station, opts.cache)
        expected = (sum(s.readings for s in data), sum(s.nodestates for s in data))
        for workers in opts.fleet_workers:
            say(opts, f"  server with {workers} worker(s)…")
            run = _fleet_once(opts, db, data, workers)
            run["expected"] = expected
            run["all_delivered"] = run["delivered"] == expected and run["failed"] == 0
            if run["failed"]:
                res.notes.append(f"fleet of {stations}, {workers} worker(s): {run['failed']} "
                                 f"station(s) failed their cycle, first: {run['errors'][:3]}")
            runs[f"{stations}x{workers}"] = run
    res.figures["fleet"] = runs


def _fleet_once(opts: Options, db: RemoteDatabase, data: list[Dataset],
                workers: int) -> dict[str, Any]:
    label = f"fleet{len(data)}w{workers}"
    url = db.create(label)
    try:
        keys = create_keys(url, [f"station-{i:04d}" for i in range(len(data))])
        with cogent_server(url, workers=workers) as server:
            configs = []
            for i, (station, key) in enumerate(zip(data, keys, strict=True)):
                local = station.copy(opts.workdir / label / f"station{i:04d}" / "base.db")
                configs.append(write_config(local.path.parent / "synchronise.conf", local.url,
                                            server.url, key, opts.pushlimit))
            with RssSampler(server.pids) as rss:
                run = fleet_run(opts, configs)
            run["workers"] = workers
            run["server_rss_mib"] = rss.peak_kib / 1024
        run["delivered"] = (db.count(url, "Reading"), db.count(url, "NodeState"))
    finally:
        if not opts.keep:
            db.drop(url)
            shutil.rmtree(opts.workdir / label, ignore_errors=True)
    return run


def fleet_run(opts: Options, configs: list[Path]) -> dict[str, Any]:
    procs = max(1, min(opts.fleet_procs, len(configs)))
    start_at = time.time() + 4.0  # every worker has imported and opened its databases by then
    shares = [configs[i::procs] for i in range(procs)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", repr(start_at), *map(str, share)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    results: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a fleet worker failed:\n{err[-4000:]}")
        results.extend(json.loads(out.strip().splitlines()[-1]))
    ok = [r for r in results if "result" in r and r["result"]["ok"]]
    latencies = [x for r in ok for s in r["result"]["streams"].values() for x in s["latencies"]]
    readings = sum(r["result"]["readings"] for r in ok)
    wall = max((r["end"] for r in ok), default=start_at) - start_at
    return {
        "stations": len(configs),
        "failed": len(results) - len(ok),
        "errors": [r.get("error") or r["result"]["error"] for r in results if r not in ok][:5],
        "readings": readings,
        "nodestates": sum(r["result"]["nodestates"] for r in ok),
        "seconds": wall,
        "readings_per_s": readings / wall if wall > 0 else math.nan,
        "batches": len(latencies),
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
        "max": max(latencies, default=math.nan),
        "busy": sum(r["result"].get("busy", 0) for r in ok),
    }


class _IdentityMapper:
    """Every local id maps to itself (the offline encoding comparison needs no server)."""

    def ensure(self, **_: Any) -> None:
        pass

    def remote_id(self, kind: str, local_id: int) -> int:
        return local_id

    def reason_unmapped(self, kind: str, local_id: int | None) -> str:
        return "unmapped"


def encodings(opts: Options, res: Results, limit: int = 200_000) -> None:
    """Body bytes per row of the same batches in each encoding (no HTTP, no headers)."""
    import gzip
    import sqlite3
    from collections import namedtuple

    import orjson

    from models.protocol.batch import CODEC_LZMA2, CODEC_ZLIB
    from push.streams import NODE_STATES, READINGS, encode

    data = make_dataset(opts.readings, opts.cache)
    src = sqlite3.connect(data.path)
    sizes: dict[str, dict[str, float]] = {}
    try:
        for stream in (READINGS, NODE_STATES):
            cur = src.execute(f'SELECT * FROM "{stream.name}" ORDER BY id LIMIT ?', (limit,))
            row_type = namedtuple("row_type", [d[0] for d in cur.description])  # type: ignore[misc]
            totals = {"json+gzip (cogent-batch/1)": 0, "binary+zlib": 0, "binary+LZMA2": 0}
            rows_seen = 0
            while batch := cur.fetchmany(opts.pushlimit):
                rows = [row_type(*r) for r in batch]
                enc = encode(stream, rows, _IdentityMapper())  # type: ignore[arg-type]
                totals["json+gzip (cogent-batch/1)"] += len(
                    gzip.compress(orjson.dumps(enc.payload.as_json()), 6)
                )
                totals["binary+zlib"] += len(enc.payload.binary(CODEC_ZLIB))
                totals["binary+LZMA2"] += len(enc.payload.binary(CODEC_LZMA2))
                rows_seen += enc.count
            sizes[stream.name] = {k: v / max(rows_seen, 1) for k, v in totals.items()}
            sizes[stream.name]["rows"] = rows_seen
    finally:
        src.close()
    res.figures["encodings"] = sizes
