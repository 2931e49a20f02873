"""The simulator: realistic, deterministic, idempotent, and flat in memory."""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import tracemalloc
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from base.cli import main
from base.db import make_engine
from base.errors import PermanentError
from base.ingest import IngestError
from base.simulate import (
    Plan,
    backfill,
    ensure_metadata,
    generate,
    run_realtime,
    simulate_days,
    utcnow,
)
from models import (
    Deployment,
    House,
    Location,
    Node,
    NodeState,
    NodeType,
    Reading,
    Room,
    Sensor,
    SensorType,
)

T0 = datetime(2026, 1, 5)
ALL_SENSORS = ("T", "RH", "CO2", "BAT", "PAR", "TSR", "P")
# Physical ranges by sensor type id (T, RH, BAT, CO2, POW, PAR, TSR, P).
RANGES = {
    0: (-30, 50),
    2: (0, 100),
    6: (1.8, 3.4),
    8: (300, 5000),
    11: (0, 10_000),
    4: (0, 100_000),
    5: (0, 150_000),
    201: (900, 1100),  # our Pressure (not in the original catalogue)
}
DECIMALS = {0: 2, 2: 1, 6: 3, 8: 0, 11: 0, 4: 0, 5: 0, 201: 1}


def layout(plan: Plan) -> list:
    """Node specs without a database, for the pure generator."""
    from base.simulate import NodeSpec, room_of

    specs = []
    for h in range(1, plan.houses + 1):
        ids = [plan.node_base + 100 * h + s for s in range(1, plan.rooms + 1)]
        for r in range(plan.rooms):
            name, kind = room_of(r)
            sensors = ((0, "T"), (2, "RH"), (8, "CO2"), (6, "BAT"))
            specs.append(NodeSpec(ids[r], h, name, kind, r + 1, 1, sensors, ids[0] - 1, tuple(ids)))
    return specs


def rows_of(packets) -> list[tuple]:
    out = []
    for p in packets:
        out.extend((r["nodeId"], r["type"], r["time"], r["value"]) for r in p.reading_rows())
    return out


# --------------------------------------------------------------------- the data in the database


def test_simulated_rows_pass_natural_key_and_reference_checks(engine):
    plan = Plan(houses=2, rooms=5, sensors=ALL_SENSORS, start=T0, days=1, seed=7)
    result = backfill(engine, plan, batch_size=1000)
    assert result.readings > 2 * 5 * 7 * 250
    with engine.connect() as conn:
        nodes = {n.id: n for n in conn.execute(select(Node))}
        types = set(conn.execute(select(SensorType.id)).scalars())
        sensors = {tuple(r) for r in conn.execute(select(Sensor.nodeId, Sensor.sensorTypeId))}
        node_types = set(conn.execute(select(NodeType.id)).scalars())
        locations = {loc.id: loc for loc in conn.execute(select(Location))}
        houses = {h.id: h for h in conn.execute(select(House))}
        rooms = set(conn.execute(select(Room.id)).scalars())
        deployments = set(conn.execute(select(Deployment.id)).scalars())
        readings = conn.execute(
            select(
                Reading.nodeId,
                Reading.type,
                Reading.time,
                Reading.locationId,
                Reading.value,
                Reading.syncSeq,
            )
        ).all()
        states = conn.execute(select(NodeState)).all()
        dupes = conn.execute(
            select(Reading.nodeId, Reading.type, Reading.time)
            .group_by(Reading.nodeId, Reading.type, Reading.time)
            .having(func.count() > 1)
        ).all()

    assert len(readings) == result.readings
    assert len(states) == result.nodestates
    assert dupes == []
    for loc in locations.values():
        assert loc.roomId in rooms and loc.houseId in houses
        assert houses[loc.houseId].deploymentId in deployments
    for n in nodes.values():
        assert n.locationId in locations and n.nodeTypeId in node_types
    microseconds = 0
    for r in readings:
        assert r.nodeId in nodes, r
        assert r.type in types, r
        assert (r.nodeId, r.type) in sensors, r
        assert r.locationId == nodes[r.nodeId].locationId, r
        assert r.syncSeq is None
        lo, hi = RANGES[r.type]
        assert lo <= r.value <= hi, r
        assert T0 <= r.time < T0 + timedelta(days=1, seconds=plan.period + plan.jitter)
        microseconds += r.time.microsecond != 0
    assert microseconds > 0.9 * len(readings)
    assert {r.type for r in readings} == {0, 2, 8, 6, 4, 5, 201, 11}
    assert len({n for n in nodes}) == 2 * 6
    assert len(set((s.nodeId, s.time, s.seq_num) for s in states)) == len(states)
    for s in states:
        assert s.nodeId in nodes and s.syncSeq is None
        assert 0 <= s.seq_num < 256 and -100 <= s.rssi <= -30 and s.parent is not None


def test_rerunning_a_backfill_changes_nothing_and_extending_it_adds_only_the_new_part(engine):
    plan = Plan(rooms=2, start=T0, days=0.5, seed=3)
    first = backfill(engine, plan)

    def snapshot():
        with engine.connect() as conn:
            meta = [
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (Deployment, House, Room, Location, Node, Sensor)
            ]
            rows = {
                (r.nodeId, r.type, r.time): (r.id, r.value)
                for r in conn.execute(
                    select(Reading.id, Reading.nodeId, Reading.type, Reading.time, Reading.value)
                )
            }
            states = conn.execute(select(func.count()).select_from(NodeState)).scalar_one()
        return meta, rows, states

    meta, rows, states = snapshot()
    assert len(rows) == first.readings and states == first.nodestates
    backfill(engine, plan)
    assert snapshot() == (meta, rows, states)

    longer = Plan(rooms=2, start=T0, days=1, seed=3)
    backfill(engine, longer)
    meta2, rows2, _ = snapshot()
    assert meta2 == meta
    assert {k: v for k, v in rows2.items() if k in rows} == rows  # old rows untouched
    half = T0 + timedelta(days=0.5)
    new = [k for k in rows2 if k not in rows]
    assert new and all(t >= half for _, _, t in new)
    expected = rows_of(generate(longer, first.nodes, T0, T0 + timedelta(days=1)))
    assert len(rows2) == len(expected)


def test_same_seed_gives_the_same_rows_and_another_seed_does_not():
    plan = Plan(rooms=4, seed=11)
    specs = layout(plan)
    a = rows_of(generate(plan, specs, T0, T0 + timedelta(days=2)))
    b = rows_of(generate(plan, specs, T0, T0 + timedelta(days=2)))
    c = rows_of(generate(Plan(rooms=4, seed=12), specs, T0, T0 + timedelta(days=2)))
    assert a == b
    assert len(a) > 1000
    assert a != c


def test_two_halves_of_a_backfill_equal_the_whole():
    plan = Plan(rooms=3, seed=5)
    specs = layout(plan)
    mid, end = T0 + timedelta(days=1, hours=7), T0 + timedelta(days=3)
    whole = rows_of(generate(plan, specs, T0, end))
    halves = rows_of(generate(plan, specs, T0, mid)) + rows_of(generate(plan, specs, mid, end))
    assert sorted(halves, key=repr) == sorted(whole, key=repr)


def test_packets_come_in_receipt_time_order_with_jitter_and_microseconds():
    plan = Plan(rooms=4, seed=2, missing=0, quiet_per_day=0)
    packets = list(generate(plan, layout(plan), T0, T0 + timedelta(days=1)))
    times = [p.time for p in packets]
    assert times == sorted(times)
    assert len(packets) == 4 * 288
    by_node = defaultdict(list)
    for p in packets:
        by_node[p.node.id].append(p)
    for seq in by_node.values():
        gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(seq)]
        assert all(plan.period - plan.jitter <= g <= plan.period + plan.jitter for g in gaps)
        assert len({g for g in gaps}) > 10  # jittered, not a perfect grid
        nums = [p.seq_num for p in seq]
        assert all((b - a) % 256 == 1 for a, b in itertools.pairwise(nums))
    assert sum(p.time.microsecond != 0 for p in packets) > 0.99 * len(packets)


def test_values_are_quantised_to_each_sensors_resolution():
    plan = Plan(rooms=2, seed=4)
    specs = layout(plan)
    for p in generate(plan, specs, T0, T0 + timedelta(days=1)):
        for tid, value in p.values:
            assert round(value, DECIMALS[tid]) == value


def test_daily_shapes_co2_at_night_heating_in_winter_humidity_against_temperature():
    plan = Plan(rooms=3, seed=9, missing=0, quiet_per_day=0)
    specs = layout(plan)  # Living Room, Kitchen, Bedroom 1
    by = defaultdict(list)
    for p in generate(plan, specs, T0, T0 + timedelta(days=14)):
        hour = p.time.hour
        for tid, value in p.values:
            by[(p.node.room, tid, hour)].append(value)

    def mean(room, tid, hours):
        return statistics.mean(v for h in hours for v in by[(room, tid, h)])

    assert mean("Bedroom 1", 8, [2, 3, 4]) > mean("Bedroom 1", 8, [13, 14, 15]) + 300
    assert mean("Living Room", 8, [20, 21]) > mean("Living Room", 8, [4, 5]) + 200
    assert mean("Living Room", 0, [19, 20]) > mean("Living Room", 0, [3, 4]) + 1.0
    temps = [v for h in range(24) for v in by[("Living Room", 0, h)]]
    hums = [v for h in range(24) for v in by[("Living Room", 2, h)]]
    assert statistics.correlation(temps, hums) < -0.5


def test_seasons_batteries_and_power_spikes():
    plan = Plan(rooms=1, seed=6, missing=0, quiet_per_day=0)
    specs = layout(plan)
    winter = [p for p in generate(plan, specs, datetime(2026, 1, 20), datetime(2026, 1, 22))]
    summer = [p for p in generate(plan, specs, datetime(2026, 7, 20), datetime(2026, 7, 22))]

    def mean_t(packets):
        return statistics.mean(v for p in packets for t, v in p.values if t == 0)

    assert mean_t(summer) > mean_t(winter) + 2
    batteries = []  # the mean of one hour's samples every 10 days
    for day in range(0, 120, 10):
        hour = generate(plan, specs, T0 + timedelta(days=day), T0 + timedelta(days=day, hours=1))
        batteries.append(statistics.mean(v for p in hour for t, v in p.values if t == 6))
    drops = sum(b < a for a, b in itertools.pairwise(batteries))
    assert drops >= len(batteries) - 2  # falling, but for a battery change
    assert all(2.0 <= v <= 3.3 for v in batteries)


def test_power_meter_shows_baseload_and_spikes(sqlite_url):
    engine = make_engine(sqlite_url)
    result = backfill(engine, Plan(rooms=1, start=T0, days=3, seed=8))
    with engine.connect() as conn:
        power = list(conn.execute(select(Reading.value).where(Reading.type == 11)).scalars())
    assert result.readings > len(power) > 2 * 288
    assert min(power) > 40 and statistics.median(power) < 800
    assert sum(v > 1500 for v in power) >= 5
    engine.dispose()


def test_nodes_go_quiet_for_hours_and_some_samples_go_missing():
    plan = Plan(rooms=4, seed=13, missing=0.02, quiet_per_day=0.2)
    specs = layout(plan)
    by_node = defaultdict(list)
    for p in generate(plan, specs, T0, T0 + timedelta(days=20)):
        by_node[p.node.id].append(p.time)
    expected = 20 * 288
    long_gaps = 0
    for times in by_node.values():
        assert 0.85 * expected < len(times) < expected
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        long_gaps += sum(g >= 3600 for g in gaps)
        assert any(500 < g < 1000 for g in gaps)  # a single lost packet
    assert long_gaps >= 4


def test_memory_stays_flat_however_many_days_are_backfilled(sqlite_url):
    engine = make_engine(sqlite_url)
    peaks = {}
    for days, start in ((2, T0), (8, T0 + timedelta(days=30))):
        plan = Plan(rooms=1, start=start, days=days, seed=1)
        ensure_metadata(engine, plan, T0)
        backfill(engine, Plan(rooms=1, start=T0 - timedelta(days=1), days=0.1))  # warm caches
        tracemalloc.start()
        result = backfill(engine, plan, batch_size=1000)
        peaks[days] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.readings > days * 5 * 250
    engine.dispose()
    assert peaks[8] < peaks[2] * 1.25, peaks


def test_progress_is_reported_per_batch_and_ends_at_the_end(sqlite_url):
    engine = make_engine(sqlite_url)
    seen = []
    result = backfill(
        engine, Plan(rooms=2, start=T0, days=1, seed=1), batch_size=500, progress=seen.append
    )
    assert len(seen) >= (result.readings + result.nodestates) // 500
    assert [p.fraction for p in seen] == sorted(p.fraction for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].until == T0 + timedelta(days=1)
    assert seen[-1].readings == result.readings and seen[-1].nodestates == result.nodestates
    engine.dispose()


def test_simulate_days_backfills_one_house_ending_now(sqlite_url):
    engine = make_engine(sqlite_url)
    seen = []
    end = datetime(2026, 3, 1, 12, 2)
    result = simulate_days(engine, 2, end=end, progress=seen.append)
    assert result.end == datetime(2026, 3, 1, 12, 0) and result.start == datetime(2026, 2, 27, 12)
    assert len(result.nodes) == 5 and seen and seen[-1].fraction == 1.0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(House)).scalar_one() == 1
        assert conn.execute(select(func.max(Reading.time))).scalar_one() < end
    engine.dispose()


# --------------------------------------------------------------------- metadata and nodes


def test_a_node_id_already_placed_elsewhere_is_refused_not_moved(sqlite_url):
    engine = make_engine(sqlite_url)
    ensure_metadata(engine, Plan(deployment="Real", rooms=2))
    with pytest.raises(IngestError, match="node 1101 already exists"):
        ensure_metadata(engine, Plan(deployment="Other", rooms=2))
    ensure_metadata(engine, Plan(deployment="Other", rooms=2, node_base=5000))
    engine.dispose()


def test_a_node_first_heard_without_location_gets_placed_by_the_simulator(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(Node.__table__.insert().values(id=1101))
    nodes = ensure_metadata(engine, Plan(rooms=1))
    with engine.connect() as conn:
        row = conn.execute(select(Node).where(Node.id == 1101)).one()
    assert row.locationId == nodes[0].location_id and row.nodeTypeId == 2  # CO2
    engine.dispose()


@pytest.mark.parametrize(
    "plan, message",
    [
        (Plan(houses=0), "houses"),
        (Plan(rooms=50, nodes_per_room=2), "nodes per house"),
        (Plan(period=0), "period"),
        (Plan(missing=1.5), "missing"),
        (Plan(sensors=("VOC",)), "no model for sensor type 'VOC'"),
        (Plan(sensors=("nope",)), "unknown sensor type 'nope'"),
    ],
)
def test_a_bad_plan_is_refused_with_its_reason(sqlite_url, plan, message):
    engine = make_engine(sqlite_url)
    with pytest.raises(PermanentError, match=message):
        ensure_metadata(engine, plan)
    engine.dispose()


# --------------------------------------------------------------------- real time


def test_realtime_writes_the_same_rows_a_backfill_would_and_stops_when_told(sqlite_url):
    engine = make_engine(sqlite_url)
    plan = Plan(rooms=2, seed=21)
    stop = threading.Event()
    seen = []

    def progress(p):
        seen.append(p)
        if len(seen) == 40:
            stop.set()

    # A clock far ahead makes every sample due at once.
    result = run_realtime(
        engine, plan, stop=stop, since=T0, progress=progress, clock=lambda: T0 + timedelta(days=30)
    )
    assert result.nodestates == 40 and seen[-1].fraction is None
    with engine.connect() as conn:
        got = sorted(
            tuple(r)
            for r in conn.execute(select(Reading.nodeId, Reading.type, Reading.time, Reading.value))
        )
    expected = sorted(
        rows_of(p for p, _ in zip(generate(plan, result.nodes, T0), range(40), strict=False))
    )
    assert got == expected
    engine.dispose()


def test_realtime_waits_for_each_sample_and_ends_after_its_duration(sqlite_url):
    engine = make_engine(sqlite_url)
    plan = Plan(rooms=3, period=1, jitter=0.2, missing=0, quiet_per_day=0)
    started = utcnow()
    result = run_realtime(engine, plan, duration=2.5)
    finished = utcnow()
    assert 2.4 <= result.elapsed < 4
    with engine.connect() as conn:
        times = list(conn.execute(select(Reading.time)).scalars())
    assert 3 <= result.nodestates <= 4 * 4
    assert all(started <= t <= finished for t in times)
    engine.dispose()


# --------------------------------------------------------------------- the command line


def test_cli_simulate_migrates_a_fresh_database_and_backfills(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    rc = main(
        [
            "simulate",
            "--db",
            url,
            "--days",
            "0.5",
            "--rooms",
            "2",
            "--houses",
            "2",
            "--start",
            "2026-02-01T00:00:00Z",
            "--seed",
            "4",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "readings" in captured.out and "6 nodes" in captured.out
    assert f"database {url}: simulating 2 house(s)" in captured.err.splitlines()[0]
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text('SELECT count(*) FROM "Reading"')).scalar_one()
        first = conn.execute(select(func.min(Reading.time))).scalar_one()
    assert n > 2 * 2 * 4 * 100 and first >= datetime(2026, 2, 1)
    engine.dispose()


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert main(["simulate", "--db", url, "--days", "1", "--sensors", "T,XX"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cogent-base: error: unknown sensor type 'XX'")
    assert not any("Traceback" in line for line in err)
    assert main(["simulate", "-c", str(tmp_path / "missing.conf")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["simulate", "--db", url, "--rooms", "0"]) == 2
    assert "rooms = 0" in capsys.readouterr().err


def test_every_subcommand_and_option_has_help(capsys):
    from base.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            for opt in sub._actions:
                assert opt.help, f"{name} {opt.option_strings} has no help"
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "--realtime" in capsys.readouterr().out


def test_quantised_values_are_not_nan():
    plan = Plan(rooms=8, sensors=ALL_SENSORS, seed=3)
    from base.simulate import NodeSpec, room_of

    specs = []
    for r in range(8):
        name, kind = room_of(r)
        sensors = tuple(zip((0, 2, 8, 6, 4, 5, 201), ALL_SENSORS, strict=True))
        specs.append(NodeSpec(1100 + r, 1, name, kind, r, 1, sensors, 1100, ()))
    for p in generate(plan, specs, datetime(2026, 6, 1), datetime(2026, 6, 3)):
        for tid, v in p.values:
            assert math.isfinite(v)
            lo, hi = RANGES[tid]
            assert lo <= v <= hi, (p.node.room, tid, v)
