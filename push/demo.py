"""``python RestPusher.py demo``: the whole system on one machine in under a minute.

A SQLite base station, a SQLite-backed central server on loopback, a week of
one simulated house, one push with progress, and the status comparison. It
stops everything it started unless asked to keep it running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from base.config import load_config
from base.db import make_engine
from base.errors import CogentError, TransientError
from base.migrate import upgrade
from base.simulate import Plan, run_realtime, simulate_days
from push.cycle import RemoteSync, StreamReport
from push.daemon import Pusher
from push.ledger import LocalStore
from push.status import backlog, format_status, remote_status
from rest.keys import create_key

REPO = Path(__file__).resolve().parent.parent
Say = Callable[[str], None]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(preferred: int) -> int:
    """``preferred`` if it is free, else any free port (0 asks for any)."""
    if preferred and _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Bar:
    def __init__(self, label: str, total: int, tty: bool):
        self.label, self.total, self.tty, self.last = label, max(total, 1), tty, -1

    def show(self, done: int) -> None:
        pct = min(100, int(100 * done / self.total))
        if self.tty:
            filled = pct * 30 // 100
            sys.stdout.write(
                f"\r  {self.label}: [{'#' * filled}{'.' * (30 - filled)}] "
                f"{done}/{self.total} ({pct}%)"
            )
            sys.stdout.flush()
        elif pct // 25 != self.last:
            self.last = pct // 25
            print(f"  {self.label}: {done}/{self.total} ({pct}%)", flush=True)

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\n")


def start_server(central_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rest",
                "serve",
                "--db",
                central_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TransientError(f"the REST server exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/rest/version/", timeout=2):
                return proc
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    proc.kill()
    raise TransientError(f"the REST server did not answer within 30 s; see {log_path}")


def run_demo(
    workdir: Path, port: int = 6543, days: float = 7.0, keep_running: bool = False, say: Say = print
) -> int:
    tty = sys.stdout.isatty()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    base_url = f"sqlite:///{workdir / 'base-station.db'}"
    central_url = f"sqlite:///{workdir / 'central.db'}"
    t0 = time.monotonic()

    say("1. Creating the databases (alembic upgrade head on both sides)")
    upgrade(base_url)
    upgrade(central_url)
    central = make_engine(central_url)
    with Session(central) as session:
        _, key = create_key(session, "demo-house", "site")
        session.commit()
    central.dispose()

    port = _free_port(port)
    say(f"2. Starting the central REST server on http://127.0.0.1:{port}/rest/")
    server = start_server(central_url, port, workdir / "rest-server.log")
    try:
        conf = workdir / "synchronise.conf"
        conf.write_text(
            "# Written by 'RestPusher.py demo'.\n[general]\n"
            f"localurl = {base_url}\npushlimit = 5000\nsynctime = 10\n"
            "logfile = restpusher.log\n\n[locations]\ncentral = 1\n\n"
            f"[central]\nresturl = http://127.0.0.1:{port}/rest/\napikey = {key}\n"
        )
        config = load_config(conf)
        engine = make_engine(base_url)

        say(f"3. Simulating {days:g} days of one house into the base station's SQLite database")
        bar = _Bar("simulate", 100, tty)
        sim = simulate_days(
            engine,
            days,
            houses=1,
            seed=1,
            progress=lambda p: bar.show(int(100 * (p.fraction or 0))),
        )
        bar.show(100)
        bar.done()
        say(
            f"   {sim.readings} readings and {sim.nodestates} node states from "
            f"{len(sim.nodes)} nodes"
        )

        say("4. Pushing to the central server")
        todo = sum(backlog(engine, LocalStore(engine), "central").values())
        push_bar = _Bar("push", todo, tty)
        sent: dict[str, int] = {}

        def on_batch(stream: str, report: StreamReport) -> None:
            sent[stream] = report.sent + report.set_aside
            push_bar.show(sum(sent.values()))

        sync = RemoteSync(config, config.remote("central"), engine, on_batch=on_batch)
        try:
            report = sync.run()
        finally:
            sync.close()
        push_bar.show(todo)
        push_bar.done()
        say(
            f"   {report.sent} rows in {report.requests} requests, {report.bytes_sent} bytes "
            f"sent ({report.bytes_sent / max(report.sent, 1):.2f} bytes per row), "
            f"{report.seconds:.1f} s"
        )

        say("5. Comparing local and remote (RestPusher.py status)")
        status = remote_status(config, config.remote("central"), engine)
        say("\n".join("   " + line for line in format_status(status).splitlines()))
        same = bool(status.houses) and all(h.same for h in status.houses)
        engine.dispose()

        say(f"\nDone in {time.monotonic() - t0:.1f} s. Browse the central server:")
        say(f"   curl http://127.0.0.1:{port}/rest/sensortype/        (no key needed)")
        say(
            f"   curl -H 'Authorization: Bearer {key}' \\\n"
            f"        'http://127.0.0.1:{port}/rest/reading/?_limit=5'"
        )
        say(f"   http://127.0.0.1:{port}/docs                          (interactive API docs)")
        if keep_running:
            _keep_running(config_path=conf, base_url=base_url, say=say)
        else:
            say(
                "To keep it running (server, live simulation and push daemon): "
                "python RestPusher.py demo --keep-running"
            )
        return 0 if same else 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _keep_running(config_path: Path, base_url: str, say: Say) -> None:
    say("Keeping it running: a live simulation and the push daemon. Ctrl-C stops everything.")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = make_engine(base_url)

    def simulate() -> None:
        try:
            run_realtime(engine, Plan(houses=1, seed=1), stop=stop)
        except CogentError as exc:
            say(f"simulator stopped: {exc}")

    worker = threading.Thread(target=simulate, daemon=True)
    worker.start()
    pusher = Pusher(load_config(config_path), stop)
    try:
        pusher.run_forever()
    finally:
        pusher.close()
        stop.set()
        worker.join(timeout=5)
        engine.dispose()
