"""``RestPusher.py retry``: set-aside rows are sent again once their cause is fixed.

A cycle never looks behind its cursor, so without ``retry`` a reading set aside for a
cause that was later fixed would stay off the remote for good.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from base.db import make_engine
from models import Reading, SyncRejected
from push.retry import Retrier
from push.status import format_status, remote_status
from tests.pushkit import T0, assert_same, count, insert_unchecked, push_once, seed_cogent_house

REPO = Path(__file__).resolve().parents[2]
DAY3 = T0 + timedelta(days=3)


def unplaced_readings(n: int) -> list[dict]:
    """What a gateway logs for a node the installer has not placed yet: no location."""
    return [
        {"nodeId": 101, "type": 0, "time": DAY3 + timedelta(minutes=5 * i),
         "locationId": None, "value": 20.0 + i}
        for i in range(n)
    ]


def set_aside(url: str) -> dict[int, tuple[str, int]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(SyncRejected.localId, SyncRejected.reason, SyncRejected.attempts)
            ).all()
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        engine.dispose()


def retry(config, reason: str | None = None):
    engine = make_engine(config.localurl)
    retrier = Retrier(config, config.remote("central"), engine)
    try:
        return retrier.run(reason)
    finally:
        retrier.close()
        engine.dispose()


def test_readings_set_aside_for_a_missing_location_are_delivered_once_it_is_set(pair):
    data = seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, unplaced_readings(5))
    config = pair.config(pushlimit=200)
    [report] = push_once(config)
    assert report.ok and report.streams["Reading"].set_aside == 5
    assert all("no locationId" in why for why, _ in set_aside(pair.local).values())
    local = make_engine(pair.local)
    try:
        with local.begin() as conn:  # the installer places the node; its readings follow
            conn.execute(
                update(Reading)
                .where(Reading.locationId.is_(None))
                .values(locationId=data.locations[101])
            )
        again = retry(config)
        assert (again.tried, again.delivered, again.still_aside) == (5, 5, 0), again.describe()
        assert set_aside(pair.local) == {}
        assert_same(pair.local, pair.remote)  # rows behind the cursor arrived after all
        [after] = push_once(config)
        assert after.ok and after.sent == 0
        shown = format_status(remote_status(config, config.remote("central"), local))
        assert "rows set aside: 0" in shown
    finally:
        local.dispose()


def test_rows_refused_again_stay_set_aside_with_the_attempt_counted(pair):
    data = seed_cogent_house(pair.local, days=1)
    loc = data.locations[101]
    insert_unchecked(pair.local, unplaced_readings(2))
    insert_unchecked(pair.local, [{"nodeId": 101, "type": 4242, "time": DAY3 + timedelta(hours=5),
                                   "locationId": loc, "value": 1.0}])
    config = pair.config()
    [report] = push_once(config)
    assert report.ok and report.streams["Reading"].set_aside == 3
    remote = make_engine(pair.remote)
    try:
        before = count(remote, Reading)
        only = retry(config, reason="4242")  # just the unknown type, which nothing fixed
        assert (only.tried, only.delivered, only.still_aside) == (1, 0, 1), only.describe()
        aside = set_aside(pair.local)
        assert sorted(a for _, a in aside.values()) == [1, 1, 2]  # only that one was tried
        everything = retry(config)
        assert (everything.tried, everything.delivered) == (3, 0)
        assert count(remote, Reading) == before  # nothing was written by refused rows
    finally:
        remote.dispose()


def test_a_set_aside_row_deleted_locally_is_forgotten(pair):
    seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, unplaced_readings(3))
    config = pair.config()
    push_once(config)
    local = make_engine(pair.local)
    try:
        with local.begin() as conn:
            conn.execute(Reading.__table__.delete().where(Reading.locationId.is_(None)))
    finally:
        local.dispose()
    report = retry(config)
    assert (report.tried, report.gone, report.delivered) == (3, 3, 0)
    assert set_aside(pair.local) == {}


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_retry_command_says_what_became_of_the_rows(pair):
    seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, unplaced_readings(2))
    config = pair.config()
    push_once(config)
    done = subprocess.run(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config.path), "retry"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 3, done.stderr  # rows are still set aside
    assert "central: 2 set-aside rows tried: 0 delivered, 2 still set aside" in done.stdout
    assert "2 rows: reading has no locationId" in done.stdout
