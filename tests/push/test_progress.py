"""Progress with a horizon: total, rate and time left, as a bar on a terminal and as a few log
lines otherwise; an interrupted download says how to resume, and the resumed run's summary
counts what was already there."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from base.db import make_engine
from models import Reading
from push.progress import Progress, duration
from tests.push.test_exit_codes import cli
from tests.pushkit import count, push_once, seed_cogent_house, write_config

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_shows_total_percentage_rate_and_time_left():
    clock, out = Clock(), Terminal()
    bar = Progress("pushing", 861_390, stream=out, clock=clock)
    clock.now = 10.0
    bar.update(86_139)
    line = out.getvalue().split("\r")[-1]
    assert "86,139 of 861,390 rows (10%)" in line and "8,614 rows/s" in line, line
    assert "about 1 min 30 s left" in line and "[##" in line, line
    bar.finish()
    assert out.getvalue().endswith("\n")


def test_progress_without_a_terminal_logs_every_interval_not_every_batch(caplog):
    clock, out = Clock(), io.StringIO()
    bar = Progress("pushing", 861_390, stream=out, clock=clock, interval=30)
    with caplog.at_level(logging.INFO, logger="push.progress"):
        for batch in range(1, 173):  # 172 batches of 5000 rows, 0.2 s each
            clock.now = batch * 0.2
            bar.update(min(batch * 5000, 861_390))
        bar.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert 2 <= len(lines) <= 4, lines  # the first batch, one after 30 s, the summary
    assert "of 861,390 rows" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("pushing: 860,000 rows in 34 s")
    assert out.getvalue() == ""
    assert duration(3725) == "1 h 02 min" and duration(59) == "59 s"


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_a_catch_up_once_shows_progress_instead_of_a_line_per_batch(pair):
    data = seed_cogent_house(pair.local, days=3)
    config = pair.config(pushlimit=200)
    code, out, err = cli(config.path, "once")
    assert code == 0, out + err
    total = data.readings + data.node_states
    assert "pushing: " in err and f"of {total:,} rows" in err, err
    assert "rows/s" in err and f"pushing: {total:,} rows in" in err, err
    assert " sent 200 rows" not in err, err  # the per-batch lines stay in the log file
    assert " sent 200 rows" in Path(config.logfile or "").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_an_interrupted_download_says_how_to_resume_and_the_resumed_summary_is_right(
    pair, make_db
):
    data = seed_cogent_house(pair.local, days=20)
    push_once(pair.config())
    fresh = make_db("fresh")
    conf = write_config(pair.dir / "fresh.conf", fresh, {"central": (pair.server.url, pair.key)})
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(conf.path), "download", "--all"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    engine = make_engine(fresh)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if count(engine, Reading) > 0:
                    break
            except Exception:  # not migrated yet
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        partial = count(engine, Reading)
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
    assert proc.returncode == 130, out + err
    assert 0 < partial < data.readings
    assert "interrupted: " in err and "restored from central so far" in err, err
    assert f"RestPusher.py -c {conf.path} download --all" in err, err
    code, out, err = cli(conf.path, "download", "--all")
    assert code == 0, out + err
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("restored 2 house(s) from central: "), summary
    assert f"{data.readings - partial} readings and " in summary, summary
    assert f"; {partial} readings and " in summary and "were already here" in summary, summary
    code, out, err = cli(conf.path, "download", "--all")  # everything is here now
    summary = out.strip().splitlines()[-1]
    assert "0 readings and 0 node states new" in summary, summary
    assert f"{data.readings} readings and {data.node_states} node states were already here" in (
        summary
    ) and "(2 house(s) already complete)" in summary, summary


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_verify_shows_its_progress_in_houses_and_repair_in_rows(pair):
    seed_cogent_house(pair.local, days=1)
    push_once(pair.config())
    code, out, err = cli(pair.config().path, "verify")
    assert code == 0, out + err
    assert "central: comparing: 2 houses in" in err, err  # the closing line: count and time
    remote = make_engine(pair.remote)
    with remote.begin() as conn:
        conn.execute(Reading.__table__.delete().where(Reading.nodeId == 101))
    remote.dispose()
    code, out, err = cli(pair.config().path, "verify", "--repair")
    assert code == 0, out + err
    assert "central: re-sending: 576 rows in" in err, err
