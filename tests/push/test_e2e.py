"""The RestPusher end to end: a local database, a real uvicorn server on loopback, a remote
database. Every line of the replication contract has a scenario here that fails if it breaks."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from base.db import make_engine
from base.errors import SchemaMismatch
from models import (
    Deployment,
    House,
    Location,
    Node,
    NodeState,
    Reading,
    Room,
    Sensor,
    SensorType,
    SyncRejected,
)
from models.base import table_of
from push.cycle import RemoteSync
from push.retry import Retrier
from push.status import format_status, remote_status
from tests.faultproxy import FaultProxy
from tests.pushkit import (
    PERIOD,
    T0,
    assert_same,
    count,
    insert_unchecked,
    push_once,
    seed_cogent_house,
    write_config,
)


def test_one_cycle_copies_every_row_and_a_second_cycle_sends_nothing(pair):
    data = seed_cogent_house(pair.local)
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert report.streams["Reading"].sent == data.readings
    assert report.streams["NodeState"].sent == data.node_states
    assert_same(pair.local, pair.remote)
    [again] = push_once(pair.config())
    assert again.ok and again.sent == 0
    assert again.requests <= 2  # the idle cycle: version check, nothing else


def test_pushlimit_144_gives_the_same_remote(pair):
    seed_cogent_house(pair.local, days=2)
    [report] = push_once(pair.config(pushlimit=144))
    assert report.ok, report.error
    assert report.streams["Reading"].batches > 10
    assert_same(pair.local, pair.remote)


def test_remote_ids_that_differ_from_local_ids_map_correctly(pair):
    remote = make_engine(pair.remote)
    with Session(remote) as s:  # the remote already has other metadata, created in another order
        rooms = [Room(name=f"Unrelated {i}") for i in range(5)]
        dep = Deployment(name="Somebody else's")
        s.add_all([*rooms, dep])
        s.flush()
        houses = [House(deploymentId=dep.id, address=f"{i} Far Road") for i in range(3)]
        s.add_all(houses)
        s.flush()
        s.add(Location(houseId=houses[0].id, roomId=rooms[0].id))
        s.commit()
    remote.dispose()
    seed_cogent_house(pair.local, days=1)
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert_same(pair.local, pair.remote)  # compares by natural keys of house and room


def test_batch_boundary_inside_equal_timestamps_loses_nothing(pair):
    data = seed_cogent_house(pair.local, days=0)
    local = make_engine(pair.local)
    same_time = T0 + timedelta(hours=1)
    with local.begin() as conn:
        conn.execute(
            insert(table_of(Reading)),
            [
                {"nodeId": node, "type": kind, "time": same_time, "locationId": loc, "value": 1.0}
                for node, loc in data.locations.items()
                for kind in (0, 2)
            ],
        )
    local.dispose()
    [report] = push_once(pair.config(pushlimit=3))
    assert report.ok, report.error
    assert report.streams["Reading"].sent == 8
    assert_same(pair.local, pair.remote)


def test_readings_with_old_timestamps_inserted_after_a_push_are_sent_next_cycle(pair):
    data = seed_cogent_house(pair.local, days=1)
    push_once(pair.config())
    local = make_engine(pair.local)
    with local.begin() as conn:  # a logger catching up on data from a week ago
        conn.execute(
            insert(table_of(Reading)),
            [
                {
                    "nodeId": 101,
                    "type": 0,
                    "time": T0 - timedelta(days=7, minutes=i),
                    "locationId": data.locations[101],
                    "value": 15.0 + i,
                }
                for i in range(10)
            ],
        )
    local.dispose()
    [report] = push_once(pair.config())
    assert report.ok and report.streams["Reading"].sent == 10
    assert_same(pair.local, pair.remote)


def test_row_committed_late_with_a_lower_sequence_is_not_skipped(pair, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has a single writer: rows commit in id order")
    data = seed_cogent_house(pair.local, days=0)
    local, slow = make_engine(pair.local), make_engine(pair.local)
    row = {"nodeId": 101, "type": 0, "locationId": data.locations[101], "value": 20.0}
    try:
        with slow.connect() as slow_conn:
            tx = slow_conn.begin()
            slow_conn.execute(insert(table_of(Reading)), [{**row, "time": T0}])  # lower id
            with local.begin() as conn:
                conn.execute(insert(table_of(Reading)), [{**row, "time": T0 + PERIOD}])
            push_once(pair.config())
            tx.commit()
        [report] = push_once(pair.config())
        assert report.streams["Reading"].sent == 1
        assert_same(pair.local, pair.remote)
    finally:
        local.dispose()
        slow.dispose()


def test_server_down_at_the_start_then_up_delivers_everything(pair):
    seed_cogent_house(pair.local, days=1)
    pair.server.stop()
    [report] = push_once(pair.config())
    assert not report.ok and "nothing listens at" in (report.error or "")
    pair.server.start()
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert_same(pair.local, pair.remote)


# The matrix runs on the embedded default in the suite and on MariaDB under `make torture`:
# the faults are in the network, not the database, so one backend in the suite is enough.
@pytest.mark.parametrize(
    "backend",
    [pytest.param("sqlite", id="sqlite"),
     pytest.param("mysql", id="mysql", marks=[pytest.mark.mysql, pytest.mark.torture])],
)
@pytest.mark.parametrize(
    "fault", ["502", "503", "reset_before", "reset_after", "truncate", "stall", "trickle"]
)
def test_network_fault_mid_push_loses_and_duplicates_nothing(pair, fault, backend):
    seed_cogent_house(pair.local, days=1)
    proxy = FaultProxy(pair.server.url, stall_seconds=3)
    try:
        config = pair.config(pushlimit=500, url=proxy.url)
        # Requests: 1 version, 2 map, 3.. batches. Fault the 4th and 6th requests (batches).
        proxy.inject("pass", "pass", "pass", fault, "pass", fault)
        [report] = push_once(config)
        assert report.ok, report.error  # retried within the cycle
        assert proxy.seen[fault] == 2
        assert_same(pair.local, pair.remote)
    finally:
        proxy.close()


def test_persistent_failure_fails_the_cycle_and_the_next_cycle_recovers(pair):
    seed_cogent_house(pair.local, days=1)
    proxy = FaultProxy(pair.server.url)
    try:
        config = pair.config(pushlimit=500, url=proxy.url)
        # After the first batch, the server is gone for longer than the cycle keeps trying.
        proxy.inject("pass", "pass", "pass", *["503"] * 30)
        [report] = push_once(config)
        assert not report.ok and "503" in (report.error or "")
        assert proxy.clear() > 0  # the cycle gave up; it did not wait the outage out
        [report] = push_once(config)
        assert report.ok, report.error
        assert_same(pair.local, pair.remote)
    finally:
        proxy.close()


def test_infinite_and_unmappable_readings_are_set_aside_and_the_rest_flows(pair, backend):
    data = seed_cogent_house(pair.local, days=1)
    loc = data.locations[101]
    day3 = T0 + timedelta(days=3)
    # SQLite keeps infinities (and stores NaN as NULL); MariaDB accepts neither.
    bad_values = [math.inf] if backend == "sqlite" else []
    poison = [
        {"nodeId": 101, "type": 0, "time": day3 + timedelta(seconds=i), "locationId": loc,
         "value": v}
        for i, v in enumerate(bad_values)
    ]
    poison.append({"nodeId": 999, "type": 0, "time": day3, "locationId": 99999, "value": 1.0})
    good = {"nodeId": 101, "type": 0, "time": day3 + timedelta(minutes=5), "locationId": loc,
            "value": 21.0}
    insert_unchecked(pair.local, [*poison, good])
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert report.streams["Reading"].set_aside == len(poison)
    local = make_engine(pair.local)
    with local.connect() as conn:
        reasons = sorted(conn.execute(select(SyncRejected.reason)).scalars())
    if backend == "sqlite":
        assert any("inf" in r for r in reasons)
    assert any("99999" in r for r in reasons)
    remote = make_engine(pair.remote)
    assert count(remote, Reading) == count(local, Reading) - len(poison)
    with remote.connect() as conn:  # the reading after the poison rows arrived
        assert (
            conn.execute(select(Reading.value).where(Reading.time == good["time"])).scalar_one()
            == 21.0
        )
    remote.dispose()
    config = pair.config()
    shown = format_status(remote_status(config, config.remote("central"), local))
    assert f"rows set aside: {len(poison)}" in shown and "99999" in shown
    # Regression: the comparison once crashed on SQLite's infinity; set-aside rows are not
    # expected on the remote, so the houses still compare equal.
    assert shown.count("Local and remote are the same") == 2, shown
    local.dispose()


@pytest.mark.parametrize("compression", ["none", "gzip"])  # cogent-batch/1 JSON, /2 binary
def test_a_null_value_is_data_and_replicates_as_null(pair, backend, compression):
    """Cogent-house's logger stores NULL when it cannot read a sensor: the row is sent as
    NULL (either batch format), re-sending changes nothing, and a restore brings it back."""
    data = seed_cogent_house(pair.local, days=1)
    loc = data.locations[101]
    day3 = T0 + timedelta(days=3)
    values = [None, 20.5, None, None, 21.0]  # NULLs among values, and a series of only NULLs
    rows = [{"nodeId": 101, "type": 0, "time": day3 + timedelta(minutes=i), "locationId": loc,
             "value": v} for i, v in enumerate(values)]
    rows.append({"nodeId": 101, "type": 2, "time": day3, "locationId": loc, "value": None})
    if backend == "sqlite":  # SQLite stores NaN as NULL: it arrives as NULL too
        rows.append({"nodeId": 101, "type": 8, "time": day3, "locationId": loc,
                     "value": math.nan})
    insert_unchecked(pair.local, rows)
    config = write_config(pair.dir / "synchronise.conf", pair.local,
                          {"central": (pair.server.url, pair.key)},
                          remote_options={"compression": compression})
    [report] = push_once(config)
    assert report.ok, report.error
    assert report.streams["Reading"].set_aside == 0
    remote = make_engine(pair.remote)
    with remote.connect() as conn:
        stored = dict(conn.execute(select(Reading.time, Reading.value)
                                   .where(Reading.time >= day3, Reading.type == 0)).all())
        nulls = conn.execute(select(func.count()).select_from(Reading)
                             .where(Reading.value.is_(None))).scalar_one()
    assert [stored[r["time"]] for r in rows[:5]] == values
    assert nulls == len(rows) - 2
    assert_same(pair.local, pair.remote)
    remote.dispose()
    # Sent again (the cursor forgotten): every row is unchanged, none stored twice.
    local = make_engine(pair.local)
    with local.begin() as conn:
        conn.execute(text('DELETE FROM "SyncCursor"' if backend == "sqlite"
                          else "DELETE FROM SyncCursor"))
    local.dispose()
    [again] = push_once(config)
    assert again.ok, again.error
    assert_same(pair.local, pair.remote)


def test_two_remotes_one_down_the_other_stays_current(pair, make_db):
    seed_cogent_house(pair.local, days=1)
    config = write_config(
        pair.dir / "two.conf",
        pair.local,
        {
            "central": (pair.server.url, pair.key),
            "dead": ("http://127.0.0.1:9/rest/", "nokey"),
        },
    )
    reports = {r.remote: r for r in push_once(config)}
    assert reports["central"].ok and not reports["dead"].ok
    assert_same(pair.local, pair.remote)
    status = remote_status(config, config.remote("dead"), make_engine(pair.local))
    assert status.backlog["Reading"] > 0 and "nothing listens at" in (status.last_error or "")


def test_schema_mismatch_stops_before_pushing_and_says_which_side_to_upgrade(pair):
    seed_cogent_house(pair.local, days=0)
    remote = make_engine(pair.remote)
    with remote.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    remote.dispose()
    config = pair.config()
    sync = RemoteSync(config, config.remote("central"), make_engine(pair.local))
    with pytest.raises(SchemaMismatch, match="upgrade cogent-sync here"):
        sync.run()


def test_wrong_key_is_refused_with_advice(pair):
    seed_cogent_house(pair.local, days=0)
    pair.key = "cgk_wrong"
    [report] = push_once(pair.config())
    assert not report.ok and report.permanent
    assert "apikey" in (report.error or "")


def test_metadata_change_is_sent_once(pair):
    seed_cogent_house(pair.local, days=0)
    push_once(pair.config())
    local = make_engine(pair.local)
    ended = datetime(2026, 2, 1)
    with local.begin() as conn:
        conn.execute(
            update(table_of(House)).where(House.address == "1 Mill Lane").values(endDate=ended)
        )
    [report] = push_once(pair.config())
    assert report.ok
    remote = make_engine(pair.remote)
    with remote.connect() as conn:
        assert (
            conn.execute(select(House.endDate).where(House.address == "1 Mill Lane")).scalar_one()
            == ended
        )
        assert conn.execute(select(Node.id).where(Node.id == 101)).scalar_one() == 101
    remote.dispose()
    local.dispose()


def test_a_rebuilt_remote_database_is_mapped_again_instead_of_setting_rows_aside(pair):
    data = seed_cogent_house(pair.local, days=1)
    push_once(pair.config())
    remote = make_engine(pair.remote)
    with remote.begin() as conn:  # the server's operator restores an empty database
        for model in (Reading, NodeState, Sensor, Node, Location, House):
            conn.execute(table_of(model).delete())
    remote.dispose()
    insert_unchecked(
        pair.local,
        [
            {
                "nodeId": 101,
                "type": 0,
                "time": T0 + timedelta(days=4),
                "locationId": data.locations[101],
                "value": 18.25,
            },
        ],
    )
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert report.streams["Reading"].set_aside == 0
    remote = make_engine(pair.remote)
    assert count(remote, Reading) == 1
    remote.dispose()


def test_pusher_memory_does_not_grow_with_the_backlog(pair, backend):
    import tracemalloc

    if backend != "sqlite":
        pytest.skip("one backend is enough for a memory profile")

    def peak_push(days: int, seed: int) -> int:
        seed_cogent_house_more(pair.local, days, seed)
        tracemalloc.start()
        try:
            [report] = push_once(pair.config(pushlimit=1000))
            assert report.ok, report.error
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small = peak_push(1, 1)  # ~2.3k readings + node states
    large = peak_push(12, 2)  # ~28k more: twelve times the backlog
    assert large < small * 1.5, (small, large)
    assert_same(pair.local, pair.remote)


def seed_cogent_house_more(url: str, days: int, seed: int) -> None:
    """Add ``days`` more days of readings for the same nodes (after what is there)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        have = conn.execute(select(Reading.id).limit(1)).first()
    engine.dispose()
    if have is None:
        seed_cogent_house(url, days=days, seed=seed)
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        start = conn.execute(select(func.max(Reading.time))).scalar_one() + PERIOD
        locs = dict(conn.execute(select(Node.id, Node.locationId)).all())
        rows = [
            {
                "nodeId": n,
                "type": t,
                "locationId": loc,
                "value": 20.0 + (i % 50) / 10,
                "time": start + i * PERIOD,
            }
            for i in range(days * 288)
            for n, loc in locs.items()
            for t in (0, 2)
        ]
        conn.execute(insert(table_of(Reading)), rows)
    engine.dispose()


def test_a_sensor_type_that_means_something_else_on_the_remote_is_set_aside_with_both_meanings(
    pair,
):
    """Issue 14: the remote's type 2 has another meaning. Its readings are set aside locally
    with a reason naming both meanings; every other reading flows."""
    data = seed_cogent_house(pair.local, days=1)
    local, remote = make_engine(pair.local), make_engine(pair.remote)
    with local.begin() as conn:
        conn.execute(update(SensorType).where(SensorType.id == 2)
                     .values(name="Relative Humidity", code="RH", units="%"))
    with remote.begin() as conn:
        conn.execute(update(SensorType).where(SensorType.id == 2)
                     .values(name="Window Open", code="WIN", units="state"))
    [report] = push_once(pair.config())
    with local.connect() as conn:
        of_type_2 = conn.execute(
            select(func.count()).select_from(Reading).where(Reading.type == 2)).scalar_one()
        reasons = set(conn.execute(select(SyncRejected.reason)).scalars())
    assert of_type_2 > 0 and report.streams["Reading"].set_aside == of_type_2, report
    [reason] = reasons
    assert "'Window Open'" in reason and "'Relative Humidity'" in reason, reason
    with remote.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Reading)
                            .where(Reading.type == 2)).scalar_one() == 0
        remote_type_0 = conn.execute(select(func.count()).select_from(Reading)
                                     .where(Reading.type == 0)).scalar_one()
    assert remote_type_0 == data.readings - of_type_2
    config = pair.config()
    shown = format_status(remote_status(config, config.remote("central"), local))
    assert "'Window Open'" in shown, shown
    # The operator settles the meaning on the server; `retry` then delivers the rows.
    with remote.begin() as conn:
        conn.execute(update(SensorType).where(SensorType.id == 2)
                     .values(name="Relative Humidity", code="RH", units="%"))
    retrier = Retrier(config, config.remote("central"), local)
    try:
        again = retrier.run(None)
    finally:
        retrier.close()
    assert (again.delivered, again.still_aside) == (of_type_2, 0), again.describe()
    assert_same(pair.local, pair.remote)
    local.dispose()
    remote.dispose()
