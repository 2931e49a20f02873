"""alembic upgrade head adopts a Cogent-house database in place, whatever original revision
(or none) it is at: every row kept, ids kept, values as they were stored."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text

from base.adopt import PREFIX
from base.db import make_engine
from base.migrate import alembic_config, current_revision, head_revision, upgrade
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
from tests.adoption.originals import T0, build

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
def original(backend: str, make_db):
    if backend == "postgresql":
        pytest.skip("Cogent-house ran on MySQL (and SQLite); there is no PostgreSQL original")

    def make(kind: str, revision: str | None) -> tuple[str, Engine]:
        url = make_db(f"orig_{kind}", migrate=False)
        engine = make_engine(url)
        build(engine, kind, revision)
        return url, engine

    return make


def _readings(engine: Engine) -> dict[tuple[int, int], tuple[int | None, float | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Reading.nodeId, Reading.type, Reading.locationId,
                                   Reading.value, Reading.time)).all()
    assert all(r.time.replace(microsecond=0) >= T0 for r in rows)
    return {(r.nodeId, r.type): (r.locationId, r.value) for r in rows}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.mark.parametrize("revision", ["1dce0115d073", "303009329387", None])
def test_a_central_server_at_the_original_head_is_adopted_with_every_row(original, revision):
    url, engine = original("master", revision)
    upgrade(url)
    engine.dispose()
    assert current_revision(engine) == head_revision()
    readings = _readings(engine)
    assert readings == {
        (101, 0): (1, 21.3),  # single-precision 21.3 is 21.3 again, not 21.299999237060547
        (101, 2): (1, 55.5),
        (101, 8): (1, None),  # NULL is data
        (102, 8): (2, 123456.7),
        (103, 0): (None, 19.9),  # a node nobody placed
        (104, 0): (3, 20.1),
        (105, 0): (4, -12.345678),
        (999, 0): (1, 18.2),  # its node was never recorded: created bare
    }
    with engine.connect() as conn:
        houses = {h.id: (h.deploymentId, h.address) for h in conn.execute(select(House))}
        assert houses == {1: (1, "1 Elm Road"), 2: (None, "2 Oak Road"), 3: (2, None)}
        deployments = dict(conn.execute(select(Deployment.id, Deployment.name)).all())
        assert deployments == {1: "Trial", 2: "Trial (deployment 2)"}  # renamed, not merged
        rooms = dict(conn.execute(select(Room.id, Room.name)).all())
        assert rooms == {1: "Master Bedroom", 2: "Living Room", 3: "Living Room (room 3)"}
        assert conn.execute(select(Location.id, Location.houseId, Location.roomId)
                            .order_by(Location.id)).all() == [(1, 1, 1), (2, 1, 2), (3, 2, 3),
                                                               (4, 3, 1)]
        nodes = dict(conn.execute(select(Node.id, Node.locationId)).all())
        assert nodes == {101: 1, 102: 2, 103: None, 104: 3, 105: 4, 999: None}
        sensors = {s.id: (s.calibrationSlope, s.calibrationOffset)
                   for s in conn.execute(select(Sensor))}
        assert sensors == {1: (1.0, 0.0), 2: (None, None)}
        types = {t.id: (t.name, t.code) for t in conn.execute(select(SensorType))}
        assert types[20] == ("Delta CO2", "dCO2") and types[200][0] == "Gas Volume"
        assert types[40] == ("Opti Smart Count", "imp")
        node_types = dict(conn.execute(select(NodeType.id, NodeType.period)).all())
        assert node_types[0] == 307200  # kept as the original stored it
        states = conn.execute(select(NodeState.nodeId, NodeState.seq_num, NodeState.rssi)
                              .order_by(NodeState.nodeId, NodeState.seq_num)).all()
        assert states == [(101, 0, None), (101, 1, -70), (102, 3, -60)]
        # Tables we do not model are left as they were, rows and all.
        for table, rows in (("Occupier", 1), ("NodeHistory", 1), ("Weather", 1),
                            ("PushStatus", 1), ("Server", 1)):
            q = conn.dialect.identifier_preparer.quote(table)
            assert conn.execute(text(f"SELECT COUNT(*) FROM {q}")).scalar_one() == rows
    # Two NodeState rows repeat one natural key: the repeat is kept aside, not lost.
    left = {t for t in _tables(engine) if t.startswith(PREFIX)}
    assert left == {PREFIX + "NodeState"}
    if engine.dialect.name != "sqlite":  # MyISAM and latin1 become InnoDB and utf8mb4
        with engine.connect() as conn:
            engines = dict(conn.execute(text(
                "SELECT TABLE_NAME, CONCAT(ENGINE, ' ', TABLE_COLLATION) FROM "
                "information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN "
                "('Reading', 'NodeState')")).all())
        assert all(v.startswith("InnoDB utf8mb4") for v in engines.values()), engines
    command.check(alembic_config(url))  # no drift, whatever else the database holds
    engine.dispose()


@pytest.mark.parametrize("revision", ["1a04848f8857", "b90c0470e9da"])  # flat head, merge
def test_the_flat_branch_without_nodestate_ids_is_adopted(original, revision):
    url, engine = original("flat", revision)
    upgrade(url)
    engine.dispose()
    with engine.connect() as conn:
        states = conn.execute(select(NodeState.nodeId, NodeState.seq_num)
                              .order_by(NodeState.nodeId)).all()
    assert states == [(101, 1), (102, 3)]
    assert not {t for t in _tables(engine) if t.startswith(PREFIX)}
    command.check(alembic_config(url))
    engine.dispose()


@pytest.mark.parametrize("revision", ["4a90237e5674", "13037206f335", None])
def test_a_database_from_before_locations_gets_one_location_per_house_and_room(original,
                                                                                revision):
    url, engine = original("pre-location", revision)
    upgrade(url)
    engine.dispose()
    with engine.connect() as conn:
        locations = {(loc.houseId, loc.roomId): loc.id
                     for loc in conn.execute(select(Location))}
        assert set(locations) == {(1, 1), (1, 2)}
        nodes = dict(conn.execute(select(Node.id, Node.locationId)).all())
    assert nodes == {101: locations[(1, 1)], 102: locations[(1, 2)], 103: None}
    readings = {(r.nodeId, r.time.minute): (r.locationId, r.value) for r in
                engine.connect().execute(select(Reading)).all()}
    assert readings == {(101, 0): (locations[(1, 1)], 21.3), (102, 0): (locations[(1, 2)], 19.5),
                        (103, 0): (None, 18.0), (101, 5): (locations[(1, 1)], None)}
    command.check(alembic_config(url))
    engine.dispose()


@pytest.mark.slow  # starts a subprocess
def test_a_revision_neither_ours_nor_cogent_houses_is_one_line_and_changes_nothing(
        original, tmp_path):
    url, engine = original("master", "abcdef123456")
    before = _tables(engine)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "-x", f"url={url}",
         "upgrade", "head"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "abcdef123456" in result.stderr
    assert _tables(engine) == before
    engine.dispose()
