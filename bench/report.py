"""The results table and docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.remote import REPO, MariaDB
from bench.scenarios import Options, Results

MIB = 1024


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else math.nan


def _n(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def figures(res: Results) -> dict[str, Any]:
    """The headline numbers, derived from the raw results (missing scenarios → absent)."""
    f = res.figures
    out: dict[str, Any] = {}
    if "ours" in f:
        cu = f["ours"]["catchup"]
        out["ours_rate"] = _rate(cu["readings"], cu["seconds"])
        out["ours_seconds"] = cu["seconds"]
        out["ours_readings"] = cu["readings"]
        out["ours_nodestates"] = cu["nodestates"]
        streams = cu["streams"]
        r = streams.get("Reading", {"bytes": 0, "rows": 0, "batches": 0})
        s = streams.get("NodeState", {"bytes": 0, "rows": 0, "batches": 0})
        out["wire_reading"] = r["bytes"] / r["rows"] if r["rows"] else math.nan
        out["wire_state"] = s["bytes"] / s["rows"] if s["rows"] else math.nan
        out["wire_cycle"] = cu["bytes"] / cu["readings"] if cu["readings"] else math.nan
        out["reading_batches"] = r["batches"]
        idle = f["ours"]["idle"]
        out["idle_requests"] = idle["requests"]
        out["idle_bytes"] = idle["bytes"]
        out["peak_1"] = f["ours"]["peak_rss_kib"] / MIB
        out["delivered"] = f.get("ours_delivered")
    if "direct" in f:
        out["direct_rate"] = _rate(f["direct"]["readings"], f["direct"]["seconds"])
    if "loaddata" in f:
        out["load_rate"] = _rate(f["loaddata"]["readings"], f["loaddata"]["seconds"])
    if "baseline" in f:
        b = f["baseline"]
        out["base_rate"] = _rate(b["readings"], b["seconds"])
        out["base_readings"] = b["readings"]
        out["wire_base"] = b["bytes"].get("Reading", 0) / b["readings"] if b["readings"] else 0
        out["wire_base_state"] = (
            b["bytes"].get("NodeState", 0) / b["nodestates"] if b["nodestates"] else math.nan
        )
    if "memory" in f:
        out["memory"] = {int(k): v / MIB for k, v in f["memory"].items()}
    if "fleet" in f:
        out["fleet"] = f["fleet"]
    if "adoption" in f:
        out["adoption"] = f["adoption"]
    return out


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or math.isnan(b):
        return math.nan
    return a / b


def rows(res: Results, opts: Options) -> list[tuple[str, str, str, str, str]]:
    """(scenario, figure, result, target, verdict)."""
    g = figures(res)
    out: list[tuple[str, str, str, str, str]] = []
    if "ours_rate" in g:
        ours = g["ours_rate"]
        out.append(
            (
                "1 Catch-up",
                "cogent-sync: SQLite → pusher → REST (uvicorn) → MariaDB",
                f"{_n(ours)} readings/s ({_n(g['ours_readings'])} readings + "
                f"{_n(g['ours_nodestates'])} node states in {g['ours_seconds']:.1f} s; "
                f"all delivered: {'yes' if g['delivered'] else 'NO'})",
                "",
                "",
            )
        )
        for key, name, target in (
            ("direct_rate", "(a) direct copy, executemany INSERT", 1.3),
            ("load_rate", "(b) LOAD DATA LOCAL INFILE", 0.85),
            ("base_rate", "(c) Cogent-house protocol baseline", 20.0),
        ):
            if key in g:
                ratio = _ratio(ours, g[key])
                extra = f" (first {_n(g['base_readings'])} readings)" if key == "base_rate" else ""
                out.append(
                    (
                        "",
                        name,
                        f"{_n(g[key])} readings/s{extra} → ours **{ratio:.2f}x**",
                        f"≥ {target:g}x",
                        _verdict(ratio >= target),
                    )
                )
        base = g.get("wire_base")
        quarter = g["wire_reading"] <= base / 4 if base else None
        out.append(
            (
                "2 Wire",
                "bytes per reading, reading batches (request + reply, headers included)",
                f"**{g['wire_reading']:.2f}** B"
                + (f" (baseline {base:.2f} B: {g['wire_reading'] / base:.3f}x)" if base else ""),
                "≤ 2 B and ≤ ¼ of baseline",
                _verdict(g["wire_reading"] <= 2 and quarter is not False),
            )
        )
        out.append(
            (
                "",
                "bytes per node state, node-state batches",
                f"{g['wire_state']:.2f} B"
                + (
                    f" (baseline {g['wire_base_state']:.2f} B)"
                    if not math.isnan(g.get("wire_base_state", math.nan))
                    else ""
                ),
                "",
                "",
            )
        )
        out.append(
            (
                "",
                "whole catch-up cycle (version, map, readings, node states) per reading",
                f"{g['wire_cycle']:.2f} B",
                "",
                "",
            )
        )
    if "memory" in g:
        mem = g["memory"]
        sizes = sorted(mem)
        for n in sizes:
            out.append(
                (
                    "3 Memory" if n == sizes[0] else "",
                    f"pusher peak RSS (VmHWM), backlog {_n(n)} readings",
                    f"{mem[n]:.1f} MiB",
                    "≤ 100 MB",
                    _verdict(mem[n] * 1.048576 <= 100),
                )
            )
        if len(sizes) > 1:
            growth = mem[sizes[-1]] / mem[sizes[0]] - 1
            out.append(
                (
                    "",
                    f"{_n(sizes[-1])} vs {_n(sizes[0])}",
                    f"{growth * 100:+.1f} %",
                    "within 10 %",
                    _verdict(abs(growth) <= 0.10),
                )
            )
    if "idle_requests" in g:
        out.append(
            (
                "4 Idle",
                "a cycle with nothing new: requests, bytes (both ways, headers included)",
                f"{g['idle_requests']} request(s), {g['idle_bytes']} B",
                "≤ 2 requests, ≤ 2 KB",
                _verdict(g["idle_requests"] <= 2 and g["idle_bytes"] <= 2048),
            )
        )
    out += _catchup_elsewhere(res)
    wp = res.figures.get("writepaths") or {}
    for i, name in enumerate(n for n in ("MariaDB", "PostgreSQL") if n in wp):
        rates = wp[name]
        out.append((
            "7 Write paths" if i == 0 else "",
            f"{name}: a batch's {_n(wp['batch_rows'])} new readings written by the server, "
            f"{wp['batches']} batches each way",
            f"INSERT {_n(rates['insert'])} rows/s, bulk {_n(rates['bulk'])} rows/s → bulk "
            f"**{_ratio(rates['bulk'], rates['insert']):.2f}x**",
            "auto (bulk) not slower",
            _verdict(rates["bulk"] >= 0.95 * rates["insert"]),
        ))
    for i, run in enumerate((g.get("fleet") or {}).values()):
        out.append(
            (
                "5 Fleet" if i == 0 else "",
                f"{run['stations']} base stations at once, server with {run.get('workers', 1)} "
                f"worker(s)",
                f"{_n(run['readings_per_s'])} readings/s; batch latency p50 "
                f"{run['p50'] * 1000:.0f} ms, p99 {run['p99'] * 1000:.0f} ms "
                f"({run['batches']} batches); server RSS {run.get('server_rss_mib', 0):.0f} MiB; "
                f"{_n(run.get('busy', 0))} answered 429 and waited for; delivered "
                f"{_n(run['delivered'][0])}/{_n(run['expected'][0])} readings, "
                f"{_n(run['delivered'][1])}/{_n(run['expected'][1])} node states",
                "nothing lost, p99 reported",
                _verdict(bool(run["all_delivered"])),
            )
        )
    adopted = g.get("adoption")
    if adopted:
        out.append(
            (
                "6 Adoption",
                f"alembic upgrade head of a Cogent-house central database (MariaDB, "
                f"{_n(adopted['readings'])} single-precision readings)",
                f"{_n(adopted['rate'])} readings/s ({adopted['seconds']:.1f} s; "
                f"{_n(adopted['copied'])} copied); peak RSS {adopted['rss_mib']:.0f} MiB",
                "every row, bounded memory",
                _verdict(adopted["copied"] == adopted["readings"]
                         and adopted["rss_mib"] <= 200),
            )
        )
    return out


def _catchup_elsewhere(res: Results) -> list[tuple[str, str, str, str, str]]:
    """The catch-up on PostgreSQL and on the Galera cluster, beside their direct copies."""
    out: list[tuple[str, str, str, str, str]] = []
    sections = (
        ("catchup_pg", "1b Catch-up, PostgreSQL", "PostgreSQL",
         (("executemany", "(a) direct copy, executemany INSERT"),
          ("copy", "(b) direct COPY FROM STDIN"))),
        ("catchup_galera", "1c Catch-up, Galera", "a 3-node Galera cluster",
         (("direct", "(a) direct copy, executemany INSERT"),
          ("loaddata", "(b) LOAD DATA LOCAL INFILE"))),
    )
    for key, scenario, where, others in sections:
        f = res.figures.get(key)
        if not f or "ours" not in f:
            continue
        cu = f["ours"]["catchup"]
        ours = _rate(cu["readings"], cu["seconds"])
        out.append((scenario, f"cogent-sync: SQLite → pusher → REST → {where}",
                    f"{_n(ours)} readings/s ({_n(cu['readings'])} readings in "
                    f"{cu['seconds']:.1f} s; all delivered: "
                    f"{'yes' if f['ours_delivered'] else 'NO'})", "", ""))
        for other, name in others:
            if other in f:
                rate = _rate(f[other]["readings"], f[other]["seconds"])
                out.append(("", name, f"{_n(rate)} readings/s → ours **{_ratio(ours, rate):.2f}x**",
                            "", ""))
    return out


def table(res: Results, opts: Options) -> str:
    lines = [
        "| Scenario | Figure | Result | Target | |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(res, opts)]
    enc = res.figures.get("encodings")
    if enc:
        lines += [
            "",
            "Body bytes per row of the same batches, by encoding (no headers):",
            "",
            "| Stream | rows | " + " | ".join(k for k in enc["Reading"] if k != "rows") + " |",
            "|---|---|" + "---|" * (len(enc["Reading"]) - 1),
        ]
        for stream, sizes in enc.items():
            cells = [f"{v:.3f}" for k, v in sizes.items() if k != "rows"]
            lines.append(f"| {stream} | {_n(sizes['rows'])} | " + " | ".join(cells) + " |")
    if res.notes:
        lines += ["", *[f"- note: {n}" for n in res.notes]]
    return "\n".join(lines)


def machine(db: MariaDB) -> list[tuple[str, str]]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        maria = db.version()
        innodb = (
            f"buffer pool {int(db.variable('innodb_buffer_pool_size')) >> 20} MiB, "
            f"innodb_flush_log_at_trx_commit={db.variable('innodb_flush_log_at_trx_commit')}"
        )
    except Exception as exc:  # the report still says what it can
        maria, innodb = f"unreachable ({exc.__class__.__name__})", "?"
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores (shared with other jobs: expect noise)"),
        ("RAM", ram),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version),
        ("MariaDB", f"{maria} ({innodb}), on the same machine, over loopback TCP"),
    ]


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "bench", "push", "rest")
    return f"{sha}" + (" (with uncommitted changes in bench/push/rest)" if dirty else "")


def render(res: Results, opts: Options, db: MariaDB, *, quick: bool, argv: list[str]) -> str:
    from bench.analysis import analysis

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python -m bench" + (" " + " ".join(argv) if argv else "")
    parts = [
        "# Benchmarks",
        "",
        f"Written by `{cmd}` on {now}, commit {commit()}, in "
        f"{res.figures.get('bench_seconds', 0) / 60:.1f} minutes."
        + (" **Quick mode: small sizes, figures are indicative only.**" if quick else ""),
        "Measured side by side in one run on one machine; the machine is shared and noisy, so "
        "read the ratios (all from the same run), not the absolute rates.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine(db)],
        "",
        "## Results",
        "",
        table(res, opts),
        "",
        analysis(figures(res), opts),
    ]
    return "\n".join(parts) + "\n"
