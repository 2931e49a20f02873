"""``python RestPusher.py``: the push daemon's command line.

A thin layer: parse arguments, load the configuration, call the library,
and turn :class:`base.errors.CogentError` into a one-line message and an
exit code (:mod:`push.outcome`; the table is in docs/OPERATIONS.md). Every
command that works on the local database names it first (password hidden),
and says whether it writes to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from base.config import Config, load_config
from base.errors import CogentError
from base.logs import configure_logging
from base.memory import limit_malloc_arenas
from push.commands import (
    cmd_download,
    cmd_login,
    cmd_migrate,
    cmd_once,
    cmd_retry,
    cmd_status,
    cmd_verify,
    first_line,
)
from push.outcome import Exit, for_failure
from push.service import cmd_run, cmd_start, cmd_stop


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
    login = sub.add_parser(
        "login",
        help="log in with this station's account and store the key it receives",
        description="Ask the remote for a key with this base station's account name and "
        "password, and write the key into this configuration file ([REMOTE] apikey; the file "
        "becomes readable by its owner only). The password is never stored.",
    )
    login.add_argument("--remote", help="which remote (default: the one enabled)")
    login.add_argument("--user", help="the account name (asked when not given)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (for scripts)")
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
        print(f"RestPusher: local database: {first_line(exc)}", file=sys.stderr)
        return int(Exit.LOCAL_DATABASE)
    except KeyboardInterrupt:
        print("RestPusher: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "download": cmd_download,
    "verify": cmd_verify,
    "retry": cmd_retry,
    "run": cmd_run,
    "once": cmd_once,
    "status": cmd_status,
    "migrate": cmd_migrate,
    "login": cmd_login,
    "start": cmd_start,
    "stop": cmd_stop,
}
