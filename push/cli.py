"""``python RestPusher.py``: the push daemon's command line.

A thin layer: parse arguments, load the configuration, call the library,
and turn :class:`base.errors.CogentError` into a one-line message and an
exit code. Exit codes: 0 success, 1 something failed (e.g. a remote did not
take everything), 2 a problem a person must fix (configuration, schema).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select

from base.config import Config, RemoteConfig, load_config
from base.db import make_engine
from base.errors import CogentError, ConfigError, PermanentError
from base.logs import configure_logging, logfile_problem
from base.memory import limit_malloc_arenas
from base.migrate import upgrade
from models import House
from push.client import RemoteClient
from push.daemon import Pusher, install_signal_handlers
from push.download import Downloader, terminal_progress
from push.lock import PushLock
from push.status import format_status, remote_status
from push.verify import Verifier

log = logging.getLogger("push")

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="RestPusher.py",
        description="Replicate this base station's database to the central servers "
        "listed in synchronise.conf. With no command, runs the push daemon in "
        "the foreground (what systemd runs).",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="configuration file (default: $COGENT_CONFIG or ./synchronise.conf)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        help="run the push daemon in the foreground (the default)",
        description="Push every synctime seconds until SIGTERM; the first SIGTERM "
        "finishes the batches in flight, a second aborts.",
    )
    sub.add_parser(
        "start",
        help="run the push daemon detached, with a pidfile",
        description="Detach (python-daemon), write [general] pidfile, log to [general] logfile.",
    )
    stop = sub.add_parser(
        "stop",
        help="stop a detached push daemon",
        description="Send SIGTERM to the pid in [general] pidfile and wait.",
    )
    stop.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the batches in flight (default 60)",
    )
    sub.add_parser(
        "once",
        help="run one full cycle, then exit (non-zero if anything failed)",
        description="Push everything committed so far to every enabled remote; exit "
        "0 only if every remote took everything.",
    )
    status = sub.add_parser(
        "status",
        help="show per remote: reachable, schema, backlog, errors",
        description="Per remote: reachable, schema match, backlog, last "
        "success, last error, rows set aside; per house: local and remote counts. Exit 0 when "
        "every enabled remote is reachable, at the same schema, has no backlog and every house "
        "is the same on both sides; 1 otherwise (for monitoring).",
    )
    status.add_argument(
        "--offline",
        action="store_true",
        help="do not contact the remotes; show only what is stored locally",
    )
    download = sub.add_parser(
        "download",
        help="restore houses from a remote into the local database",
        description="Pull metadata, readings and node states of the chosen houses from a "
        "remote, page by page. Resumable and idempotent; restored rows are never pushed back.",
    )
    which = download.add_mutually_exclusive_group(required=True)
    which.add_argument("--house", metavar="ADDRESS", help="the house with this address")
    which.add_argument("--deployment", metavar="NAME", help="every house of this deployment")
    which.add_argument("--all", action="store_true", help="every house the key may read")
    download.add_argument(
        "--remote",
        metavar="NAME",
        help="which remote (default: the enabled one; required when several are enabled)",
    )
    verify = sub.add_parser(
        "verify",
        help="compare local and remote per location/node/type/day; --repair re-sends",
        description="Compare counts and checksums per (location, node, sensor type, day) and "
        "per (node, day); print 'Local and remote are the same' or the ranges that differ. "
        "Exit 0 when all are the same.",
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="re-send the local rows of the ranges that differ, then verify again",
    )
    verify.add_argument("--remote", metavar="NAME", help="which remote (default: every enabled)")
    verify.add_argument("--house", metavar="ADDRESS", help="only this house")
    retry_cmd = sub.add_parser(
        "retry",
        help="send set-aside rows again, once their cause is fixed",
        description="Rows set aside (see 'status') are never looked at again by a cycle. "
        "After fixing the cause - a node given a location and its readings corrected, a "
        "sensor type added on the server - send them again: what gets through is no longer "
        "set aside, what is refused again stays with its new reason. Takes the push lock "
        "(stop the daemon first, or run it between cycles).",
    )
    retry_cmd.add_argument("--remote", metavar="NAME", help="which remote (default: every enabled)")
    retry_cmd.add_argument(
        "--reason",
        metavar="TEXT",
        help="only rows whose reason contains TEXT (e.g. 'locationId', 'sensor type')",
    )
    demo = sub.add_parser(
        "demo",
        help="the whole system on this machine: simulate a house, push it, compare",
        description="Create a SQLite base station and a SQLite-backed central server on "
        "loopback, simulate a week of one house, push it with progress, show the status "
        "comparison, then stop everything (unless --keep-running). Needs no configuration.",
    )
    demo.add_argument(
        "--dir", default="var/demo", help="working directory (default var/demo; wiped first)"
    )
    demo.add_argument(
        "--port", type=int, default=6543, help="REST server port (default 6543, another if taken)"
    )
    demo.add_argument("--days", type=float, default=7.0, help="days to simulate (default 7)")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="afterwards keep the server, a live simulation and the pusher running until Ctrl-C",
    )
    sub.add_parser(
        "migrate",
        help="bring the local database schema to the latest revision",
        description="Same as 'alembic -x url=LOCALURL upgrade head'.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_malloc_arenas()
    command = args.command or "run"
    try:
        if command == "demo":
            from push.demo import run_demo  # imports the server side too; only for the demo

            configure_logging("WARNING", None)
            return run_demo(Path(args.dir), args.port, args.days, args.keep_running)
        config = load_config(args.config)
        handler = COMMANDS[command]
        return handler(config, args)
    except CogentError as exc:
        print(f"RestPusher: {exc}", file=sys.stderr)
        return EXIT_USER if isinstance(exc, PermanentError) else EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _logging(config: Config, args: argparse.Namespace, console: bool = True) -> None:
    configure_logging("DEBUG" if args.verbose else config.loglevel, config.logfile, console)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    return _run_daemon(config)


def cmd_once(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    stop = threading.Event()
    install_signal_handlers(stop)
    with PushLock(config.lockfile):
        pusher = Pusher(config, stop)
        try:
            reports = pusher.run_once()
        finally:
            pusher.close()
    failed = [r for r in reports if not r.ok]
    for r in reports:
        state = "ok" if r.ok else f"FAILED: {r.error}"
        print(
            f"{r.remote}: {r.sent} rows sent, {r.requests} requests, "
            f"{r.bytes_sent} bytes out — {state}"
        )
    if not reports:
        print("no remote is enabled in [locations]; nothing to do")
    if failed:
        return EXIT_USER if all(r.permanent for r in failed) else EXIT_FAILED
    return EXIT_OK


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    configure_logging("WARNING", None)
    engine = make_engine(config.localurl)
    try:
        statuses = [
            remote_status(config, r, engine, probe=not args.offline) for r in config.remotes
        ]
    finally:
        engine.dispose()
    if not statuses:
        print("no remotes configured in [locations]")
    print("\n\n".join(format_status(s) for s in statuses))
    if args.offline:
        return EXIT_OK
    return EXIT_OK if all(s.healthy for s in statuses if s.enabled) else EXIT_FAILED


def cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    upgrade(config.localurl)
    print("local database is at the latest schema revision")
    return EXIT_OK


def _read_pid(pidfile: str) -> int | None:
    try:
        return int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_start(config: Config, args: argparse.Namespace) -> int:
    import daemon
    import daemon.pidfile

    pid = _read_pid(config.pidfile)
    if pid and _alive(pid):
        print(f"RestPusher: already running (pid {pid}, pidfile {config.pidfile})", file=sys.stderr)
        return EXIT_USER
    Path(config.pidfile).unlink(missing_ok=True)  # stale
    Path(config.pidfile).parent.mkdir(parents=True, exist_ok=True)
    problem = logfile_problem(config.logfile)
    if problem:
        # Said now, while there is still a console: after detaching nobody would see it.
        print(f"RestPusher: warning: {problem}; the detached daemon has no console, so it "
              "will run without a log. Fix the permissions or set [general] logfile.",
              file=sys.stderr)
    print(f"starting the push daemon; log: {config.logfile}, pidfile: {config.pidfile}")
    context = daemon.DaemonContext(
        working_directory=os.getcwd(),
        umask=0o022,
        pidfile=daemon.pidfile.TimeoutPIDLockFile(config.pidfile, acquire_timeout=5),
        signal_map={},  # our own handlers: the first SIGTERM is a graceful stop
    )
    with context:
        _logging(config, args, console=False)
        try:
            return _run_daemon(config)
        except CogentError as exc:
            log.error("push daemon cannot run: %s", exc)
            return EXIT_USER


def _run_daemon(config: Config) -> int:
    stop = threading.Event()
    install_signal_handlers(stop)
    with PushLock(config.lockfile):
        pusher = Pusher(config, stop)
        try:
            pusher.run_forever()
        finally:
            pusher.close()
    return EXIT_OK


def cmd_stop(config: Config, args: argparse.Namespace) -> int:
    pid = _read_pid(config.pidfile)
    if not pid or not _alive(pid):
        print(f"RestPusher: not running (no live pid in {config.pidfile})", file=sys.stderr)
        return EXIT_FAILED
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"stopped (pid {pid})")
            return EXIT_OK
        time.sleep(0.2)
    print(
        f"RestPusher: pid {pid} still running after {args.timeout:g} s; "
        f"'kill -TERM {pid}' again aborts it",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _pick_remote(config: Config, name: str | None) -> RemoteConfig:
    if name:
        return config.remote(name)
    enabled = config.enabled_remotes
    if len(enabled) != 1:
        names = ", ".join(r.name for r in enabled) or "none"
        raise ConfigError(f"say which remote with --remote NAME (enabled: {names})")
    return enabled[0]


def cmd_download(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    upgrade(config.localurl)
    remote = _pick_remote(config, args.remote)
    engine = make_engine(config.localurl)
    client = RemoteClient(remote)
    try:
        downloader = Downloader(engine, client, progress=terminal_progress())
        houses = downloader.remote_houses(
            address=args.house, deployment=args.deployment, everything=args.all
        )
        report = downloader.run(houses)
    finally:
        client.close()
        engine.dispose()
    print(
        f"restored {len(report.houses)} house(s) from {remote.name}: {report.readings} "
        f"readings, {report.node_states} node states ({report.skipped} were already here)"
    )
    return EXIT_OK


def cmd_verify(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    remotes = [config.remote(args.remote)] if args.remote else list(config.enabled_remotes)
    engine = make_engine(config.localurl)
    all_same = True
    try:
        for remote in remotes:
            client = RemoteClient(remote)
            try:
                verifier = Verifier(engine, client)
                only = _house_ids(engine, args.house)
                comparisons = verifier.compare(only)
                if args.repair and any(not c.same for c in comparisons):
                    sent = verifier.repair(comparisons, config.pushlimit, progress=print)
                    print(f"{remote.name}: re-sent {sent} rows; verifying again")
                    comparisons = Verifier(engine, client).compare(only)
                print(f"remote {remote.name}:")
                for c in comparisons:
                    print(f"  {c.summary_line()}")
                    for diff in c.differences[:50]:
                        print(f"    {diff.describe()}")
                    if len(c.differences) > 50:
                        print(f"    … and {len(c.differences) - 50} more ranges")
                all_same = all_same and all(c.same for c in comparisons)
            finally:
                client.close()
    finally:
        engine.dispose()
    return EXIT_OK if all_same else EXIT_FAILED


def cmd_retry(config: Config, args: argparse.Namespace) -> int:
    from push.retry import Retrier

    _logging(config, args)
    remotes = [config.remote(args.remote)] if args.remote else list(config.enabled_remotes)
    failed = False
    with PushLock(config.lockfile):
        engine = make_engine(config.localurl)
        try:
            for remote in remotes:
                retrier = Retrier(config, remote, engine)
                try:
                    print(retrier.run(args.reason).describe())
                except CogentError as exc:
                    print(f"{remote.name}: FAILED: {exc}", file=sys.stderr)
                    failed = True
                finally:
                    retrier.close()
        finally:
            engine.dispose()
    return EXIT_FAILED if failed else EXIT_OK


def _house_ids(engine: Engine, address: str | None) -> list[int] | None:
    if address is None:
        return None
    with engine.connect() as conn:
        ids = list(conn.execute(select(House.id).where(House.address == address)).scalars())
    if not ids:
        raise ConfigError(f"no local house has the address {address!r}")
    return ids


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "download": cmd_download,
    "verify": cmd_verify,
    "retry": cmd_retry,
    "run": cmd_run,
    "once": cmd_once,
    "status": cmd_status,
    "migrate": cmd_migrate,
    "start": cmd_start,
    "stop": cmd_stop,
}
