"""Fixtures for the REST server's tests: one real server per backend, shared by the session.

Starting a server costs about a second, so most tests share one per backend and
keep out of each other's way with unique names, node ids and keys (see
:func:`make_site`). Tests that need a server of their own (other options, a
database at the wrong revision) start one with ``start_server``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from base.db import make_engine
from base.migrate import upgrade
from models import NodeType, RoomType, SensorType
from tests.dbs import Databases
from tests.live_server import LiveServer, create_key, start_server

_node_ids = itertools.count(10_000)
T0 = 1_767_268_800_000_000  # 2026-01-01T12:00:00Z in microseconds
FIVE_MIN = 300_000_000


def unique(label: str = "x") -> str:
    return f"{label}_{uuid.uuid4().hex[:8]}"


def next_node_id() -> int:
    return next(_node_ids)


def ensure_test_catalogue(db_url: str) -> None:
    """The catalogue rows :func:`map_body` names (sensor type 0, node type 0, room type
    "Kitchen"), whatever the migrations seed: a site key's map creates no catalogue rows."""
    engine = make_engine(db_url)
    wanted = [
        (SensorType, SensorType.id == 0, {"id": 0, "name": "Temperature", "code": "T",
                                          "units": "deg.C"}),
        (NodeType, NodeType.id == 0, {"id": 0, "name": "Temperature/Humidity"}),
        (RoomType, RoomType.name == "Kitchen", {"name": "Kitchen"}),
    ]  # fmt: skip
    try:
        with engine.begin() as conn:
            for model, match, row in wanted:
                if conn.execute(select(model).where(match)).first() is None:
                    conn.execute(insert(model).values(**row))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _rest_servers(_database_pools: dict[str, Databases]) -> Iterator[dict[str, LiveServer]]:
    servers: dict[str, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def server(backend: str, databases: Databases, _rest_servers: dict[str, LiveServer]) -> LiveServer:
    """The shared server of this backend (started on first use)."""
    live = _rest_servers.get(backend)
    if live is None:
        url = databases.create("rest")
        upgrade(url)
        ensure_test_catalogue(url)
        live = start_server(url)
        _rest_servers[backend] = live
    return live


@pytest.fixture
def db(server: LiveServer) -> Iterator[Engine]:
    """A direct engine on the shared server's database, for checking what was written."""
    engine = make_engine(server.db_url)
    yield engine
    engine.dispose()


def client(server: LiveServer, key: str | None = None, **headers: str) -> httpx.Client:
    h = dict(headers)
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=server.url, headers=h, timeout=30)


@dataclass
class Site:
    """A base station's world on the server: its key and one mapped house."""

    name: str
    key: str
    http: httpx.Client
    deployment: int
    house: int
    room: int
    location: int
    node: int
    sensor: int
    address: str

    def map(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post("sync/map/", json=body)

    def batch(self, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.http.post("sync/batch/", json=body, **kw)


def map_body(
    deployment: str, address: str, room: str, node: int, sensor_type: int = 0
) -> dict[str, Any]:
    return {
        "sensortype": [{"key": sensor_type}],
        "nodetype": [{"key": 0}],
        "roomtype": [{"key": 1, "name": "Kitchen"}],
        "room": [{"key": 2, "name": room, "roomType": 1}],
        "deployment": [{"key": 3, "name": deployment, "description": "test",
                        "startDate": "2026-01-01T00:00:00", "endDate": None}],
        "house": [{"key": 4, "deployment": 3, "address": address,
                   "startDate": "2026-01-01T00:00:00", "endDate": None}],
        "location": [{"key": 5, "house": 4, "room": 2}],
        "node": [{"key": node, "location": 5, "nodeType": 0}],
        "sensor": [{"key": 6, "node": node, "sensorType": sensor_type,
                    "calibrationSlope": 1.0, "calibrationOffset": 0.0}],
    }  # fmt: skip


def make_site(server: LiveServer, name: str | None = None, role: str = "site") -> Site:
    """A new site key with a freshly mapped deployment, house, room, location, node, sensor."""
    name = name or unique("site")
    key = create_key(server.db_url, name, role)
    http = client(server, key)
    node = next_node_id()
    address = unique("1 Road")
    reply = http.post("sync/map/", json=map_body(unique("dep"), address, unique("room"), node))
    assert reply.status_code == 200, reply.text
    ids = reply.json()
    assert ids["errors"] == [], ids
    return Site(
        name=name,
        key=key,
        http=http,
        deployment=ids["deployment"]["3"],
        house=ids["house"]["4"],
        room=ids["room"]["2"],
        location=ids["location"]["5"],
        node=ids["node"][str(node)],
        sensor=ids["sensor"]["6"],
        address=address,
    )


def readings_batch(site: Site, values: list[Any], start: int = T0, type_: int = 0) -> dict:
    t = [start] + [FIVE_MIN] * (len(values) - 1)
    return {
        "format": "cogent-batch/1",
        "readings": [
            {"node": site.node, "type": type_, "location": site.location, "t": t, "v": values}
        ],
    }


def nodestates_batch(site: Site, seqs: list[int], start: int = T0) -> dict:
    n = len(seqs)
    return {
        "format": "cogent-batch/1",
        "nodestates": [
            {"node": site.node, "t": [start] + [FIVE_MIN] * (n - 1), "seq": seqs,
             "parent": [0] * n, "rssi": [-60] * n, "localtime": list(range(n))}
        ],
    }  # fmt: skip


def table_rows(engine: Engine, table: Any) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


from tests.rest.browser import browser  # noqa: E402,F401 - the page tests' fixture
