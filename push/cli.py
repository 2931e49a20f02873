"""``python RestPusher.py``: the push daemon's command line.

A thin layer: parse arguments, load the configuration, call the library,
and turn :class:`base.errors.CogentError` into a one-line message and an
exit code (:mod:`push.outcome`; the table is in docs/OPERATIONS.md). Every
command that works on the local database names it first (password hidden),
and says whether it writes to it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from base.config import Config, RemoteConfig, load_config
from base.db import make_engine, redact
from base.errors import CogentError, ConfigError, DatabaseUnavailable
from base.logs import configure_logging, logfile_problem, quiet_console
from base.memory import limit_malloc_arenas
from base.migrate import current_revision, head_revision, upgrade
from models import House
from push.client import RemoteClient
from push.daemon import Pusher, install_signal_handlers
from push.download import Downloader, DownloadReport
from push.lock import PushLock, how_to_stop, lock_holder, systemd_unit
from push.outcome import Exit, for_failure, worst
from push.progress import Progress
from push.status import (
    backlog,
    format_status,
    local_status,
    remote_status,
    status_exit,
)
from push.store import LocalStore
from push.sync import RemoteReport, StreamReport
from push.verify import Verifier

log = logging.getLogger("push")

EXIT_OK, EXIT_FAILED, EXIT_USER = Exit.OK, Exit.FAILED, Exit.USAGE
# A backlog at least this many batches long is a catch-up: it gets a progress display.
CATCH_UP_BATCHES = 2


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
        help="stop the push daemon, whoever started it",
        description="Send SIGTERM to the daemon (the pid in [general] pidfile, else the "
        "process holding [general] lockfile: systemd's, a shell's) and wait until it has "
        "finished the batches in flight.",
    )
    stop.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the batches in flight (default 60)",
    )
    sub.add_parser(
        "once",
        help="run one full cycle, then exit (the exit code says what went wrong)",
        description="Push everything committed so far to every enabled remote. Exit 0 only "
        "if every enabled remote was reached, took the key and took everything; 3 when rows "
        "were newly set aside; 4 unreachable, 5 key refused, 6 schema mismatch, 7 local "
        "database trouble, 8 another pusher running, 2 configuration (docs/OPERATIONS.md).",
    )
    status = sub.add_parser(
        "status",
        help="show the local database, then per remote: reachable, key, schema, backlog, "
        "errors, rows set aside, houses",
        description="The local database's counts; per enabled remote: reachable, key, schema "
        "match, backlog, last success, last error, rows set aside (by house, node, sensor type "
        "and time, with the command that sends them again); per house: local and remote "
        "counts. Disabled remotes are listed, never contacted. Exit 0 when every enabled "
        "remote is in step; 1 behind (a backlog, or a house differs); 3 only rows set aside; "
        "4/5/6/7/2 as for 'once' (docs/OPERATIONS.md).",
    )
    status.add_argument(
        "--offline",
        action="store_true",
        help="do not contact the remotes; show only what is stored locally (exit 0)",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help="one JSON document on stdout, for scripts (fields in docs/OPERATIONS.md)",
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
        return int(handler(config, args))
    except CogentError as exc:
        print(f"RestPusher: {exc}", file=sys.stderr)
        return int(for_failure(type(exc)))
    except DBAPIError as exc:  # the local database, failing outside a push cycle
        print(f"RestPusher: local database: {_first_line(exc)}", file=sys.stderr)
        return int(Exit.LOCAL_DATABASE)
    except KeyboardInterrupt:
        print("RestPusher: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _database(config: Config) -> str:
    return redact(config.localurl)


def announce(config: Config, doing: str) -> None:
    """The first line of a command that works on the local database: which one, and what."""
    print(f"local database {_database(config)}: {doing}", flush=True)


def open_local(config: Config, must_exist: bool = True) -> Engine:
    """The local database's engine, checked to open now: a failure is one line, exit 7."""
    engine = make_engine(config.localurl, must_exist=must_exist)
    try:
        current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnavailable(
            f"local database {_database(config)} cannot be used: {_first_line(exc)}"
        ) from exc
    return engine


def _stop_command(config: Config) -> str:
    return f"RestPusher.py -c {config.path} stop" if config.path else "RestPusher.py stop"


def _logging(config: Config, args: argparse.Namespace, console: bool = True) -> None:
    configure_logging("DEBUG" if args.verbose else config.loglevel, config.logfile, console)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    return _run_daemon(config)


def cmd_once(config: Config, args: argparse.Namespace) -> Exit:
    _logging(config, args)
    names = ", ".join(r.name for r in config.enabled_remotes)
    if not names:
        print("RestPusher: no remote is enabled in [locations]; nothing to do", file=sys.stderr)
        return Exit.USAGE
    announce(config, f"pushing to {names} (writes its push cursors and set-aside rows)")
    engine = open_local(config)
    try:
        todo = _backlog_total(config, engine)
    finally:
        engine.dispose()
    stop = threading.Event()
    install_signal_handlers(stop)
    with PushLock(config.lockfile, _stop_command(config)):
        pusher = Pusher(config, stop)
        progress = None
        if todo >= CATCH_UP_BATCHES * config.pushlimit:
            progress = Progress("pushing", todo)
            _watch_batches(pusher, progress)
        try:
            with quiet_console("push.sync") if progress else contextlib.nullcontext():
                reports = pusher.run_once()
        finally:
            if progress:
                progress.finish(interrupted=stop.is_set())
            pusher.close()
    codes = [_once_code(r) for r in reports]
    if stop.is_set():
        codes.append(Exit.INTERRUPTED)
    for r, code in zip(reports, codes, strict=False):
        print(_once_line(r, code))
    code = worst(codes)
    if code is not Exit.OK:
        print(f"exit {int(code)}: {code.meaning}")
    return code


def _backlog_total(config: Config, engine: Engine) -> int:
    store = LocalStore(engine)
    return sum(sum(backlog(engine, store, r.name).values()) for r in config.enabled_remotes)


def _watch_batches(pusher: Pusher, progress: Progress) -> None:
    """Feed ``progress`` from each remote's batches (RemoteSync's on_batch hook)."""
    seen: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    for name, sync in pusher.syncs.items():

        def on_batch(stream: str, report: StreamReport, _name: str = name) -> None:
            with lock:
                seen[(_name, stream)] = report.sent + report.set_aside
                done = sum(seen.values())
            progress.update(done)

        sync.on_batch = on_batch


def _once_code(report: RemoteReport) -> Exit:
    if not report.ok:
        return for_failure(report.failure)
    if report.stopped:
        return Exit.INTERRUPTED
    if sum(s.set_aside for s in report.streams.values()):
        return Exit.SET_ASIDE
    return Exit.OK


def _once_line(r: RemoteReport, code: Exit) -> str:
    if not r.ok:
        return f"{r.remote}: FAILED ({code.meaning}): {r.error}"
    streams = ", ".join(f"{k} {v.sent}" for k, v in r.streams.items() if v.sent)
    text = f"{r.remote}: {r.sent} rows sent" + (f" ({streams})" if streams else "")
    aside = sum(s.set_aside for s in r.streams.values())
    if aside:
        text += f", {aside} rows newly set aside"
    text += f", {r.requests} requests, {r.bytes_sent} bytes out"
    if code is Exit.SET_ASIDE:
        return (
            text + " - ok, but rows were set aside: 'RestPusher.py status' shows them and "
            "how to send them again"
        )
    if code is Exit.INTERRUPTED:
        return text + " - interrupted; the next cycle carries on"
    return text + " - ok"


def cmd_status(config: Config, args: argparse.Namespace) -> Exit:
    configure_logging("WARNING", None)
    engine = open_local(config)
    try:
        local = local_status(engine)
        statuses = [
            remote_status(config, r, engine, probe=not args.offline) for r in config.remotes
        ]
    finally:
        engine.dispose()
    code = Exit.OK if args.offline else status_exit(statuses)
    if args.json:
        doc = {
            **local.as_json(),
            "offline": bool(args.offline),
            "remotes": [s.as_json() for s in statuses],
            "exit": int(code),
            "meaning": _status_meaning(code),
        }
        print(json.dumps(doc, indent=2))
        return code
    print("\n".join(local.lines()))
    if not statuses:
        print("no remotes configured in [locations]")
    for st in statuses:
        print()
        print(format_status(st))
    if code is not Exit.OK:
        print(f"\nexit {int(code)}: {_status_meaning(code)}")
    return code


def _status_meaning(code: Exit) -> str:
    if code is Exit.OK:
        return "every enabled remote is in step"
    if code is Exit.FAILED:
        return "behind: a backlog, or a house differs"
    if code is Exit.SET_ASIDE:
        return "in step, but rows are set aside"
    if code is Exit.USAGE:
        return "no remote is enabled in [locations]"
    return code.meaning


def cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    announce(config, f"upgrading its schema to {head_revision()} (writes the schema)")
    upgrade(config.localurl)
    print(f"local database is at the latest schema revision ({head_revision()})")
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
        return Exit.ALREADY_RUNNING
    holder = lock_holder(config.lockfile)
    if holder:
        print(
            f"RestPusher: already running (pid {holder} holds {config.lockfile}); "
            f"stop it first with {how_to_stop(holder, _stop_command(config))}",
            file=sys.stderr,
        )
        return Exit.ALREADY_RUNNING
    open_local(config).dispose()  # a database that cannot be opened: say so while we can
    Path(config.pidfile).unlink(missing_ok=True)  # stale
    problem = logfile_problem(config.logfile)
    if problem:
        # Said now, while there is still a console: after detaching nobody would see it.
        print(f"RestPusher: warning: {problem}; the detached daemon has no console, so it "
              "will run without a log. Fix the permissions or set [general] logfile.",
              file=sys.stderr)
    print(
        f"starting the push daemon on local database {_database(config)}; "
        f"log: {config.logfile}, pidfile: {config.pidfile}"
    )
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
            return for_failure(type(exc))


def _run_daemon(config: Config) -> int:
    stop = threading.Event()
    install_signal_handlers(stop)
    with PushLock(config.lockfile, _stop_command(config)):
        log.info("push daemon: local database %s, lock %s", _database(config), config.lockfile)
        pusher = Pusher(config, stop)
        try:
            pusher.run_forever()
        finally:
            pusher.close()
    return EXIT_OK


def cmd_stop(config: Config, args: argparse.Namespace) -> int:
    """Stop the daemon: the pid in the pidfile (``start``), else the lock's holder (systemd,
    a shell, ``run``)."""
    pid = _read_pid(config.pidfile)
    source = f"pidfile {config.pidfile}"
    if not pid or not _alive(pid):
        pid, source = lock_holder(config.lockfile), f"lock {config.lockfile}"
    if not pid:
        print(
            f"not running: no live pid in {config.pidfile}, and nothing holds {config.lockfile}"
        )
        return EXIT_OK
    unit = systemd_unit(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        how = f"'sudo {unit.stop_command}'" if unit else f"'sudo kill -TERM {pid}'"
        print(
            f"RestPusher: pid {pid} ({source}) belongs to another user: run this as that "
            f"user, or {how}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except ProcessLookupError:
        print(f"not running: pid {pid} ({source}) has just ended")
        return EXIT_OK
    print(f"stopping the push daemon (pid {pid}, from {source})", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"stopped (pid {pid})")
            if unit:
                print(f"it ran under systemd ({unit.name}): '{unit.start_command}' starts it again")
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
    remote = _pick_remote(config, args.remote)
    announce(config, f"restoring from {remote.name} (writes the restored houses and their rows)")
    make_engine(config.localurl).dispose()  # the folder must exist; the file may not yet
    upgrade(config.localurl)
    engine = open_local(config)
    client = RemoteClient(remote)
    report = DownloadReport()
    bar = Progress("downloading", 0)

    def show(house: str, done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    try:
        downloader = Downloader(engine, client, progress=show)
        houses = downloader.remote_houses(
            address=args.house, deployment=args.deployment, everything=args.all
        )
        downloader.run(houses, report=report)
        bar.finish()
    except KeyboardInterrupt:
        bar.finish(interrupted=True)
        print(
            f"interrupted: {report.describe(remote.name, complete=False)}. What was downloaded "
            f"is kept; the same command resumes where it stopped:\n  "
            f"{_again(config, sys.argv)}",
            file=sys.stderr,
        )
        return Exit.INTERRUPTED
    finally:
        client.close()
        engine.dispose()
    print(report.describe(remote.name))
    return EXIT_OK


def _again(config: Config, argv: list[str]) -> str:
    """The command line that was run, to be run again."""
    import shlex

    args = argv[1:] if argv and argv[0].endswith(("RestPusher.py", "cogent-push")) else argv
    return "RestPusher.py " + " ".join(shlex.quote(a) for a in args)


def cmd_verify(config: Config, args: argparse.Namespace) -> int:
    _logging(config, args)
    remotes = [config.remote(args.remote)] if args.remote else list(config.enabled_remotes)
    names = ", ".join(r.name for r in remotes) or "no remote"
    writes = "; --repair re-sends rows to the remote" if args.repair else ""
    announce(config, f"comparing with {names} (read only{writes})")
    engine = open_local(config)
    all_same = True
    try:
        for remote in remotes:
            client = RemoteClient(remote)
            try:
                verifier = Verifier(engine, client)
                only = _house_ids(engine, args.house)
                bar = Progress(f"{remote.name}: comparing", 0, "houses")
                comparisons = verifier.compare(only, progress=bar)
                bar.finish()
                if args.repair and any(not c.same for c in comparisons):
                    bar = Progress(f"{remote.name}: re-sending", 0)
                    sent = verifier.repair(comparisons, config.pushlimit, progress=bar)
                    bar.finish()
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
    names = ", ".join(r.name for r in remotes) or "no remote"
    announce(config, f"sending set-aside rows to {names} again (writes which stay set aside)")
    codes = [Exit.OK]
    with PushLock(config.lockfile, _stop_command(config)):
        engine = open_local(config)
        try:
            for remote in remotes:
                retrier = Retrier(config, remote, engine)
                try:
                    report = retrier.run(args.reason)
                    print(report.describe())
                    if report.still_aside:
                        codes.append(Exit.SET_ASIDE)
                except CogentError as exc:
                    print(f"{remote.name}: FAILED: {exc}", file=sys.stderr)
                    codes.append(for_failure(type(exc)))
                finally:
                    retrier.close()
        finally:
            engine.dispose()
    return worst(codes)


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
