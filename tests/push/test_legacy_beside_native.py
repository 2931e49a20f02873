"""A fleet mid-move: one site's native pusher and another site's original Cogent-house
client push into one server at the same moment; each site's rows arrive whole."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select

from base.db import make_engine
from models import Reading
from tests.legacy_client import LegacyHouse, LegacyPusher
from tests.live_server import create_key
from tests.pushkit import push_once, seed_cogent_house


def test_a_legacy_station_and_a_native_station_push_at_once_and_both_arrive_whole(pair):
    data = seed_cogent_house(pair.local, days=2)
    legacy_key = create_key(pair.remote, "old-station")
    resturl = pair.server.url.replace("http://", f"http://old-station:{legacy_key}@")
    house = LegacyHouse("Old trial", "3 Legacy Lane", {1: ("Old Parlour", 1)},
                        {7001: 1, 7002: 1})
    t0 = datetime(2025, 1, 1)
    for i in range(2000):
        for node in (7001, 7002):
            house.readings.append({"time": t0 + timedelta(minutes=5 * i), "nodeId": node,
                                   "type": 0, "room": 1, "value": 19.5 + (i % 10) / 10})
    legacy = LegacyPusher(resturl, pushlimit=250)
    errors: list[BaseException] = []

    def run_legacy() -> None:
        try:
            legacy.sync_house(house)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_legacy)
    thread.start()
    [report] = push_once(pair.config(pushlimit=500))
    thread.join(120)
    assert not errors, errors
    assert report.ok, report.error
    remote = make_engine(pair.remote)
    with remote.connect() as conn:
        def count(nodes: tuple[int, ...]) -> int:
            return int(conn.execute(select(func.count()).select_from(Reading)
                                    .where(Reading.nodeId.in_(nodes))).scalar_one())

        assert count((7001, 7002)) == len(house.readings)
        assert count((101, 102, 201, 202)) == data.readings
    remote.dispose()
