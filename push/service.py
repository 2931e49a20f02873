"""The push daemon's process commands: ``run`` (foreground, what systemd runs), ``start``
(detached, with a pidfile) and ``stop`` (whoever started it: the pidfile's pid, else the
lock's holder)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from base.config import Config
from base.errors import CogentError
from base.logs import logfile_problem
from push.commands import EXIT_FAILED, EXIT_OK, database, logging_for, open_local, stop_command
from push.daemon import Pusher, install_signal_handlers
from push.lock import PushLock, how_to_stop, lock_holder, systemd_unit
from push.outcome import Exit, for_failure

log = logging.getLogger("push")


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    logging_for(config, args)
    return _run_daemon(config)


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
    try:  # a zombie has finished: only its parent has yet to collect its exit status
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_for_reaping(pid: int, seconds: float = 2.0) -> None:
    """A zombie is gone once its parent (systemd, init, a shell) collects it: a moment."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


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
            f"stop it first with {how_to_stop(holder, stop_command(config))}",
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
        f"starting the push daemon on local database {database(config)}; "
        f"log: {config.logfile}, pidfile: {config.pidfile}"
    )
    context = daemon.DaemonContext(
        working_directory=os.getcwd(),
        umask=0o022,
        pidfile=daemon.pidfile.TimeoutPIDLockFile(config.pidfile, acquire_timeout=5),
        signal_map={},  # our own handlers: the first SIGTERM is a graceful stop
    )
    with context:
        logging_for(config, args, console=False)
        try:
            return _run_daemon(config)
        except CogentError as exc:
            log.error("push daemon cannot run: %s", exc)
            return for_failure(type(exc))


def _run_daemon(config: Config) -> int:
    open_local(config, schema=False).dispose()  # no database file: say so, create nothing
    stop = threading.Event()
    install_signal_handlers(stop)
    with PushLock(config.lockfile, stop_command(config)):
        log.info("push daemon: local database %s, lock %s", database(config), config.lockfile)
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
            _wait_for_reaping(pid)
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


