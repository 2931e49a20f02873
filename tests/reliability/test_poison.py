"""Poison rows — NaN, ±infinity, unknown nodes, locations and sensor types, times far in
the future and before 1970 — scattered through a push, in readings and node states,
written the way a gateway logger writes (plain SQL, no foreign-key checks).

Each must be set aside locally with its reason (by the pusher itself, or from the
remote's rejection), shown by ``RestPusher.py status``, never re-sent, and never hold up
the rows around it: the remote ends equal to the local database minus exactly the
set-aside rows. (A NULL value is data, not poison: it replicates as NULL.)
tests/push/test_e2e.py has the basic case (inf/unknown node in one batch); here every
kind, on every backend a base station may use (PostgreSQL is the one that stores a real
NaN), spread over many batches.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from base.db import make_engine
from models import SyncRejected
from push.daemon import Pusher as InProcessPusher
from tests.oracle import assert_replica
from tests.pushkit import seed_cogent_house
from tests.reliability.kit import (
    Pusher,
    caught_up,
    record,
    run_pusher,
    wait_for,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", id="mysql", marks=[pytest.mark.mysql, pytest.mark.torture]),
]
TORTURE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]
START = datetime(2026, 4, 1)


def insert_raw(url: str, table: str, rows: list[dict]) -> list[int]:
    """Insert as a logger would: plain SQL, foreign keys not checked; return the new ids."""
    engine = make_engine(url)
    ids = []
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            dialect = engine.dialect.name
            if dialect == "sqlite":
                cur.execute("PRAGMA foreign_keys = OFF")
                cur.execute("BEGIN")
            elif dialect == "postgresql":
                cur.execute("SET session_replication_role = replica")  # no FK triggers
            else:
                cur.execute("SET FOREIGN_KEY_CHECKS = 0")
            mark = "?" if dialect == "sqlite" else "%s"
            q = engine.dialect.identifier_preparer.quote
            for row in rows:
                cols = list(row)
                values = [v.isoformat(sep=" ") if dialect == "sqlite" and isinstance(v, datetime)
                          else v for v in row.values()]
                sql = (f"INSERT INTO {q(table)} ({', '.join(q(c) for c in cols)}) "
                       f"VALUES ({', '.join([mark] * len(cols))})")
                if dialect == "postgresql":
                    sql += " RETURNING id"
                cur.execute(sql, values)
                ids.append(cur.fetchone()[0] if dialect == "postgresql" else cur.lastrowid)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return ids


def poison_kinds(backend: str, location: int) -> list[tuple[str, str, dict, str]]:
    """(label, table, row, what the set-aside reason must say) for every kind of poison."""
    future = datetime.now() + timedelta(days=3)
    base = {"nodeId": 101, "type": 0, "locationId": location, "value": 1.0}
    kinds = [
        ("unknown node", "Reading", {**base, "nodeId": 999}, "999"),
        ("unknown location", "Reading", {**base, "locationId": 99999}, "99999"),
        ("no location", "Reading", {**base, "locationId": None}, "no location"),
        ("unknown sensor type", "Reading", {**base, "type": 999}, "999"),
        ("far future (a year)", "Reading", {**base, "time": datetime(2100, 1, 1)},
         "more than a day in the future"),
        ("future (3 days)", "Reading", {**base, "time": future}, "more than a day in the future"),
        ("before 1970", "Reading", {**base, "time": datetime(1969, 7, 20, 20, 17)},
         "before 2000"),  # the pusher sets aside anything before 2000 (a clock never set)
        ("before 2000", "Reading", {**base, "time": datetime(1999, 6, 1, 12, 0)},
         "before 2000"),
        ("node state, unknown node", "NodeState", {"nodeId": 999, "seq_num": 1}, "999"),
        ("node state, far future", "NodeState", {"nodeId": 101, "seq_num": 2,
                                                 "time": datetime(2100, 1, 1)},
         "more than a day in the future"),
    ]
    if backend != "mysql":  # MariaDB stores neither infinity nor NaN
        kinds += [("+infinity", "Reading", {**base, "value": math.inf}, "inf"),
                  ("-infinity", "Reading", {**base, "value": -math.inf}, "inf")]
    if backend == "postgresql":  # SQLite turns NaN into NULL; PostgreSQL keeps it
        kinds.append(("NaN", "Reading", {**base, "value": math.nan}, "nan"))
    return kinds


def scatter(pair, backend: str, location: int, *, rounds: int, per_round: int, seed: int):
    """Good rows and poison rows in random order, in many small transactions, so poison
    lands at every position of many batches. Returns {local id: (label, reason)}."""
    rng = random.Random(seed)
    kinds = poison_kinds(backend, location)
    expected: dict[tuple[str, int], tuple[str, str]] = {}
    when = START
    for _ in range(rounds):
        items = []
        for _ in range(per_round):
            when += timedelta(seconds=7)
            items.append(("good", "Reading", {"nodeId": 101, "type": 0, "locationId": location,
                                              "value": round(rng.uniform(15, 25), 2),
                                              "time": when}, ""))
        for label, table, row, why in rng.sample(kinds, k=min(4, len(kinds))):
            when += timedelta(seconds=7)
            shift = when - START  # fixed poison times, made distinct
            timed = {**row, "time": row["time"] + shift} if "time" in row else row
            items.insert(rng.randrange(len(items) + 1),
                         (label, table, {"time": when, **timed}, why))
        for table in ("Reading", "NodeState"):  # one transaction per table and round
            mine = [item for item in items if item[1] == table]
            ids = insert_raw(pair.local, table, [row for _, _, row, _ in mine])
            for (label, _, _, why), new_id in zip(mine, ids, strict=True):
                if label != "good":
                    expected[(table, new_id)] = (label, why)
    return expected


def set_aside(url: str) -> dict[tuple[str, int], str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {(t, i): r for t, i, r in conn.execute(
                select(SyncRejected.tableName, SyncRejected.localId, SyncRejected.reason))}
    finally:
        engine.dispose()


def check_set_aside(pair, expected: dict) -> None:
    found = set_aside(pair.local)
    assert set(found) == set(expected), (
        f"set aside but not poison: {sorted(set(found) - set(expected))[:5]}; "
        f"poison not set aside: {[expected[k] for k in set(expected) - set(found)][:5]}")
    wrong = [(expected[k][0], found[k]) for k in expected if expected[k][1] not in found[k]]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_poison_rows_of_every_kind_are_set_aside_with_reasons_and_the_rest_flows(pair, backend):
    data = seed_cogent_house(pair.local, days=1)
    expected = scatter(pair, backend, data.locations[101], rounds=6, per_round=40, seed=6)
    config = pair.config(pushlimit=50)
    pusher = InProcessPusher(config)
    try:
        [report] = pusher.run_once()
        assert report.ok, report.error
        check_set_aside(pair, expected)
        [again] = pusher.run_once()  # nothing is re-sent, nothing set aside twice
        assert again.ok and again.sent == 0, again
    finally:
        pusher.close()
    check_set_aside(pair, expected)
    result = assert_replica(pair.local, pair.remote)
    assert result.set_aside == len(expected)
    status = run_pusher(config.path, "status")
    assert status.returncode == 3, status.stderr  # in step, but rows are set aside
    assert f"rows set aside: {len(expected)}" in status.stdout, status.stdout
    assert "backlog: none" in status.stdout, status.stdout
    assert status.stdout.count("Local and remote are the same") == 2, status.stdout
    doc = json.loads(run_pusher(config.path, "status", "--json").stdout)
    reasons = doc["remotes"][0]["set_aside"]["reasons"]
    assert sum(r["count"] for r in reasons) == len(expected), reasons
    assert all(any(why in r["reason"] for r in reasons) for _, why in expected.values()), reasons
    record("poison rows (suite)", backend=backend, poison=len(expected),
           kinds=len({v[0] for v in expected.values()}), comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", TORTURE_BACKENDS)
def test_torture_poison_scattered_through_a_daemon_push(pair, backend):
    data = seed_cogent_house(pair.local, days=20)
    expected = scatter(pair, backend, data.locations[101], rounds=150, per_round=100, seed=150)
    config = pair.config(pushlimit=300)
    daemon = Pusher(config.path, name="daemon").start()
    try:
        wait_for(caught_up(pair.local), 900, "the daemon to push past every poison row")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    check_set_aside(pair, expected)
    result = assert_replica(pair.local, pair.remote)
    assert result.set_aside == len(expected)
    record("poison rows (torture)", backend=backend, poison=len(expected), comparison=result)
