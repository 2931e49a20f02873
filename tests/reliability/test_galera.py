"""A Galera cluster as the central database (issue 17 item 4).

A three-node MariaDB Galera cluster of etc/galera-cluster.sh, on loopback ports of its own
(SQL 3321..3323, group communication from 4667) and a data directory of its own, brought
up once for this module and destroyed afterwards. The servers are given the node list
(``--db`` repeated): they use the first node that works and move on when it fails.

* Two nodes write the same row at once: the loser's COMMIT fails with 1213 and the
  server's write transaction runs again.
* A node cut off from the cluster (non-primary, 1047) sends new connections elsewhere.
* A fleet pushes through two servers, each writing through a different node, while a
  gateway logger writes on every station; the node one server uses is killed and
  started again. Nothing is lost or doubled, every station catches up, and the node
  that was killed holds every row after it rejoins.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from base.db import make_engine
from base.failover import make_cluster_engine
from base.migrate import upgrade
from bench.dataset import fleet_datasets
from bench.galera import GaleraCluster, galera_missing
from models import NodeState, Reading, Site
from models.base import table_of
from models.sql import utcnow
from rest.txn import run_write
from tests.live_server import LiveServer, create_key, start_server
from tests.oracle import Comparison, assert_same
from tests.pushkit import write_config
from tests.reliability.kit import (
    REPO,
    GatewayLogger,
    Pusher,
    backlog,
    record,
    row_count,
    wait_for,
)
from tests.reliability.test_crashes import any_node

pytestmark = [pytest.mark.torture, pytest.mark.slow]
FIRST_PORT, GCOMM_PORT = 3321, 4667


@pytest.fixture(scope="module")
def galera() -> Iterator[GaleraCluster]:
    why = galera_missing()
    if why:
        pytest.skip(why)
    cluster = GaleraCluster(Path(tempfile.mkdtemp(prefix="cogent-galera-test-")),
                            first_port=FIRST_PORT, gcomm_port=GCOMM_PORT)
    busy = [n for n in (1, 2, 3) if cluster.answers(n)]
    if busy:
        pytest.skip(f"a database already answers on port(s) {[cluster.port(n) for n in busy]}")
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def central(galera: GaleraCluster) -> str:
    """A fresh database on the cluster, migrated to head through node 1; its name."""
    name = f"cogent_{uuid.uuid4().hex[:8]}"
    galera.create_database(name)
    upgrade(galera.url(1, name))
    return name


def wait_synced(galera: GaleraCluster, node: int, timeout: float = 120) -> None:
    def synced() -> bool:
        engine = make_engine(galera.url(node))
        try:
            with engine.connect() as conn:
                state = conn.execute(text("SHOW STATUS LIKE 'wsrep_local_state_comment'")).one()
                size = conn.execute(text("SHOW STATUS LIKE 'wsrep_cluster_size'")).one()
            return state[1] == "Synced" and size[1] == "3"
        except Exception:
            return False
        finally:
            engine.dispose()

    wait_for(synced, timeout, f"node {node} to be Synced in a cluster of 3", every=0.5)


def test_same_row_written_through_two_nodes_fails_at_commit_and_is_retried(galera, central):
    here = make_engine(galera.url(1, central))
    there = make_engine(galera.url(2, central))
    try:
        with here.begin() as conn:
            site = conn.execute(table_of(Site).insert().values(
                name="contested", created=utcnow())).inserted_primary_key[0]
        wait_for(lambda: row_count(galera.url(2, central), Site) == 1, 30,
                 "the row on node 2")
        attempts: list[int] = []

        def work(conn) -> int:
            attempts.append(1)
            conn.execute(update(Site).where(Site.id == site).values(name="ours"))
            if len(attempts) == 1:
                # Node 2 commits a change to the same row first: Galera aborts ours, which
                # holds the row's lock on node 1, and our COMMIT is refused with 1213.
                with there.begin() as other:
                    other.execute(update(Site).where(Site.id == site).values(name="theirs"))
            return len(attempts)

        assert run_write(here, work) == 2, "the first attempt's COMMIT should have failed"
        for node in (1, 2, 3):
            reader = make_engine(galera.url(node, central))
            try:
                with reader.connect() as conn:
                    conn.execute(text("SET SESSION wsrep_sync_wait = 1"))  # read after apply
                    names = conn.execute(select(Site.name)).scalars().all()
            finally:
                reader.dispose()
            assert names == ["ours"], (node, names)
    finally:
        here.dispose()
        there.dispose()


def isolate(galera: GaleraCluster, node: int, cut_off: bool) -> None:
    """Cut ``node`` off from the cluster's group communication (it becomes non-primary and
    refuses SQL with 1047), or let it rejoin. A bare connection: even ROLLBACK is refused
    on a cut-off node, so nothing may roll back on closing."""
    conn = pymysql.connect(host="127.0.0.1", port=galera.port(node), user="root",
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = %s",
                        (f"gmcast.isolate={int(cut_off)}",))
    finally:
        conn.close()


def test_node_cut_off_from_the_cluster_sends_new_connections_to_the_next_node(galera, central):
    engine = make_cluster_engine(galera.urls(central, order=(2, 3)), pool_size=2)
    port = text("SELECT @@port")
    try:
        with engine.connect() as conn:
            assert conn.execute(port).scalar_one() == galera.port(2)
        isolate(galera, 2, True)
        try:
            def on_another_node() -> bool:
                try:
                    with engine.connect() as conn:
                        conn.execute(select(func.count()).select_from(table_of(Site)))
                        return conn.execute(port).scalar_one() == galera.port(3)
                except DBAPIError as exc:  # the pooled connection to the cut-off node
                    assert exc.connection_invalidated, exc
                    return False

            wait_for(on_another_node, 60, "connections to move to node 3", every=0.5)
        finally:
            isolate(galera, 2, False)
        wait_synced(galera, 2)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the fleet


def stored(url: str) -> int:
    return row_count(url, Reading) + row_count(url, NodeState)


def answered(servers: list[LiveServer], status: int) -> int:
    """Requests the servers answered with ``status`` (their access logs)."""
    return sum(s.log.count(f'HTTP/1.1" {status}') for s in servers)


def logged(servers: list[LiveServer], words: str) -> int:
    return sum(s.log.count(words) for s in servers)


@pytest.mark.timeout(1800)
def test_torture_galera_node_killed_and_restarted_under_a_fleet_push(galera, central, tmp_path):
    stations = fleet_datasets(6, 30_000, REPO / "var" / "bench" / "cache")
    rng = random.Random(17)
    # Two servers, each on its own node first: the fleet writes through two nodes at once.
    # Node 2, the one server A uses, is killed.
    servers = [
        start_server(galera.url(2, central), db=galera.urls(central, order=(1, 3)),
                     log_level="info"),
        start_server(galera.url(3, central), db=galera.urls(central, order=(1, 2)),
                     log_level="info"),
    ]
    daemons: list[Pusher] = []
    gateways: list[GatewayLogger] = []
    locals_: list[str] = []
    try:
        with contextlib.ExitStack() as stop_at_exit:
            for i, station in enumerate(stations):
                local = station.copy(tmp_path / f"station{i}" / "base.db")
                locals_.append(local.url)
                key = create_key(galera.url(1, central), f"station-{i}")
                config = write_config(tmp_path / f"station{i}" / "synchronise.conf", local.url,
                                      {"central": (servers[i % 2].url, key)}, pushlimit=500,
                                      timeout=30)
                node, location = any_node(local.url)
                gateways.append(stop_at_exit.enter_context(
                    GatewayLogger(local.url, node, location, every=0.1, duration=600)))
                daemons.append(Pusher(config.path, name=f"daemon{i}").start())
            remote = galera.url(1, central)
            wait_for(lambda: row_count(remote, Reading) > 0, 120, "the fleet's first rows")
            time.sleep(rng.uniform(2.0, 5.0))
            behind = sum(backlog(url) for url in locals_)
            assert behind > 0, "the fleet caught up before the kill: make the stations larger"
            rows_at_kill = stored(remote)
            galera.kill(2)
            killed_at = time.monotonic()
            time.sleep(10)  # the fleet pushes on through nodes 1 and 3
            rows_while_down = stored(remote) - rows_at_kill
            galera.start(2)  # returns once node 2 is Synced again (IST from a donor)
            down_seconds = time.monotonic() - killed_at
            behind_at_rejoin = sum(backlog(url) for url in locals_)
            wait_synced(galera, 2)
            time.sleep(3)
        failures = [f for g in gateways for f in g.report.failures]
        assert not failures, failures[:5]
        for i, url in enumerate(locals_):
            wait_for(lambda u=url: backlog(u) == 0, 900, f"station {i} to catch up")
        codes = [daemon.terminate() for daemon in daemons]
        assert codes == [0] * len(daemons), [d.output[-2000:] for d in daemons]
    finally:
        for daemon in daemons:
            daemon.ensure_stopped()
        for server in servers:
            server.stop()

    assert "new connections go to" in servers[0].log, servers[0].log[-3000:]
    assert answered(servers, 500) == 0, "a node's death must be a 503 (transient), never a 500"
    wait_for(lambda: len({stored(galera.url(n, central)) for n in (1, 2, 3)}) == 1, 60,
             "every node to hold the same rows")
    total = Comparison()
    node2 = galera.url(2, central)  # the node that was killed holds every row again
    for url in locals_:
        result = assert_same(url, node2, shared=True)
        for name in ("readings", "node_states", "lost", "extra", "different", "duplicated",
                     "summary_groups"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    per_node = [stored(galera.url(n, central)) for n in (1, 2, 3)]
    assert per_node == [total.rows] * 3, (per_node, total.rows)
    record("Galera node killed mid fleet push (torture)", backend="galera",
           stations=len(stations), servers=len(servers), rows_at_kill=rows_at_kill,
           rows_stored_while_node_down=rows_while_down, node_down_seconds=round(down_seconds, 1),
           backlog_at_rejoin=behind_at_rejoin,
           failovers=logged(servers, "new connections go to"),
           answered_503=answered(servers, 503),
           commit_retries=logged(servers, "transaction aborted by the database"),
           failed_cycles=sum(d.output.count("cycle failed") for d in daemons),
           rows_per_node=per_node, comparison=total)
