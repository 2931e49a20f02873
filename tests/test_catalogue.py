"""Revision 0004: sensor, node and room type ids mean what they mean in Cogent-house, and
the rows of a database made with our earlier catalogue move with their types."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from base.db import make_engine
from base.migrate import upgrade
from models import NodeType, Reading, Room, RoomType, Sensor, SensorType, SyncIdMap
from tests.factories import place_node

T0 = datetime(2026, 1, 1)


def _meanings(engine, model, *columns):
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(select(model.id, *columns))}


def test_a_fresh_database_has_the_original_catalogue_ids_and_words(db_url):
    engine = make_engine(db_url)
    try:
        sensors = _meanings(engine, SensorType, SensorType.name, SensorType.code,
                            SensorType.units)
        assert sensors[20] == ("Delta CO2", "dCO2", "ppm/s")
        assert sensors[12] == ("Heat", "HET", "W")
        assert sensors[18] == ("Heat Energy", "HEN", "kWh")
        assert sensors[7] == ("Delta Battery Voltage", "dBT", "V/s")
        assert sensors[113] == ("Absolute Pressure", "ws_abs_pressure", "hpa")
        assert {22, 47, 99, 102, 113} <= set(sensors)
        assert sensors[200][0] == "Gas Volume" and sensors[202][0] == "Sound Level"
        nodes = _meanings(engine, NodeType, NodeType.name)
        assert nodes[0] == ("Base",) and nodes[1] == ("Current Cost",)
        assert nodes[13] == ("ClusterHead BB",)
        rooms = _meanings(engine, RoomType, RoomType.name)
        assert [rooms[i][0] for i in (1, 2, 3, 4)] == ["Bedroom", "Living Area", "Wet Room",
                                                       "Unocupied"]
    finally:
        engine.dispose()


def test_readings_sensors_nodes_and_rooms_of_our_old_catalogue_move_with_their_types(make_db):
    url = make_db("old", migrate=False)
    upgrade(url, "0003")
    engine = make_engine(url)
    try:
        # Under 0002, 12 was our "Heat Energy", 20 "Window Open", node type 2 our
        # "Electricity Monitor", room type 3 "Kitchen".
        placed = place_node(engine, 4001, room="Scullery", room_type=3, node_type=2,
                            sensor_types=(12, 20))
        with engine.begin() as conn:
            conn.execute(insert(Reading), [
                {"time": T0, "nodeId": 4001, "type": 12, "locationId": placed.location,
                 "value": 1.5},
                {"time": T0, "nodeId": 4001, "type": 20, "locationId": placed.location,
                 "value": 1.0},
            ])
            conn.execute(insert(SyncIdMap).values(remote="central", tableName="sensortype",
                                                  localId=12, remoteId=12))
    finally:
        engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            readings = dict(conn.execute(select(Reading.type, Reading.value)).all())
            assert readings == {18: 1.5, 45: 1.0}  # Heat Energy and Window State
            sensors = set(conn.execute(select(Sensor.sensorTypeId)).scalars())
            assert sensors == {18, 45}
            from models import Node
            assert conn.execute(select(Node.nodeTypeId)).scalar_one() == 1  # Current Cost
            room_type = conn.execute(select(Room.roomTypeId)).scalar_one()
            assert conn.execute(select(RoomType.name).where(RoomType.id == room_type)
                                ).scalar_one() == "Kitchen"
            assert conn.execute(select(SyncIdMap)).first() is None  # matched afresh
            parked = conn.execute(select(SensorType.id).where(SensorType.id > 1000)).first()
            assert parked is None
    finally:
        engine.dispose()


def test_a_database_that_already_has_the_original_meanings_keeps_them(make_db):
    url = make_db("adopted", migrate=False)
    upgrade(url, "0003")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # as an adopted Cogent-house database has them
            conn.execute(update(SensorType).where(SensorType.id == 12)
                         .values(name="Heat", code="HET", units="W"))
            conn.execute(update(SensorType).where(SensorType.id == 20)
                         .values(name="Delta CO2", code="dCO2", units="ppm/s"))
        placed = place_node(engine, 4002, sensor_types=(12,))
        with engine.begin() as conn:
            conn.execute(insert(Reading).values(time=T0, nodeId=4002, type=12,
                                                locationId=placed.location, value=300.0))
    finally:
        engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(Reading.type)).scalar_one() == 12
            assert conn.execute(select(SensorType.name).where(SensorType.id == 12)
                                ).scalar_one() == "Heat"
    finally:
        engine.dispose()
