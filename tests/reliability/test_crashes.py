"""Crashes: the pusher killed with SIGKILL at random instants, the REST server stopped and
killed during a push, the databases' connections cut and MariaDB itself restarted.

Every scenario runs the real daemon (``python RestPusher.py``, not ``once``) while a
gateway logger keeps inserting readings, restarts whatever was killed, lets the daemon
catch up on its own, and ends with the remote equal to the local database row for row:
per-day checksums and natural-key sets (tests/reliability/kit.py).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from base.db import make_engine
from base.simulate import simulate_days
from models import Node, NodeState, Reading
from tests.oracle import assert_replica
from tests.pushkit import seed_cogent_house
from tests.reliability.kit import (
    GatewayLogger,
    Pusher,
    backlog,
    caught_up,
    kill_mysql_connections,
    mariadb_comes_back,
    mariadb_start,
    mariadb_stop,
    mysql_database,
    record,
    row_count,
    wait_for,
)

SQLITE_AND_MYSQL = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


def any_node(url: str) -> tuple[int, int]:
    """(node id, location id) of some located node of the local database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(Node.id, Node.locationId).where(Node.locationId.is_not(None)).limit(1)
            ).one()
        return int(row[0]), int(row[1])
    finally:
        engine.dispose()


def million(url: str, readings: int) -> int:
    """At least ``readings`` simulated readings (ten houses, as many days as it takes)."""
    engine = make_engine(url)
    try:
        total = 0
        days = readings / 10 / 4500 + 1  # ~4700 readings per house and day
        result = simulate_days(engine, days, houses=10, seed=11)
        total = result.readings
        assert total >= readings, f"simulated only {total} readings"
        return total
    finally:
        engine.dispose()


@dataclass
class KillFigures:
    kills: int = 0
    kills_mid_push: int = 0
    restarts: int = 0
    remote_at_last_kill: int = 0


def kill_nine_at_random_instants(pair, *, kills: int, rng: random.Random, within: float,
                                 max_attempts: int, pushlimit: int) -> KillFigures:
    """Start the daemon and SIGKILL it, again and again, until ``kills`` kills landed while
    it was pushing: it had sent rows in that life and more than a batch remained (the
    logger alone never leaves that much behind). Most lives are killed a random 0 to
    ``within`` seconds after their first rows arrive; every third one a random time
    after it starts, wherever it is then (starting, stamping, mapping, pushing)."""
    config = pair.config(pushlimit=pushlimit)
    node, location = any_node(pair.local)
    figures = KillFigures()
    daemon = Pusher(config.path, name="daemon")
    with GatewayLogger(pair.local, node, location, every=0.02, duration=3000) as logger:
        try:
            for attempt in range(max_attempts):
                if figures.kills_mid_push >= kills:
                    break
                before = row_count(pair.remote, Reading) + row_count(pair.remote, NodeState)
                daemon.start()
                if attempt % 3 == 2:
                    time.sleep(rng.uniform(0.2, 2.0))
                else:
                    wait_for(lambda b=before: daemon.alive is False or row_count(
                        pair.remote, Reading) + row_count(pair.remote, NodeState) > b,
                        120, "the daemon's first rows in this life", every=0.02)
                    time.sleep(rng.uniform(0, within))
                if daemon.kill9():
                    figures.kills += 1
                    after = row_count(pair.remote, Reading) + row_count(pair.remote, NodeState)
                    if after > before and backlog(pair.local) > pushlimit:
                        figures.kills_mid_push += 1
                        figures.remote_at_last_kill = after
        finally:
            daemon.ensure_stopped()
        assert figures.kills_mid_push >= kills, (
            f"only {figures.kills_mid_push} of {figures.kills} kills landed mid-push: "
            f"make the dataset larger\n{daemon.output[-3000:]}")
    assert not logger.report.failures, logger.report.failures[:5]
    assert logger.report.inserted > 0
    figures.restarts = daemon.starts
    daemon.start()
    try:
        wait_for(caught_up(pair.local), 1800, "the restarted daemon to catch up")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    return figures


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_daemon_killed_9_at_random_instants_while_a_logger_writes_loses_and_doubles_nothing(
    pair,
):
    seed_cogent_house(pair.local, days=8)
    figures = kill_nine_at_random_instants(
        pair, kills=4, rng=random.Random(8), within=0.4, max_attempts=12, pushlimit=200
    )
    result = assert_replica(pair.local, pair.remote)
    record("kill -9 (suite)", backend="sqlite", **vars(figures), comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", SQLITE_AND_MYSQL)
def test_torture_kill_9_thirty_times_during_a_million_reading_push(pair, backend):
    readings = million(pair.local, 1_000_000)
    figures = kill_nine_at_random_instants(
        pair, kills=30, rng=random.Random(30), within=1.5, max_attempts=120, pushlimit=500
    )
    result = assert_replica(pair.local, pair.remote)
    assert result.readings >= 1_000_000
    record("kill -9 (torture)", backend=backend, readings=readings, **vars(figures),
           comparison=result)


# --------------------------------------------------------------------------- server restarts


def server_bounced_during_a_push(pair, *, bounces: int, rng: random.Random) -> dict:
    config = pair.config(pushlimit=500)
    node, location = any_node(pair.local)
    daemon = Pusher(config.path, name="daemon").start()
    stops = kills = 0
    try:
        wait_for(lambda: row_count(pair.remote, Reading) > 0, 60, "the first batch")
        with GatewayLogger(pair.local, node, location, every=0.02, duration=1800) as logger:
            for i in range(bounces):
                time.sleep(rng.uniform(0.2, 1.0))
                if i % 2:
                    pair.server.kill()  # SIGKILL: the batch in flight dies with it
                    kills += 1
                else:
                    pair.server.stop()  # SIGTERM: uvicorn finishes what it is doing
                    stops += 1
                time.sleep(rng.uniform(0.0, 1.0))  # down for a while
                pair.server.start()
                assert daemon.alive, daemon.output[-3000:]
            remote_at_last_bounce = row_count(pair.remote, Reading)
            pushing = backlog(pair.local) > 0
        assert not logger.report.failures, logger.report.failures[:5]
        wait_for(caught_up(pair.local), 600, "the daemon to catch up without help")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert pushing, "the push ended before the last restart: make the dataset larger"
    failed_cycles = daemon.output.count("cycle failed")
    return {"server_stops": stops, "server_kills": kills, "failed_cycles": failed_cycles,
            "remote_at_last_bounce": remote_at_last_bounce, "daemon_starts": daemon.starts}


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_rest_server_stopped_and_killed_during_a_push_the_daemon_recovers_alone(pair):
    seed_cogent_house(pair.local, days=6)
    figures = server_bounced_during_a_push(pair, bounces=2, rng=random.Random(3))
    assert figures["daemon_starts"] == 1  # nobody restarted the daemon
    result = assert_replica(pair.local, pair.remote)
    record("server restarts (suite)", backend="sqlite", **figures, comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", SQLITE_AND_MYSQL)
def test_torture_rest_server_restarted_twelve_times_during_a_push(pair, backend):
    million(pair.local, 300_000)
    figures = server_bounced_during_a_push(pair, bounces=12, rng=random.Random(12))
    assert figures["daemon_starts"] == 1
    result = assert_replica(pair.local, pair.remote)
    record("server restarts (torture)", backend=backend, **figures, comparison=result)


# --------------------------------------------------------------------------- the databases


@pytest.mark.parametrize("backend", [pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)])
def test_database_connections_cut_mid_push_on_both_sides_lose_nothing(pair):
    """What a MariaDB restart does to its clients, without restarting the shared server:
    every connection of the local and the remote database is killed, several times."""
    seed_cogent_house(pair.local, days=10)
    config = pair.config(pushlimit=200)
    rng = random.Random(5)
    daemon = Pusher(config.path, name="daemon").start()
    cuts = connections = 0
    try:
        wait_for(lambda: row_count(pair.remote, Reading) > 0, 60, "the first batch")
        for _ in range(3):
            time.sleep(rng.uniform(0.1, 0.5))
            connections += kill_mysql_connections(mysql_database(pair.local))
            connections += kill_mysql_connections(mysql_database(pair.remote))
            cuts += 1
        assert backlog(pair.local) > 0, "the push ended before the cuts: make it larger"
        wait_for(caught_up(pair.local), 300, "the daemon to catch up without help")
        assert daemon.alive
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert connections > 0
    result = assert_replica(pair.local, pair.remote)
    record("connections cut (suite)", cuts=cuts, connections_killed=connections,
           comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", [pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)])
def test_torture_mariadb_restarted_three_times_mid_push(pair):
    """Local and remote both on MariaDB; the server itself is shut down and started again
    while the daemon pushes and the logger writes. Always left running afterwards."""
    million(pair.local, 300_000)
    config = pair.config(pushlimit=1000)
    node, location = any_node(pair.local)
    rng = random.Random(33)
    restarts = 0
    logger_failures = 0
    daemon = Pusher(config.path, name="daemon").start()
    with mariadb_comes_back():
        try:
            wait_for(lambda: row_count(pair.remote, Reading) > 0, 120, "the first batch")
            for _ in range(3):
                with GatewayLogger(pair.local, node, location, every=0.05, duration=600) as log:
                    time.sleep(rng.uniform(2.0, 6.0))
                    assert backlog(pair.local) > 0, "the push ended: make it larger"
                    mariadb_stop()
                    time.sleep(rng.uniform(1.0, 4.0))
                    mariadb_start()
                    restarts += 1
                    time.sleep(1.0)
                logger_failures += len(log.report.failures)  # the logger's database went away
                assert daemon.alive, daemon.output[-3000:]
            wait_for(caught_up(pair.local), 1200, "the daemon to catch up without help")
        finally:
            code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    result = assert_replica(pair.local, pair.remote)
    record("MariaDB restarts (torture)", restarts=restarts, daemon_starts=daemon.starts,
           logger_failures_while_down=logger_failures,
           failed_cycles=daemon.output.count("cycle failed"), comparison=result)
