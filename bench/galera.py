"""``python -m bench.galera``: a fleet push into one MariaDB against the same push into a
three-node Galera cluster on this machine, in one run (the figures of docs/SCALING.md).

The same fleet (``bench.fleet``: simulated base stations pushing at once, in a few
processes) pushes into a fresh database on the machine's MariaDB (127.0.0.1:3306), then
into a fresh database on the cluster of etc/galera-cluster.sh, through a server given
the three nodes; rounds alternate so that neither side always runs on a warmer machine.
The cluster is started if it is not running, and destroyed afterwards only if this run
started it. Results: var/bench/galera.json and a table on standard output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymysql
from sqlalchemy import make_url

from bench.dataset import Dataset, fleet_datasets
from bench.procstats import cpu_seconds
from bench.remote import REPO, MariaDB, cogent_server, create_keys
from bench.scenarios import Options, fleet_run, write_config

SCRIPT = REPO / "etc" / "galera-cluster.sh"
PROVIDER = Path(os.environ.get("GALERA_PROVIDER", "/usr/lib/galera/libgalera_smm.so"))
MARIADBD = Path("/usr/sbin/mariadbd")


def galera_missing() -> str | None:
    """Why a Galera cluster cannot be started here, or None."""
    if not PROVIDER.exists():
        return f"no Galera provider at {PROVIDER} (apt-get install galera-4)"
    if not MARIADBD.exists() or shutil.which("mariadb-install-db") is None:
        return "mariadbd / mariadb-install-db not found (apt-get install mariadb-server)"
    if os.geteuid() != 0:
        return "etc/galera-cluster.sh runs the nodes as the mysql user: it needs root"
    return None


class GaleraCluster:
    """etc/galera-cluster.sh with its data in ``directory``; SQL ports first_port..+2."""

    def __init__(self, directory: Path, first_port: int = 3311, gcomm_port: int = 4567,
                 nodes: int = 3):
        self.directory = directory
        self.first_port = first_port
        self.nodes = nodes
        self.env = {**os.environ, "GALERA_DIR": str(directory),
                    "GALERA_PORT": str(first_port), "GALERA_GCOMM_PORT": str(gcomm_port)}

    def run(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"galera-cluster.sh {' '.join(args)} failed "
                               f"({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def up(self) -> str:
        return self.run("up")

    def destroy(self) -> str:
        return self.run("destroy")

    def kill(self, node: int) -> str:
        return self.run("kill", str(node))

    def start(self, node: int) -> str:
        return self.run("start", str(node))

    def status(self) -> str:
        return self.run("status", timeout=60)

    def port(self, node: int) -> int:
        return self.first_port + node - 1

    def url(self, node: int, database: str = "") -> str:
        return f"mysql://root@127.0.0.1:{self.port(node)}/{database}"

    def urls(self, database: str, order: Sequence[int] | None = None) -> list[str]:
        return [self.url(n, database) for n in (order or range(1, self.nodes + 1))]

    def answers(self, node: int) -> bool:
        try:
            pymysql.connect(host="127.0.0.1", port=self.port(node), user="root",
                            connect_timeout=2).close()
            return True
        except pymysql.MySQLError:
            return False

    def create_database(self, name: str) -> None:
        """A new empty database (``name`` dropped first), made through node 1."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port(1), user="root")
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()


def database_pid(url: str) -> int:
    """The process id of the MariaDB server at ``url`` (from its pid file, an absolute path
    on Debian's server and on the cluster's nodes)."""
    u = make_url(url)
    conn = pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306,
                           user=u.username or "root", password=u.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@pid_file")
            path = Path(str(cur.fetchone()[0]))
    finally:
        conn.close()
    return int(path.read_text().split()[0])


def stored_bytes_per_row(db: MariaDB, url: str) -> dict[str, float]:
    """InnoDB's data + index bytes per row of the two big tables (after ANALYZE TABLE)."""
    out = {}
    with db.connect(url) as conn, conn.cursor() as cur:
        for table in ("Reading", "NodeState"):
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
            cur.execute("SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
            size = int(cur.fetchone()[0])
            cur.execute(f"SELECT count(*) FROM `{table}`")
            rows = int(cur.fetchone()[0])
            out[table] = size / rows if rows else 0.0
    return out


def _push(opts: Options, label: str, db: MariaDB, nodes: list[str],
          stations: list[Dataset]) -> dict[str, Any]:
    """The fleet into the fresh, migrated database at ``nodes`` (dropped afterwards)."""
    keys = create_keys(nodes[0], [f"station-{i:03d}" for i in range(len(stations))])
    try:
        with cogent_server(nodes[0], failover=nodes[1:]) as server:
            configs = []
            for i, (station, key) in enumerate(zip(stations, keys, strict=True)):
                local = station.copy(opts.workdir / label / f"station{i:03d}" / "base.db")
                configs.append(write_config(local.path.parent / "synchronise.conf", local.url,
                                            server.url, key, opts.pushlimit))
            db_pids = [database_pid(u) for u in nodes]
            db_before = [cpu_seconds(p) for p in db_pids]
            server_before = sum(cpu_seconds(p) for p in server.pids)
            run = fleet_run(opts, configs)
            # What the database side spent, node by node (the first takes the writes), and the
            # server: on one machine they share the cores, so rows per CPU-second say more
            # about a node's capacity than rows per second do.
            run["db_cpu_s"] = [cpu_seconds(p) - b for p, b in zip(db_pids, db_before,
                                                                  strict=True)]
            run["server_cpu_s"] = sum(cpu_seconds(p) for p in server.pids) - server_before
        run["delivered"] = (db.count(nodes[0], "Reading"), db.count(nodes[0], "NodeState"))
        run["bytes_per_row"] = stored_bytes_per_row(db, nodes[0])
    finally:
        db.drop(nodes[0])
    run["expected"] = (sum(s.readings for s in stations), sum(s.nodestates for s in stations))
    run["all_delivered"] = run["delivered"] == run["expected"] and not run["failed"]
    rows = run["readings"] + run["nodestates"]
    run["rows_per_s"] = rows / run["seconds"]
    run["rows_per_writer_cpu_s"] = rows / run["db_cpu_s"][0]
    run["rows_per_cluster_cpu_s"] = rows / sum(run["db_cpu_s"])
    return run


def measure(opts: Options, cluster: GaleraCluster, rounds: int) -> dict[str, Any]:
    stations = fleet_datasets(opts.stations[0], opts.station_readings, opts.cache)
    targets = {"mariadb": MariaDB(opts.mysql, prefix="cgbench_one"),
               "galera": MariaDB(cluster.url(1, "mysql"), prefix="cgbench_galera")}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in targets}
    for r in range(rounds):
        for side, db in targets.items():
            print(f"round {r + 1}/{rounds}: {side}…", flush=True)
            url = db.create(f"r{r}")
            nodes = [url] if side == "mariadb" else cluster.urls(str(make_url(url).database))
            runs[side].append(_push(opts, f"galera-bench/{side}{r}", db, nodes, stations))
    return summarise(runs, opts)


def summarise(runs: dict[str, list[dict[str, Any]]], opts: Options) -> dict[str, Any]:
    def median(side: str, figure: str) -> float:
        return float(statistics.median(r[figure] for r in runs[side]))

    one, three = median("mariadb", "rows_per_s"), median("galera", "rows_per_s")
    out: dict[str, Any] = {
        "stations": opts.stations[0],
        "station_readings": opts.station_readings,
        "pushlimit": opts.pushlimit,
        "fleet_procs": opts.fleet_procs,
        "cpus": os.cpu_count(),
        "runs": runs,
        "mariadb_rows_per_s": one,
        "galera_rows_per_s": three,
        "galera_over_mariadb": three / one,
        "mariadb_rows_per_cpu_s": median("mariadb", "rows_per_writer_cpu_s"),
        "galera_rows_per_writer_cpu_s": median("galera", "rows_per_writer_cpu_s"),
        "galera_rows_per_cluster_cpu_s": median("galera", "rows_per_cluster_cpu_s"),
    }
    out["all_delivered"] = all(r["all_delivered"] for side in runs.values() for r in side)
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"fleet of {result['stations']} stations x {result['station_readings']:,} readings "
             f"(pushlimit {result['pushlimit']}, {result['cpus']} CPUs)",
             f"{'target':8} {'round':>5} {'rows/s':>8} {'seconds':>7} {'p50 s':>6} {'p99 s':>6} "
             f"{'db CPU s (per node)':>22} {'server CPU s':>12} {'rows/writer CPU s':>17} "
             "delivered"]
    for side, runs in result["runs"].items():
        for i, r in enumerate(runs, 1):
            cpu = "+".join(f"{c:.1f}" for c in r["db_cpu_s"])
            lines.append(f"{side:8} {i:>5} {r['rows_per_s']:>8,.0f} {r['seconds']:>7.1f} "
                         f"{r['p50']:>6.2f} {r['p99']:>6.2f} {cpu:>22} "
                         f"{r['server_cpu_s']:>12.1f} {r['rows_per_writer_cpu_s']:>17,.0f} "
                         f"{'all' if r['all_delivered'] else 'NOT ALL'}")
    lines.append(
        f"median rows/s: MariaDB {result['mariadb_rows_per_s']:,.0f}, Galera "
        f"{result['galera_rows_per_s']:,.0f} (ratio {result['galera_over_mariadb']:.2f}); "
        f"rows per CPU-second of the node taking the writes: MariaDB "
        f"{result['mariadb_rows_per_cpu_s']:,.0f}, Galera "
        f"{result['galera_rows_per_writer_cpu_s']:,.0f} (of the whole cluster "
        f"{result['galera_rows_per_cluster_cpu_s']:,.0f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.galera", description=__doc__.split("\n")[0])
    p.add_argument("--stations", type=int, default=20, help="fleet size (default 20)")
    p.add_argument("--station-readings", type=int, default=5000,
                   help="readings per station (default 5000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of each (default 2)")
    p.add_argument("--fleet-procs", type=int, default=4, help="processes the fleet runs in")
    p.add_argument("--pushlimit", type=int, default=5000, help="rows per batch (default 5000)")
    p.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/mysql",
                   help="the single MariaDB (admin URL)")
    p.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "galera.json")
    args = p.parse_args(argv)
    why = galera_missing()
    if why:
        raise SystemExit(f"bench.galera: {why}")
    opts = Options(stations=(args.stations,), station_readings=args.station_readings,
                   fleet_procs=args.fleet_procs, pushlimit=args.pushlimit, mysql=args.mysql,
                   workdir=REPO / "var" / "bench")
    cluster = GaleraCluster(Path(os.environ.get("GALERA_DIR", "/tmp/cogent-galera")))
    started = not cluster.answers(1)
    if started:
        print("starting the Galera cluster…", flush=True)
        cluster.up()
    try:
        result = measure(opts, cluster, args.rounds)
    finally:
        if started:
            cluster.destroy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
