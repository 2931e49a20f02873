"""POST /rest/sync/map/: natural-key matching, create-if-missing, updates, ownership, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from models import Deployment, House, Node, NodeType, Room, RoomType, Sensor, SensorType
from tests.live_server import create_key
from tests.rest.conftest import (
    FIVE_MIN,
    T0,
    client,
    make_site,
    map_body,
    next_node_id,
    readings_batch,
    unique,
)


def test_map_creates_missing_rows_and_returns_server_ids(server, db):
    site = make_site(server)
    with db.connect() as conn:
        house = conn.execute(select(House).where(House.id == site.house)).one()
        node = conn.execute(select(Node).where(Node.id == site.node)).one()
        sensor = conn.execute(select(Sensor).where(Sensor.id == site.sensor)).one()
    assert house.address == site.address and house.deploymentId == site.deployment
    assert node.locationId == site.location and node.nodeTypeId == 0
    assert sensor.nodeId == site.node and sensor.sensorTypeId == 0


def test_map_is_idempotent_and_matches_by_natural_key_not_client_key(server, db):
    key = create_key(server.db_url, unique("site"))
    http = client(server, key)
    node = next_node_id()
    body = map_body(unique("dep"), unique("addr"), unique("room"), node)
    first = http.post("sync/map/", json=body).json()
    # Another base station's local ids differ; the natural keys are the same.
    dep, addr, room = (
        body["deployment"][0]["name"],
        body["house"][0]["address"],
        body["room"][0]["name"],
    )
    renumbered = {
        "roomtype": [{"key": 41, "name": "Kitchen"}],
        "room": [{"key": 42, "name": room, "roomType": 41}],
        "deployment": [{"key": 43, "name": dep}],
        "house": [{"key": 44, "deployment": 43, "address": addr}],
        "location": [{"key": 45, "house": 44, "room": 42}],
        "sensortype": [{"key": 0}],
        "nodetype": [{"key": 0}],
        "node": [{"key": node, "location": 45, "nodeType": 0}],
        "sensor": [{"key": 46, "node": node, "sensorType": 0}],
    }
    second = http.post("sync/map/", json=renumbered).json()
    assert second["errors"] == []
    assert second["house"]["44"] == first["house"]["4"]
    assert second["location"]["45"] == first["location"]["5"]
    assert second["sensor"]["46"] == first["sensor"]["6"]
    with db.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(House)
            .where(House.address == body["house"][0]["address"])
        ).scalar_one()
    assert n == 1


def test_map_updates_mutable_fields_when_they_differ(server, db):
    site = make_site(server)
    with db.connect() as conn:
        dep_name = conn.execute(
            select(Deployment.name).where(Deployment.id == site.deployment)
        ).scalar_one()
        room_name = conn.execute(select(Room.name).where(Room.id == site.room)).scalar_one()
    body = map_body(dep_name, site.address, room_name, site.node)
    body["deployment"][0]["description"] = "changed"
    body["house"][0]["endDate"] = "2026-06-01T00:00:00Z"
    body["sensor"][0]["calibrationSlope"] = 2.5
    reply = site.map(body).json()
    assert reply["errors"] == []
    assert reply["house"]["4"] == site.house
    with db.connect() as conn:
        assert (
            conn.execute(
                select(Deployment.description).where(Deployment.id == site.deployment)
            ).scalar_one()
            == "changed"
        )
        assert (
            conn.execute(select(House.endDate).where(House.id == site.house)).scalar_one().month
            == 6
        )
        assert (
            conn.execute(
                select(Sensor.calibrationSlope).where(Sensor.id == site.sensor)
            ).scalar_one()
            == 2.5
        )


def test_another_sites_house_and_its_dependants_are_refused_per_row(server, db):
    a = make_site(server)
    with db.connect() as conn:
        dep_name = conn.execute(
            select(Deployment.name).where(Deployment.id == a.deployment)
        ).scalar_one()
    b = make_site(server)
    body = map_body(dep_name, a.address, unique("room"), next_node_id())
    body["house"].append({"key": 40, "deployment": 3, "address": unique("own")})
    reply = b.map(body)
    assert reply.status_code == 200
    doc = reply.json()
    assert "4" not in doc["house"] and "40" in doc["house"]
    errors = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    assert "is not this key's site's" in errors[("house", 4)]
    assert a.address not in errors[("house", 4)] and dep_name not in errors[("house", 4)]
    assert "house 4 was refused" in errors[("location", 5)]
    assert "location 5 was refused" in errors[("node", body["node"][0]["key"])]
    assert ("sensor", 6) in errors
    assert doc["deployment"]["3"] == a.deployment  # shared rows are still mapped


def test_a_node_located_in_another_sites_house_is_refused(server, db):
    a, b = make_site(server), make_site(server)
    body = map_body(unique("dep"), unique("addr"), unique("room"), a.node)
    doc = b.map(body).json()
    reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    assert "another site" in reasons[("node", a.node)]
    with db.connect() as conn:
        assert (
            conn.execute(select(Node.locationId).where(Node.id == a.node)).scalar_one()
            == a.location
        )


def test_malformed_map_requests_are_refused_whole_and_write_nothing(server, db):
    site = make_site(server)
    address = unique("never")
    good = map_body(unique("dep"), address, unique("room"), next_node_id())
    cases = [
        ({**good, "gizmo": []}, "unknown type"),
        ({**good, "location": [{"key": 5, "house": 99, "room": 2}]}, "not in the request"),
        ({**good, "house": [{"key": 4, "deployment": 3}]}, "missing address"),
        (
            {**good, "house": [{"key": 4, "deployment": 3, "address": "x", "colour": 1}]},
            "unknown field",
        ),
        ({**good, "room": [{"key": 2, "name": "a"}, {"key": 2, "name": "b"}]}, "twice"),
        ({**good, "deployment": [{"key": 3, "name": "d", "startDate": "yesterday"}]}, "ISO-8601"),
        ({**good, "node": [{"key": "a"}]}, "not an integer"),
        ([], "JSON object"),
    ]
    for body, words in cases:
        reply = site.map(body)
        assert reply.status_code == 400, (body, reply.text)
        assert words in reply.json()["error"], reply.json()
    with db.connect() as conn:
        assert conn.execute(select(House).where(House.address == address)).first() is None


def test_concurrent_creation_of_the_same_house_gives_one_row_and_the_same_id(server, db):
    site_name = unique("site")
    clients = [client(server, create_key(server.db_url, site_name)) for _ in range(2)]
    # A second site creates the same deployment and room at the same moment.
    other = client(server, create_key(server.db_url, unique("site")))
    rounds = 15
    for i in range(rounds):
        dep, room = unique(f"dep{i}"), unique("room")
        address = unique("house")
        bodies = [map_body(dep, address, room, next_node_id()) for _ in clients]
        other_body = map_body(dep, unique("elsewhere"), room, next_node_id())
        barrier = threading.Barrier(3)

        def post(http, body, barrier=barrier):
            barrier.wait()
            return http.post("sync/map/", json=body)

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post, h, b) for h, b in zip(clients, bodies, strict=True)]
            futures.append(pool.submit(post, other, other_body))
            replies = [f.result() for f in futures]
        docs = [r.json() for r in replies]
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        assert all(d["errors"] == [] for d in docs), docs
        assert docs[0]["house"]["4"] == docs[1]["house"]["4"]
        assert docs[0]["location"]["5"] == docs[1]["location"]["5"]
        assert len({d["deployment"]["3"] for d in docs}) == 1
        assert len({d["room"]["2"] for d in docs}) == 1
        with db.connect() as conn:
            houses = conn.execute(
                select(func.count()).select_from(House).where(House.address == address)
            ).scalar_one()
            deps = conn.execute(
                select(func.count()).select_from(Deployment).where(Deployment.name == dep)
            ).scalar_one()
        assert (houses, deps) == (1, 1)


def test_readonly_key_cannot_map(server):
    http = client(server, create_key(server.db_url, None, "readonly"))
    reply = http.post("sync/map/", json=map_body("d", "a", "r", next_node_id()))
    assert reply.status_code == 403
    assert "cannot write" in reply.json()["error"]


def test_admin_key_maps_any_house(server):
    a = make_site(server)
    admin = client(server, create_key(server.db_url, None, "admin"))
    with admin:
        dep = admin.get(f"deployment/{a.deployment}").json()["name"]
        room = admin.get(f"room/{a.room}").json()["name"]
        doc = admin.post("sync/map/", json=map_body(dep, a.address, room, a.node)).json()
    assert doc["errors"] == []
    assert doc["house"]["4"] == a.house


# --------------------------------------------------------------------------- the catalogue


def _catalogue_row(admin, kind: str, **values) -> int:
    reply = admin.post(f"{kind}/", json=values)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def _with_types(body: dict, sensor_type: dict, node_type: dict | None = None) -> dict:
    """``body`` whose sensor of type 0 gets a sibling of ``sensor_type``."""
    body["sensortype"] = [{"key": 0}, sensor_type]
    node = body["node"][0]["key"]
    body["sensor"].append({"key": 7, "node": node, "sensorType": sensor_type["key"]})
    if node_type is not None:
        body["nodetype"] = [node_type]
        body["node"][0]["nodeType"] = node_type["key"]
    return body


def test_a_catalogue_clash_is_refused_by_meaning_whoever_calls(server, db):
    """The server's sensor type N is "Window Open"; a request's N is "Delta CO2": that type
    and the sensors of it are refused with both meanings, everything else maps."""
    admin = client(server, create_key(server.db_url, None, "admin"))
    n = 60_000 + next_node_id()
    _catalogue_row(admin, "sensortype", id=n, name="Window Open", code="WIN", units="state")
    theirs = {"key": n, "name": "Delta CO2", "code": "dCO2", "units": "ppm/s"}
    for http in (make_site(server).http, admin):
        body = _with_types(map_body(unique("dep"), unique("a"), unique("r"), next_node_id()),
                           theirs)
        doc = http.post("sync/map/", json=body).json()
        reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
        assert set(reasons) == {("sensortype", n), ("sensor", 7)}, doc
        clash = reasons[("sensortype", n)]
        assert "'Window Open'" in clash and "'Delta CO2'" in clash, clash
        assert "'WIN'" in clash and "'ppm/s'" in clash, clash
        assert f"its sensortype {n} was refused" in reasons[("sensor", 7)]
        assert str(n) not in doc["sensortype"] and "7" not in doc["sensor"]
        assert doc["sensor"]["6"] and doc["node"] and doc["house"]["4"], doc
    with db.connect() as conn:
        row = conn.execute(select(SensorType).where(SensorType.id == n)).one()
    assert (row.name, row.code, row.units) == ("Window Open", "WIN", "state")


def test_a_node_type_clash_refuses_the_node_and_what_hangs_off_it(server):
    admin = client(server, create_key(server.db_url, None, "admin"))
    n = 60_000 + next_node_id()
    _catalogue_row(admin, "nodetype", id=n, name="Window Sensor")
    site = make_site(server)
    node = next_node_id()
    body = map_body(unique("dep"), unique("a"), unique("r"), node)
    body["nodetype"] = [{"key": n, "name": "Current Cost"}]
    body["node"][0]["nodeType"] = n
    doc = site.map(body).json()
    reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    assert set(reasons) == {("nodetype", n), ("node", node), ("sensor", 6)}, doc
    assert "'Window Sensor'" in reasons[("nodetype", n)]
    assert "'Current Cost'" in reasons[("nodetype", n)]
    assert doc["location"]["5"], doc


def test_catalogue_meaning_is_compared_trimmed_and_ignoring_case(server):
    admin = client(server, create_key(server.db_url, None, "admin"))
    n = 60_000 + next_node_id()
    _catalogue_row(admin, "sensortype", id=n, name="Window Open", code="WIN", units="state")
    _catalogue_row(admin, "nodetype", id=n, name="Window Sensor")
    site = make_site(server)
    body = _with_types(
        map_body(unique("dep"), unique("a"), unique("r"), next_node_id()),
        {"key": n, "name": " window open", "code": "win ", "units": "STATE"},
        {"key": n, "name": "WINDOW SENSOR"},
    )
    doc = site.map(body).json()
    assert doc["errors"] == [] and doc["sensortype"][str(n)] == n, doc
    # Only what the request sends is compared: the id alone takes the server's meaning.
    assert site.map({"sensortype": [{"key": n}]}).json()["sensortype"] == {str(n): n}


def test_a_site_key_creates_no_catalogue_rows_and_is_told_who_can(server, db):
    site = make_site(server)
    n = 60_000 + next_node_id()
    room_type = unique("rt")
    body = _with_types(map_body(unique("dep"), unique("a"), unique("r"), next_node_id()),
                       {"key": n, "name": "New", "code": "N", "units": "u"},
                       {"key": n, "name": "New node type"})
    body["roomtype"] = [{"key": 1, "name": room_type}]
    doc = site.map(body).json()
    reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    for kind in ("sensortype", "nodetype"):
        assert "only an admin key can add it" in reasons[(kind, n)], reasons
        assert f"POST /rest/{kind}/" in reasons[(kind, n)]
    assert "POST /rest/roomtype/" in reasons[("roomtype", 1)] and room_type in reasons[
        ("roomtype", 1)]
    assert ("room", 2) in reasons and ("node", body["node"][0]["key"]) in reasons
    with db.connect() as conn:
        assert conn.execute(select(SensorType).where(SensorType.id == n)).first() is None
        assert conn.execute(select(NodeType).where(NodeType.id == n)).first() is None
        assert conn.execute(select(RoomType).where(RoomType.name == room_type)).first() is None
    # An admin key adds them through the same request.
    admin = client(server, create_key(server.db_url, None, "admin"))
    assert admin.post("sync/map/", json=body).json()["errors"] == []
    assert site.map(body).json()["errors"] == []


# --------------------------------------------------------------------------- node ids


def test_a_node_taken_out_of_its_house_stays_located_on_the_server(server, db):
    """A base station that unlocates a node (retired) maps it with ``location: null``: on the
    server it stays in the site's house, so its readings not yet sent are still accepted."""
    site = make_site(server)
    with db.connect() as conn:
        dep = conn.execute(select(Deployment.name).where(Deployment.id == site.deployment)).scalar()
        room = conn.execute(select(Room.name).where(Room.id == site.room)).scalar()
    body = map_body(dep, site.address, room, site.node)
    body["node"][0]["location"] = None
    doc = site.map(body).json()
    assert doc["errors"] == [] and doc["node"][str(site.node)] == site.node, doc
    with db.connect() as conn:
        assert conn.execute(select(Node.locationId).where(Node.id == site.node)).scalar() == (
            site.location)
    batch = {"format": "cogent-batch/1", "readings": [
        {"node": site.node, "type": 0, "location": site.location, "t": [T0], "v": [1.0]}]}
    assert site.batch(batch).json()["stored"] == 1


def test_a_site_key_creates_a_node_only_in_its_own_location(server, db):
    site = make_site(server)
    node = next_node_id()
    doc = site.map({"nodetype": [{"key": 0}], "node": [{"key": node, "nodeType": 0}]}).json()
    [error] = doc["errors"]
    assert error["key"] == node and "has no location" in error["reason"], doc
    assert site.http.post("node/", json={"id": node}).status_code == 403
    with db.connect() as conn:
        assert conn.execute(select(Node).where(Node.id == node)).first() is None


def test_an_unlocated_node_is_claimed_by_locating_it_unless_another_site_has_readings_of_it(
    server, db
):
    a, b = make_site(server), make_site(server)
    admin = client(server, create_key(server.db_url, None, "admin"))
    with db.connect() as conn:
        a_dep = conn.execute(select(Deployment.name).where(Deployment.id == a.deployment)).scalar()
        a_room = conn.execute(select(Room.name).where(Room.id == a.room)).scalar()
    free = next_node_id()
    assert admin.post("node/", json={"id": free}).status_code == 201  # nobody's yet
    doc = a.map(map_body(a_dep, a.address, a_room, free)).json()
    assert doc["errors"] == [] and doc["node"][str(free)] == free, doc
    # B's node, with B's readings, unlocated by an admin: A cannot take it, B can locate it.
    assert b.batch(readings_batch(b, [1.0])).json()["stored"] == 1
    assert admin.put(f"node/{b.node}", json={"locationId": None}).status_code == 200
    doc = a.map(map_body(a_dep, a.address, a_room, b.node)).json()
    assert any(e["key"] == b.node and "claimed by another site" in e["reason"]
               for e in doc["errors"]), doc
    refused = b.batch(readings_batch(b, [2.0], start=T0 + FIVE_MIN)).json()
    assert "has no location" in refused["rejected"][0]["reason"], refused
    with db.connect() as conn:
        b_dep = conn.execute(select(Deployment.name).where(Deployment.id == b.deployment)).scalar()
        b_room = conn.execute(select(Room.name).where(Room.id == b.room)).scalar()
    assert b.map(map_body(b_dep, b.address, b_room, b.node)).json()["errors"] == []
    with db.connect() as conn:
        assert conn.execute(select(Node.locationId).where(Node.id == b.node)).scalar() == (
            b.location)
