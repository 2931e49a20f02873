"""Adoption of a Cogent-house central database (issue 14): ``alembic upgrade head`` on an
original schema whose Reading table holds N single-precision readings, in a process of its
own, timed, with its peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from sqlalchemy import text

from base.db import make_engine
from bench.remote import REPO, MariaDB
from bench.scenarios import Options, Results, say
from tests.adoption.originals import build

_FILL = (
    "INSERT INTO Reading (time, nodeId, type, locationId, value) "
    "SELECT '2010-01-01' + INTERVAL (seq DIV 4) * 300 SECOND, "
    "ELT(1 + seq MOD 4, 101, 102, 104, 105), 0, ELT(1 + seq MOD 4, 1, 2, 3, 4), "
    "18 + (seq MOD 97) / 10 FROM seq_{lo}_to_{hi}"
)


def adoption(opts: Options, db: MariaDB, res: Results, readings: int) -> None:
    url = db.create_empty("adopt")
    try:
        engine = make_engine(url)
        build(engine, "master", "1dce0115d073")
        say(opts, f"adoption: filling an original Reading table with {readings:,} rows")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM Reading"))
            for lo in range(1, readings + 1, 1_000_000):
                hi = min(lo + 999_999, readings)
                conn.execute(text(_FILL.format(lo=lo, hi=hi)))
        engine.dispose()
        started = time.monotonic()
        with tempfile.TemporaryFile() as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "alembic", "-x", f"url={url}", "upgrade", "head"],
                cwd=REPO, stdout=log, stderr=log)
            # wait4: this child's own peak (RUSAGE_CHILDREN is the largest of every child so
            # far, a fleet run's included).
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.monotonic() - started
            if child.returncode != 0:
                log.seek(0)
                raise RuntimeError(f"alembic upgrade failed: {log.read().decode()[-2000:]}")
        peak_kib = usage.ru_maxrss
        engine = make_engine(url)
        with engine.connect() as conn:
            copied = int(conn.execute(text("SELECT COUNT(*) FROM Reading")).scalar_one())
        engine.dispose()
        res.figures["adoption"] = {
            "readings": readings, "copied": copied, "seconds": seconds,
            "rate": readings / seconds, "rss_mib": peak_kib / 1024,
        }
    finally:
        if not opts.keep:
            db.drop(url)
