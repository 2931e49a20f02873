"""``cogent-base``: put readings into the base station's local database.

``simulate`` writes realistic readings and node states (a backfill of N days,
or in real time); ``listen`` records readings arriving as text lines on a
loopback TCP port or on stdin. See docs/INGEST.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from base.config import load_config
from base.db import make_engine, redact
from base.errors import CogentError, ConfigError
from base.listen import (
    FORMATS,
    UNKNOWN_NODES,
)
from base.logs import configure_logging
from base.migrate import upgrade
from base.simulate import DEFAULT_SENSORS, SUPPORTED, Plan, Progress, backfill, run_realtime

log = logging.getLogger("cogent.base")
PROG = "cogent-base"


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file whose [general] localurl is the database "
        "(default $COGENT_CONFIG or ./synchronise.conf)",
    )
    p.add_argument(
        "--db", metavar="URL", help="database URL, instead of the configuration's localurl"
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        help="how much to log on stderr (default INFO)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Put readings into the base station's local database: simulate them, "
        "or record them as they arrive as text lines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sim = sub.add_parser(
        "simulate",
        help="write realistic simulated readings and node states",
        description="Create simulated houses, rooms and nodes, then write their readings and "
        "node states: a backfill of --days, or in real time with --realtime (or both: backfill, "
        "then carry on). The database is first migrated to the latest schema. Re-running over "
        "the same range changes nothing.",
    )
    _db_options(sim)
    sim.add_argument(
        "--houses", type=int, metavar="N", default=1, help="houses to simulate (default 1)"
    )
    sim.add_argument(
        "--rooms", type=int, metavar="N", default=4, help="rooms per house (default 4)"
    )
    sim.add_argument(
        "--nodes-per-room",
        type=int,
        metavar="N",
        default=1,
        help="sensor nodes per room (default 1)",
    )
    sim.add_argument(
        "--sensors",
        metavar="LIST",
        default=",".join(DEFAULT_SENSORS),
        help=f"sensor types on each room node, codes or ids, comma-separated "
        f"(default {','.join(DEFAULT_SENSORS)}; simulated: {', '.join(SUPPORTED)})",
    )
    sim.add_argument(
        "--no-power-meter",
        action="store_true",
        help="leave out the electricity monitor each house otherwise gets",
    )
    sim.add_argument(
        "--days",
        metavar="N",
        type=float,
        default=None,
        help="backfill this many days (default 7, or none with --realtime)",
    )
    sim.add_argument(
        "--start",
        metavar="ISO",
        type=_iso_time,
        help="first day of the backfill, ISO-8601 UTC (default: the --days ending now)",
    )
    sim.add_argument(
        "--realtime",
        action="store_true",
        help="write each sample when its time comes, until stopped (Ctrl-C, SIGTERM)",
    )
    sim.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="with --realtime: stop after this many seconds",
    )
    sim.add_argument(
        "--seed", type=int, metavar="N", default=1, help="random seed; same seed, same data"
    )
    sim.add_argument(
        "--period",
        type=int,
        metavar="SECONDS",
        default=300,
        help="seconds between samples (default 300)",
    )
    sim.add_argument(
        "--node-base",
        metavar="N",
        type=int,
        default=1000,
        help="node ids are NODE_BASE + 100 * house + slot (default 1000: 1101, 1102, ...)",
    )
    sim.add_argument(
        "--deployment",
        metavar="NAME",
        default="Simulation",
        help="deployment name (default Simulation)",
    )
    sim.add_argument(
        "--missing",
        metavar="FRACTION",
        type=float,
        default=0.01,
        help="fraction of packets lost on the radio (default 0.01)",
    )
    sim.add_argument(
        "--quiet",
        metavar="FRACTION",
        type=float,
        default=0.1,
        help="chance per node and day of going quiet for 1-8 hours (default 0.1)",
    )
    sim.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        default=5000,
        help="rows per transaction (default 5000)",
    )
    sim.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not upgrade the database schema first",
    )

    lis = sub.add_parser(
        "listen",
        help="record readings arriving as text lines (TCP or stdin)",
        description="Record readings sent as text lines to a TCP port on loopback, or on stdin. "
        "Lines: 'NODE TYPE VALUE [TIME]', or 'NODE V1 V2 ...' for nodes mapped in the [listen] "
        "section (node.<id> = T,RH,BAT). Bad lines are logged and answered 'ERR <line> "
        "<reason>'; after each commit the listener answers 'OK <n>': lines up to n are dealt "
        "with. Stops on EOF (stdin), SIGTERM or Ctrl-C, committing what it has.",
    )
    _db_options(lis)
    lis.add_argument(
        "--stdin", action="store_true", help="read lines from stdin instead of a TCP port"
    )
    lis.add_argument(
        "--ack",
        action="store_true",
        help="with --stdin: write the OK/ERR answers to stdout",
    )
    lis.add_argument("--host", help="address to listen on (default [listen] host or 127.0.0.1)")
    lis.add_argument(
        "--port", type=int, help="TCP port (default [listen] port or 6544; 0 picks a free one)"
    )
    lis.add_argument(
        "--format",
        choices=FORMATS,
        help="auto (default): mapped nodes are emonhub frames, others native lines; "
        "native or emonhub force one form",
    )
    lis.add_argument(
        "--unknown-nodes",
        choices=UNKNOWN_NODES,
        help="a node id the database lacks: create it with no location (default) or reject",
    )
    lis.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="NODE=TYPES",
        help="map an emonhub node's values, e.g. 10=T,RH,BAT or 11=POW,-,T*0.01 (repeatable; "
        "adds to the [listen] node.<id> entries)",
    )
    lis.add_argument(
        "--batch-lines", type=int, metavar="N", help="commit after this many lines (default 100)"
    )
    lis.add_argument(
        "--batch-seconds",
        type=float,
        metavar="SECONDS",
        help="commit when the oldest uncommitted line is this old (default 1)",
    )
    return parser


def _iso_time(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO-8601 time") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def _database_url(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    return load_config(args.config).localurl


class _ProgressPrinter:
    """A one-line progress meter on a terminal; a log line every 10 % otherwise."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.next_log = 0.1

    def __call__(self, p: Progress) -> None:
        rate = (p.readings + p.nodestates) / p.elapsed if p.elapsed > 0 else 0.0
        when = p.until.strftime("%Y-%m-%d %H:%M")
        if p.fraction is None:
            text = f"{when}  {p.readings:,} readings, {p.nodestates:,} node states"
        else:
            text = (
                f"{p.fraction:4.0%}  up to {when}  {p.readings:,} readings, "
                f"{p.nodestates:,} node states, {rate:,.0f} rows/s"
            )
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            self.stream.flush()
        elif p.fraction is not None and p.fraction >= self.next_log:
            log.info("%s", text)
            while self.next_log <= p.fraction:
                self.next_log += 0.1

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _install_stop(stop: threading.Event) -> Callable[[], None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(_sig: int, _frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def cmd_simulate(args: argparse.Namespace) -> int:
    url = _database_url(args)
    days = args.days if args.days is not None else (None if args.realtime else 7.0)
    if args.duration is not None and not args.realtime:
        raise ConfigError("--duration goes with --realtime")
    if args.start is not None and not days:
        raise ConfigError("--start is the start of a backfill: give --days too")
    plan = Plan(
        houses=args.houses,
        rooms=args.rooms,
        nodes_per_room=args.nodes_per_room,
        sensors=tuple(s.strip() for s in args.sensors.split(",") if s.strip()),
        power_meter=not args.no_power_meter,
        start=args.start,
        days=days or 1.0,
        period=args.period,
        seed=args.seed,
        deployment=args.deployment,
        node_base=args.node_base,
        missing=args.missing,
        quiet_per_day=args.quiet,
    )
    plan.validate()
    log.info("database %s: simulating %d house(s)", redact(url), plan.houses)
    if not args.no_migrate:
        upgrade(url)
    engine = make_engine(url)
    try:
        resume_at = None
        if days:
            printer = _ProgressPrinter()
            try:
                result = backfill(engine, plan, progress=printer, batch_size=args.batch_size)
            finally:
                printer.done()
            print(
                f"wrote {result.readings:,} readings and {result.nodestates:,} node states "
                f"({result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC, "
                f"{len(result.nodes)} nodes) into {redact(url)} in {result.elapsed:.1f} s"
            )
            resume_at = result.end
        if args.realtime:
            stop = threading.Event()
            restore = _install_stop(stop)
            log.info("simulating in real time into %s; Ctrl-C to stop", redact(url))
            meter = _ProgressPrinter()
            try:
                live = run_realtime(
                    engine, plan, stop=stop, duration=args.duration, since=resume_at, progress=meter
                )
            finally:
                restore()
                meter.done()
            print(
                f"wrote {live.readings:,} readings and {live.nodestates:,} node states in real "
                f"time ({live.elapsed:.0f} s)"
            )
    finally:
        engine.dispose()
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from base.listen.command import run_listen

    return run_listen(args, _database_url(args))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if args.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if args.command == "simulate":
            return cmd_simulate(args)
        return cmd_listen(args)
    except CogentError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        print(f"{PROG}: database error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
