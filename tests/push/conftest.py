"""Fixtures of the pusher's end-to-end tests: a local database, a real server, its database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from base.config import Config
from tests.live_server import LiveServer, create_key, start_server
from tests.pushkit import write_config


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The pusher's end-to-end scenarios run on the embedded default and on MariaDB."""
    return str(request.param)


@dataclass
class Pair:
    local: str
    remote: str
    server: LiveServer
    key: str
    dir: Path

    def config(
        self, pushlimit: int = 5000, url: str | None = None, timeout: float = 2, **general: object
    ) -> Config:
        return write_config(
            self.dir / "synchronise.conf",
            self.local,
            {"central": (url or self.server.url, self.key)},
            pushlimit=pushlimit,
            timeout=timeout,
            **general,
        )


@pytest.fixture
def pair(make_db, tmp_path):
    local, remote = make_db("local"), make_db("remote")
    server = start_server(remote)
    try:
        yield Pair(local, remote, server, create_key(remote, "site-a"), tmp_path)
    finally:
        server.stop()
