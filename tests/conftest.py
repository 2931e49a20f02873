"""Shared fixtures: real databases on every backend, migrated to head."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from base.db import make_engine
from base.migrate import upgrade
from tests.dbs import BACKENDS, Databases, make_workdir, require

# Fixtures that start a server process: a test using one is `slow` (not in `make check`).
SERVER_FIXTURES = frozenset({"live_server", "server", "pair", "_rest_servers", "fuzz_server"})
FAST_LANE_ENV = "COGENT_FAST_LANE"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_lane_starts_no_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """In `make check`, a test that starts a subprocess without being marked slow fails, so
    the fast lane stays fast as tests are added."""
    if not os.environ.get(FAST_LANE_ENV) or request.node.get_closest_marker("slow"):
        yield
        return
    real_init = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen, *args: object, **kwargs: object) -> None:
        pytest.fail(f"{request.node.nodeid} starts a subprocess: mark it `slow`", pytrace=False)

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def _database_pools() -> Iterator[dict[str, Databases]]:
    workdir = make_workdir()
    pools = {b: Databases(b, workdir) for b in BACKENDS}
    yield pools
    for pool in pools.values():
        pool.close()
    shutil.rmtree(workdir, ignore_errors=True)


def _backend_params() -> list:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once per database backend."""
    return str(request.param)


@pytest.fixture
def databases(backend: str, _database_pools: dict[str, Databases]) -> Databases:
    pool = _database_pools[backend]
    require(pool)
    return pool


DbFactory = Callable[..., str]


@pytest.fixture
def make_db(databases: Databases) -> Iterator[DbFactory]:
    """Factory: ``make_db(label, migrate=True)`` → URL of a new database on this test's backend."""
    made: list[str] = []

    def factory(label: str = "db", migrate: bool = True) -> str:
        url = databases.create(label)
        made.append(url)
        if migrate:
            upgrade(url)
        return url

    yield factory
    for url in made:
        databases.drop(url)


@pytest.fixture
def db_url(make_db: DbFactory) -> str:
    """A fresh database migrated to head, on this test's backend."""
    return make_db("main")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_url(_database_pools: dict[str, Databases]) -> Iterator[str]:
    """A fresh migrated SQLite database, for tests that need only the embedded default."""
    pool = _database_pools["sqlite"]
    url = pool.create("sqlite")
    upgrade(url)
    yield url
