"""The commands of ``RestPusher.py`` that work on the local database and the remotes:
once, status, migrate, download, verify, retry (the daemon's own are in push.service).

Each names the local database on its first line (password hidden) and says whether it
writes to it; each returns an exit code of :mod:`push.outcome`.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import sys
import threading
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from base.config import Config, RemoteConfig
from base.db import make_engine, redact
from base.errors import CogentError, ConfigError, DatabaseUnavailable, SchemaMismatch
from base.logs import configure_logging, quiet_console
from base.migrate import current_revision, head_revision, upgrade
from models import House
from push.client import RemoteClient
from push.cycle import RemoteReport, RemoteSync, StreamReport
from push.daemon import Pusher, install_signal_handlers
from push.download import Downloader, DownloadReport
from push.keyfile import write_key
from push.ledger import LocalStore
from push.lock import PushLock
from push.outcome import Exit, for_failure, worst
from push.progress import Progress
from push.status import backlog, format_status, local_status, remote_status, status_exit
from push.verify import Verifier

log = logging.getLogger("push")

EXIT_OK, EXIT_FAILED, EXIT_USER = Exit.OK, Exit.FAILED, Exit.USAGE
# A backlog at least this many batches long is a catch-up: it gets a progress display.
CATCH_UP_BATCHES = 2


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def database(config: Config) -> str:
    return redact(config.localurl)


def announce(config: Config, doing: str) -> None:
    """The first line of a command that works on the local database: which one, and what."""
    print(f"local database {database(config)}: {doing}", flush=True)


def open_local(config: Config, must_exist: bool = True, schema: bool = True) -> Engine:
    """The local database's engine, checked to open now (a failure is one line, exit 7) and,
    with ``schema``, to be at the schema this code needs (else exit 6)."""
    engine = make_engine(config.localurl, must_exist=must_exist)
    try:
        revision = current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnavailable(
            f"local database {database(config)} cannot be used: {first_line(exc)}"
        ) from exc
    if schema and revision != head_revision():
        engine.dispose()
        conf = f" -c {config.path}" if config.path else ""
        raise SchemaMismatch(
            f"local database {database(config)} is at schema revision {revision or '(none)'}, "
            f"this cogent-sync needs {head_revision()}: run 'RestPusher.py{conf} migrate' "
            f"(it upgrades the schema, keeping every row)"
        )
    return engine


def stop_command(config: Config) -> str:
    return f"RestPusher.py -c {config.path} stop" if config.path else "RestPusher.py stop"


def logging_for(config: Config, args: argparse.Namespace, console: bool = True) -> None:
    configure_logging("DEBUG" if args.verbose else config.loglevel, config.logfile, console)


def cmd_once(config: Config, args: argparse.Namespace) -> Exit:
    logging_for(config, args)
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
    with PushLock(config.lockfile, stop_command(config)):
        pusher = Pusher(config, stop)
        progress = None
        if todo >= CATCH_UP_BATCHES * config.pushlimit:
            progress = Progress("pushing", todo)
            _watch_batches(pusher, progress)
        try:
            with quiet_console("push.cycle") if progress else contextlib.nullcontext():
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
    statuses = []
    try:
        local = local_status(engine)
        if not args.json:
            print("\n".join(local.lines()), flush=True)
            if not config.remotes:
                print("no remotes configured in [locations]")
        for remote in config.remotes:
            st = remote_status(config, remote, engine, probe=not args.offline)
            statuses.append(st)
            if not args.json:
                print("\n" + format_status(st), flush=True)
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
    elif code is not Exit.OK:
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
    # Adopting a Cogent-house database says what it copied and what it kept aside.
    adoption = logging.getLogger("alembic.adopt")
    shown = logging.StreamHandler(sys.stdout)
    shown.setFormatter(logging.Formatter("%(message)s"))
    adoption.addHandler(shown)
    adoption.setLevel(logging.INFO)
    adoption.propagate = False
    try:
        upgrade(config.localurl)
    finally:
        adoption.removeHandler(shown)
        adoption.propagate = True
    print(f"local database is at the latest schema revision ({head_revision()})")
    return EXIT_OK


def cmd_login(config: Config, args: argparse.Namespace) -> int:
    """Log in with a base station's account; write the key it receives into the config."""
    remote = _pick_remote(config, args.remote)
    if config.path is None:
        raise ConfigError("login writes the key into synchronise.conf: pass -c FILE")
    name = args.user or input(f"account name on {remote.name}: ").strip()
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass(f"password for {name!r} on {remote.name}: "))
    client = RemoteClient(remote)
    try:
        site, key = client.login(name, password)
    finally:
        client.close()
        del password
    write_key(Path(config.path), remote.name, key)
    print(f"logged in to {remote.name} as {name!r}: a new key for site {site!r} is in "
          f"{config.path} ([{remote.name}] apikey; the file is now readable by its owner only). "
          f"The password was not stored.")
    return EXIT_OK


def _pick_remote(config: Config, name: str | None) -> RemoteConfig:
    if name:
        return config.remote(name)
    enabled = config.enabled_remotes
    if len(enabled) != 1:
        names = ", ".join(r.name for r in enabled) or "none"
        raise ConfigError(f"say which remote with --remote NAME (enabled: {names})")
    return enabled[0]


def cmd_download(config: Config, args: argparse.Namespace) -> int:
    logging_for(config, args)
    remote = _pick_remote(config, args.remote)
    announce(config, f"restoring from {remote.name} (writes the restored houses and their rows)")
    make_engine(config.localurl).dispose()  # the folder must exist; the file may not yet
    logging.getLogger("alembic").setLevel(logging.WARNING)
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
    logging_for(config, args)
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
                    sync = RemoteSync(config, remote, engine, client=client)
                    sent, aside = verifier.repair(comparisons, sync, config.pushlimit, bar)
                    bar.finish()
                    also = f" ({aside} set aside: see 'RestPusher.py status')" if aside else ""
                    print(f"{remote.name}: the remote took {sent} re-sent rows{also}; "
                          f"verifying again")
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

    logging_for(config, args)
    remotes = [config.remote(args.remote)] if args.remote else list(config.enabled_remotes)
    names = ", ".join(r.name for r in remotes) or "no remote"
    announce(config, f"sending set-aside rows to {names} again (writes which stay set aside)")
    codes = [Exit.OK]
    with PushLock(config.lockfile, stop_command(config)):
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


