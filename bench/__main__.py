"""``python -m bench [--quick] [--readings N] …``: run the benchmarks, print the table, write
docs/BENCHMARKS.md (quick runs write var/bench/BENCHMARKS-quick.md unless --out says otherwise).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.remote import REPO, MariaDB
from bench.report import render, table
from bench.scenarios import Options, Results, catchup, encodings, fleet, memory

SCENARIOS = ("catchup", "memory", "fleet", "encodings", "adoption", "catchup-pg", "catchup-galera",
             "writepaths")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse_args(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="cogent-sync benchmarks (issue 7): catch-up vs direct copy, LOAD DATA and "
        "the Cogent-house protocol; bytes on the wire; pusher memory; the idle cycle; a fleet "
        "of base stations. Needs MariaDB (LOAD DATA LOCAL INFILE allowed).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a minute or two")
    p.add_argument(
        "--readings", type=int, help="catch-up backlog (default 1,000,000; quick 20,000)"
    )
    p.add_argument(
        "--memory-readings",
        type=_ints,
        help="backlogs for the memory figure, comma-separated (default N,5N)",
    )
    p.add_argument(
        "--baseline-readings",
        type=int,
        help="readings the Cogent-house baseline pushes (default min(N, 200,000): it is slow)",
    )
    p.add_argument(
        "--adoption-readings",
        type=int,
        help="readings in the Cogent-house database adopted (default N)",
    )
    p.add_argument(
        "--stations", type=_ints,
        help="fleet sizes, comma-separated (default 100,1000; quick 10,30)",
    )
    p.add_argument(
        "--fleet-readings",
        type=int,
        help="readings of a whole fleet, shared among its stations "
        "(default 1,000,000; quick 3,000)",
    )
    p.add_argument(
        "--station-readings", type=int,
        help="readings per fleet station (overrides --fleet-readings)",
    )
    p.add_argument("--fleet-workers", type=_ints, default=(1, 2), help="server workers (1,2)")
    p.add_argument("--fleet-procs", type=int, default=4, help="processes the fleet runs in")
    p.add_argument("--pushlimit", type=int, default=5000, help="rows per batch (default 5000)")
    p.add_argument(
        "--mysql", default="mysql://root@127.0.0.1:3306/mysql", help="MariaDB server (admin URL)"
    )
    p.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server for catchup-pg (admin URL)",
    )
    p.add_argument(
        "--galera",
        default="mysql://root@127.0.0.1:3311/mysql",
        help="a Galera node for catchup-galera; started with etc/galera-cluster.sh when down",
    )
    p.add_argument("--workdir", type=Path, default=REPO / "var" / "bench")
    p.add_argument("--out", type=Path, help="report path (default docs/BENCHMARKS.md)")
    p.add_argument("--no-report", action="store_true", help="print the table only")
    p.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"scenarios to run ({','.join(SCENARIOS)})"
    )
    p.add_argument(
        "--db-prefix", default="cgbench", help="names of the databases it makes (cgbench_*)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases it made")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    n = args.readings or (20_000 if args.quick else 1_000_000)
    opts = Options(
        readings=n,
        memory_readings=args.memory_readings or (n, 5 * n),
        baseline_readings=args.baseline_readings or min(n, 200_000),
        stations=args.stations or ((10, 30) if args.quick else (100, 1000)),
        station_readings=args.station_readings or 0,
        fleet_readings=args.fleet_readings or (3_000 if args.quick else 1_000_000),
        fleet_workers=args.fleet_workers,
        fleet_procs=args.fleet_procs,
        pushlimit=args.pushlimit,
        mysql=args.mysql,
        workdir=args.workdir,
        keep=args.keep,
        quiet=args.quiet,
    )
    if args.out is None:
        args.out = (
            REPO / "var" / "bench" / "BENCHMARKS-quick.md"
            if args.quick
            else REPO / "docs" / "BENCHMARKS.md"
        )
    return opts, args


def main(argv: list[str] | None = None) -> Results:
    opts, args = parse_args(sys.argv[1:] if argv is None else argv)
    only = {s.strip() for s in args.only.split(",")}
    unknown = only - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(sorted(unknown))}; use {SCENARIOS}")
    db = MariaDB(opts.mysql, prefix=args.db_prefix)
    res = Results()
    started = time.monotonic()
    if "catchup" in only:
        catchup(opts, db, res)
    if "encodings" in only:
        encodings(opts, res)
    if "memory" in only:
        memory(opts, db, res)
    if "fleet" in only:
        fleet(opts, db, res)
    if "catchup-pg" in only:
        from bench.postgres import PostgreSQL, catchup_postgresql

        catchup_postgresql(opts, PostgreSQL(args.postgres, prefix=args.db_prefix), res)
    if "writepaths" in only:
        from bench.postgres import PostgreSQL
        from bench.writepaths import writepaths

        writepaths(opts, {"MariaDB": db, "PostgreSQL": PostgreSQL(args.postgres,
                                                                  prefix=args.db_prefix)}, res)
    if "catchup-galera" in only:
        from bench.galera_catchup import catchup_galera

        catchup_galera(opts, args.galera, args.db_prefix, res)
    if "adoption" in only:
        from bench.adoption import adoption

        adoption(opts, db, res, args.adoption_readings or opts.readings)
    res.figures["bench_seconds"] = time.monotonic() - started
    print(table(res, opts))
    if not args.no_report:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render(res, opts, db, quick=args.quick, argv=argv or sys.argv[1:]))
        if not opts.quiet:
            print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
