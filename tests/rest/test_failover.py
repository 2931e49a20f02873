"""The server over several database nodes (issue 17 item 4, base/failover.py): connections go
to the first node that works and stay there. Here the nodes are a port where nothing listens
(a dead node) and the real test database; the Galera cluster itself is exercised by
tests/reliability/test_galera.py."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import make_url, text

from base.db import write_engine
from base.errors import ConfigError
from base.failover import make_cluster_engine
from rest.settings import SETTINGS_ENV, Settings
from rest.state import build_state
from tests.live_server import free_port, start_server
from tests.rest.test_server import run_cli as run_cli  # the fixture

SERVERS = [
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]


def dead_node(url: str) -> str:
    """``url`` with its port changed to one where nothing listens."""
    return make_url(url).set(port=free_port()).render_as_string(hide_password=False)


def test_several_urls_must_be_nodes_of_one_server_database():
    with pytest.raises(ConfigError, match="same backend, not SQLite"):
        make_cluster_engine(["sqlite:///a.db", "sqlite:///b.db"])
    with pytest.raises(ConfigError, match="same backend"):
        make_cluster_engine(["mysql://root@127.0.0.1/a", "postgresql://u@127.0.0.1/a"])
    with pytest.raises(ConfigError, match="different databases"):
        make_cluster_engine(["mysql://root@127.0.0.1:3311/a", "mysql://root@127.0.0.1:3312/b"])
    with pytest.raises(ConfigError, match="no database URL"):
        make_cluster_engine([])


def test_failover_nodes_reach_the_worker_processes(monkeypatch):
    settings = Settings(db_url="mysql://u@h1/cogent",
                        db_failover=("mysql://u@h2/cogent", "mysql://u@h3/cogent"))
    monkeypatch.setenv(SETTINGS_ENV, settings.to_env())
    again = Settings.from_env()
    assert again == settings
    assert again.db_nodes() == ("mysql://u@h1/cogent", "mysql://u@h2/cogent",
                                "mysql://u@h3/cogent")


@pytest.mark.parametrize("backend", SERVERS)
def test_connections_skip_a_dead_node_and_stay_on_the_next(db_url, caplog):
    engine = make_cluster_engine([dead_node(db_url), db_url], pool_size=2, max_overflow=0)
    try:
        with caplog.at_level(logging.WARNING, logger="cogent.db"):
            for _ in range(3):
                with engine.connect() as conn:
                    assert conn.execute(text("SELECT 1")).scalar_one() == 1
                engine.dispose()  # every round opens a new connection
        moves = [r for r in caplog.records if "new connections go to" in r.getMessage()]
        assert len(moves) == 1, "once moved, connections stay on the node that works"
        assert "refused" in moves[0].getMessage()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", SERVERS)
def test_no_node_reachable_is_one_error_naming_every_node(db_url):
    first, second = dead_node(db_url), dead_node(db_url)
    engine = make_cluster_engine([first, second])
    try:
        with pytest.raises(Exception, match="no database node is usable") as caught, \
                engine.connect():
            pass
        message = str(caught.value)
        for url in (first, second):
            assert f":{make_url(url).port}" in message
    finally:
        engine.dispose()


@pytest.mark.slow  # starts a server
@pytest.mark.parametrize("backend", SERVERS)
def test_server_with_a_dead_first_node_starts_and_serves_from_the_next(db_url):
    # start_server's own --db comes first; the extra one is appended after it.
    server = start_server(dead_node(db_url), db=db_url, log_level="info")
    try:
        reply = httpx.get(server.url + "version/", timeout=10)
        assert reply.status_code == 200
        assert "new connections go to" in server.log
    finally:
        server.stop()


@pytest.mark.parametrize("backend", [pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)])
def test_db_url_variable_may_list_the_nodes_separated_by_spaces(run_cli, make_db):
    empty = make_db("empty", migrate=False)
    dead = dead_node(empty)
    result = run_cli("serve", "--port", "1", db_url=f"{dead}  {empty}")
    assert "database nodes" in result.stderr
    # The schema check reached the second node (the first refuses): its answer is the
    # missing schema, not an unreachable database.
    assert result.returncode == 2
    assert "has no cogent-sync schema" in result.stderr, result.stderr


@pytest.mark.parametrize("backend", SERVERS)
def test_server_connections_are_read_committed_so_nothing_is_reset_when_they_return(db_url):
    """A level set per transaction is set back at check-in; a node dying between the COMMIT
    and that statement made a 500 and lost the pool a slot (seen in test_galera.py)."""
    state = build_state(Settings(db_url=db_url))
    try:
        assert write_engine(state.engine) is state.engine
        level = ("SELECT @@tx_isolation" if state.engine.dialect.name == "mysql"
                 else "SHOW transaction_isolation")
        with state.engine.connect() as conn:
            assert conn.execute(text(level)).scalar_one().upper().replace("-", " ") == (
                "READ COMMITTED")
    finally:
        state.engine.dispose()
