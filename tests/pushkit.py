"""Helpers for the pusher's end-to-end tests: a Cogent-house-shaped dataset and a config.
The comparison of local and remote is tests/oracle.py (``assert_same`` is re-exported here)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from base.config import Config, load_config
from base.db import make_engine
from models import NodeState, Reading
from models.base import table_of
from tests.factories import place_node
from tests.oracle import assert_same as assert_same

T0 = datetime(2026, 1, 5)
PERIOD = timedelta(minutes=5)


@dataclass
class Dataset:
    readings: int
    node_states: int
    locations: dict[int, int]  # node id → local location id


def seed_cogent_house(url: str, days: int = 10, seed: int = 1) -> Dataset:
    """Two houses, four nodes (two sensor types each), 5-minute readings and node states over
    ``days`` days; nodes 102 and 202 skip some samples."""
    rng = random.Random(seed)
    engine = make_engine(url)
    locations: dict[int, int] = {}
    for h, address in enumerate(["1 Mill Lane", "2 Mill Lane"], start=1):
        for r, (room, room_type) in enumerate([("Living Room A", 2), ("Bedroom A", 1)], start=1):
            placed = place_node(engine, h * 100 + r, deployment="Trial 2026",
                                description="two-house trial", address=address, room=room,
                                room_type=room_type, sensor_types=(0, 2), start=T0)
            locations[placed.node] = placed.location
    readings: list[dict] = []
    states: list[dict] = []
    n_readings = n_states = 0
    steps = days * 24 * 12
    with engine.begin() as conn:
        for node_id, loc_id in locations.items():
            for i in range(steps):
                if node_id in (102, 202) and rng.random() < 0.05:
                    continue  # a missed sample
                when = T0 + i * PERIOD + timedelta(microseconds=rng.randrange(0, 3_000_000))
                readings.append(
                    {
                        "nodeId": node_id,
                        "type": 0,
                        "time": when,
                        "locationId": loc_id,
                        "value": round(18 + rng.random() * 5, 2),
                    }
                )
                readings.append(
                    {
                        "nodeId": node_id,
                        "type": 2,
                        "time": when,
                        "locationId": loc_id,
                        "value": round(40 + rng.random() * 20, 1),
                    }
                )
                states.append(
                    {
                        "nodeId": node_id,
                        "time": when,
                        "seq_num": i % 256,
                        "parent": 0,
                        "rssi": -rng.randrange(40, 90),
                        "localtime": i * 300,
                    }
                )
                if len(readings) >= 5000:
                    conn.execute(insert(table_of(Reading)), readings)
                    n_readings += len(readings)
                    readings.clear()
                if len(states) >= 5000:
                    conn.execute(insert(table_of(NodeState)), states)
                    n_states += len(states)
                    states.clear()
        if readings:
            conn.execute(insert(table_of(Reading)), readings)
            n_readings += len(readings)
        if states:
            conn.execute(insert(table_of(NodeState)), states)
            n_states += len(states)
    engine.dispose()
    return Dataset(n_readings, n_states, locations)


def write_config(
    path: Path,
    local_url: str,
    remotes: dict[str, tuple[str, str]],
    pushlimit: int = 5000,
    timeout: float = 2,
    remote_options: dict[str, object] | None = None,
    **general: object,
) -> Config:
    """remotes: name → (resturl, apikey); ``remote_options`` go into every remote's section.
    Fast backoff so tests do not wait long."""
    lines = [
        "[general]",
        f"localurl = {local_url}",
        f"pushlimit = {pushlimit}",
        "synctime = 1",
        "backoff_min = 0.1",
        "backoff_max = 1",
        f"logfile = {path.parent / 'push.log'}",
        f"lockfile = {path.parent / 'push.lock'}",
        f"pidfile = {path.parent / 'push.pid'}",
    ]
    lines += [f"{k} = {v}" for k, v in general.items()]
    lines.append("[locations]")
    lines += [f"{name} = 1" for name in remotes]
    for name, (url, key) in remotes.items():
        lines += [
            f"[{name}]",
            f"resturl = {url}",
            f"apikey = {key}",
            f"timeout = {timeout}",
            "connect_timeout = 2",
        ]
        lines += [f"{k} = {v}" for k, v in (remote_options or {}).items()]
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


def count(engine: Engine, model: type) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def insert_unchecked(url: str, rows: list[dict]) -> None:
    """Insert readings as a gateway logger might: without foreign-key checks."""
    engine = make_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if engine.dialect.name == "sqlite":
                cur.execute("PRAGMA foreign_keys = OFF")  # outside a transaction: takes effect
                cur.execute("BEGIN")
                mark = "?"
            else:
                cur.execute("SET FOREIGN_KEY_CHECKS = 0")
                mark = "%s"
            cols = ["nodeId", "type", "time", "locationId", "value"]
            q = engine.dialect.identifier_preparer.quote
            sql = (
                f"INSERT INTO {q('Reading')} ({', '.join(q(c) for c in cols)}) "
                f"VALUES ({', '.join([mark] * len(cols))})"
            )
            for row in rows:
                values = [row[c] for c in cols]
                if engine.dialect.name == "sqlite":
                    values[2] = values[2].isoformat(sep=" ")
                cur.execute(sql, values)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def push_once(config: Config) -> list:
    """One in-process push cycle to every enabled remote; the per-remote reports."""
    from push.daemon import Pusher

    pusher = Pusher(config)
    try:
        return pusher.run_once()
    finally:
        pusher.close()
