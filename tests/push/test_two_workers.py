"""The server with two worker processes on one database (issue 17, item 3): two base stations
push at the same moment, their requests spread over both workers; every row arrives once.
Server state lives in the database; what stays per worker (admission counts, metrics
counters) is documented in docs/OPERATIONS.md and docs/PROTOCOL.md."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from base.db import make_engine
from models import NodeState, Reading
from models.base import table_of
from tests.factories import place_node
from tests.live_server import create_key, start_server
from tests.pushkit import push_once, write_config

pytestmark = [pytest.mark.slow, pytest.mark.mysql]
T0 = datetime(2026, 3, 1)


def _station(url: str, name: str, first_node: int, days: int = 3) -> int:
    """A base station's database with two nodes of its own; the readings it holds."""
    engine = make_engine(url)
    rows, states = [], []
    for n in range(2):
        node = first_node + n
        placed = place_node(engine, node, deployment=f"Trial {name}", address=f"{name} Road",
                            room=f"Room {name} {n}", sensor_types=(0, 2))
        for i in range(days * 288):
            when = T0 + timedelta(minutes=5 * i, seconds=n)
            rows += [{"nodeId": node, "type": t, "time": when, "locationId": placed.location,
                      "value": 20.0 + i % 7} for t in (0, 2)]
            states.append({"nodeId": node, "time": when, "seq_num": i % 256})
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)), rows)
        conn.execute(insert(table_of(NodeState)), states)
    engine.dispose()
    return len(rows)


def test_two_workers_take_two_stations_pushing_at_once_and_store_every_row_once(
        make_db, tmp_path):
    remote = make_db("remote2w")
    server = start_server(remote, workers=2)
    try:
        configs, expected = [], {}
        for name, first in (("north", 8101), ("south", 8201)):
            local = make_db(f"local_{name}")
            expected[first] = _station(local, name, first)
            key = create_key(remote, f"site-{name}")
            (tmp_path / name).mkdir()
            configs.append(write_config(tmp_path / name / "synchronise.conf", local,
                                        {"central": (server.url, key)}, pushlimit=300))
        reports: list = []
        threads = [threading.Thread(target=lambda c=c: reports.extend(push_once(c)))
                   for c in configs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(reports) == 2 and all(r.ok for r in reports), [r.error for r in reports]
        engine = make_engine(remote)
        with engine.connect() as conn:
            for first, n in expected.items():
                got = conn.execute(select(func.count()).select_from(Reading).where(
                    Reading.nodeId.in_([first, first + 1]))).scalar_one()
                assert got == n, (first, got, n)
            dupes = conn.execute(select(Reading.nodeId, Reading.type, Reading.time)
                                 .group_by(Reading.nodeId, Reading.type, Reading.time)
                                 .having(func.count() > 1)).all()
        engine.dispose()
        assert dupes == []
    finally:
        server.stop()
