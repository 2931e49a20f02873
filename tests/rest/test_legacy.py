"""The original Cogent-house RestPusher's conversation, as tests/legacy_client.py holds it,
against a real server: authenticated by HTTP Basic from its resturl, stored with the native
rules, scoped to its site, and a re-sent bulk/ changes nothing."""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta

import httpx
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ApiKey, NodeState, Reading
from rest.keys import revoke_key
from tests.legacy_client import LegacyHouse, LegacyPusher
from tests.live_server import create_key
from tests.rest.conftest import next_node_id, unique

T0 = datetime(2024, 3, 1, 12, 0, 0)


def _resturl(server, site: str, key: str) -> str:
    return server.url.replace("http://", f"http://{site}:{key}@")


def _house(nodes: tuple[int, int], hours: int = 4) -> LegacyHouse:
    house = LegacyHouse(unique("Legacy trial"), unique("7 Old Road"),
                        {1: (unique("Legacy Kitchen"), 1), 2: (unique("Legacy Hall"), 1)},
                        {nodes[0]: 1, nodes[1]: 2})
    for i in range(hours * 12):
        when = T0 + timedelta(minutes=5 * i)
        for node, room in house.nodes.items():
            house.readings.append({"time": when, "nodeId": node, "type": 0, "room": room,
                                   "value": round(18 + (i % 40) / 10, 1)})
            house.readings.append({"time": when, "nodeId": node, "type": 2, "room": room,
                                   "value": None if i == 3 else 50.5})
            house.states.append({"time": when, "nodeId": node, "seq_num": i % 256,
                                 "parent": 0, "rssi": -60, "localtime": i * 300})
    return house


def _stored(db, nodes) -> tuple[set[tuple], int]:
    with db.connect() as conn:
        readings = {(r.time, r.nodeId, r.type, r.value) for r in conn.execute(
            select(Reading.time, Reading.nodeId, Reading.type, Reading.value)
            .where(Reading.nodeId.in_(nodes)))}
        states = len(conn.execute(select(NodeState.id).where(NodeState.nodeId.in_(nodes))).all())
    return readings, states


def test_the_original_pusher_conversation_stores_everything_and_resumes_from_last_sync(
        server, db):
    site = unique("legacy-station")
    key = create_key(server.db_url, site)
    nodes = (next_node_id(), next_node_id())
    house = _house(nodes)
    pusher = LegacyPusher(_resturl(server, site, key), pushlimit=40)
    assert pusher.check_connection()
    status = pusher.push_status("station-7")
    assert status["__table__"] == "PushStatus" and status["hostname"] == "station-7"
    sent = pusher.sync_house(house)
    assert sent == len(house.readings) + len(house.states)
    readings, states = _stored(db, nodes)
    assert readings == {(r["time"], r["nodeId"], r["type"], r["value"]) for r in house.readings}
    assert states == len(house.states)
    # Resumed from lastSync/ + 1 s: nothing again; new readings go up.
    assert pusher.sync_house(house) == 0
    later = T0 + timedelta(days=1)
    house.readings.append({"time": later, "nodeId": nodes[0], "type": 0, "room": 1,
                           "value": 17.5})
    assert pusher.sync_house(house) == 1
    # A bulk/ sent twice changes nothing.
    rows = [{"__table__": "Reading", "time": later.isoformat(), "nodeId": nodes[0], "type": 0,
             "locationId": pusher.locations[1], "value": 17.5}]
    again = requests.post(_resturl(server, site, key) + "bulk/",
                          data=zlib.compress(json.dumps(rows).encode()), timeout=30)
    assert again.status_code == 201 and again.json() == []
    assert again.headers["X-Cogent-Unchanged"] == "1" and again.headers["X-Cogent-Stored"] == "0"
    # Its check-in is listed beside native stations'.
    listed = requests.get(_resturl(server, site, key) + "pushstatus/", timeout=30).json()
    assert [(s["hostname"], s["dialect"]) for s in listed] == [("station-7", "legacy")]


def test_a_moved_node_is_put_by_query_and_the_row_names_its_table(server, db):
    site = unique("legacy-station")
    key = create_key(server.db_url, site)
    nodes = (next_node_id(), next_node_id())
    pusher = LegacyPusher(_resturl(server, site, key))
    house = _house(nodes, hours=1)
    pusher.sync_house(house)
    base = _resturl(server, site, key)
    moved = {"__table__": "Node", "id": nodes[0], "locationId": pusher.locations[2],
             "nodeTypeId": 0}
    reply = requests.put(base + "node/", params={"id": nodes[0]}, data=json.dumps(moved),
                         timeout=30)
    assert reply.status_code == 201, reply.text
    assert reply.json()["locationId"] == pusher.locations[2]
    [row] = requests.get(base + "Node/", params={"id": nodes[0]}, timeout=30).json()
    assert row == {"__table__": "Node", "id": nodes[0], "locationId": pusher.locations[2],
                   "nodeTypeId": 0}
    types = requests.get(server.url + "SensorType/", timeout=30).json()
    assert types[0]["__table__"] == "SensorType"


def test_every_legacy_endpoint_refuses_no_key_a_wrong_key_and_a_revoked_key(server, db):
    site = unique("legacy-station")
    key = create_key(server.db_url, site)
    revoked = create_key(server.db_url, site)
    with Session(db) as session:
        row = session.execute(select(ApiKey).where(ApiKey.prefix == revoked[:12])).scalar_one()
        revoke_key(session, row.id)
        session.commit()
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    calls = [("POST", "bulk/", zlib.compress(b"[]")), ("GET", "lastSync/?house=x", None),
             ("POST", "pushstatus/", b'{"hostname": "h"}'), ("GET", "pushstatus/", None),
             ("PUT", "node/?id=1", b"{}")]
    for creds in (None, (site, wrong), (site, revoked)):
        for method, path, body in calls:
            reply = httpx.request(method, server.url + path, content=body,
                                  auth=creds, timeout=30)
            assert reply.status_code == 401, (creds, method, path, reply.text)


def test_another_sites_key_cannot_write_or_see_through_the_legacy_endpoints(server, db):
    site, other = unique("legacy-station"), unique("legacy-station")
    key, other_key = create_key(server.db_url, site), create_key(server.db_url, other)
    nodes = (next_node_id(), next_node_id())
    pusher = LegacyPusher(_resturl(server, site, key))
    house = _house(nodes, hours=1)
    pusher.sync_house(house)
    before = _stored(db, nodes)
    theirs = _resturl(server, other, other_key)
    rows = [{"__table__": "Reading", "time": (T0 + timedelta(days=9)).isoformat(),
             "nodeId": nodes[0], "type": 0, "locationId": pusher.locations[1], "value": -1.0}]
    reply = requests.post(theirs + "bulk/", data=zlib.compress(json.dumps(rows).encode()),
                          timeout=30)
    assert reply.headers["X-Cogent-Stored"] == "0" and reply.headers["X-Cogent-Rejected"] == "1"
    assert requests.get(theirs + "lastSync/", params={"house": house.address},
                        timeout=30).json() is None
    moved = requests.put(theirs + "node/", params={"id": nodes[0]},
                         data=json.dumps({"locationId": None}), timeout=30)
    assert moved.status_code >= 400
    assert _stored(db, nodes) == before
    assert requests.get(theirs + "pushstatus/", timeout=30).json() == []


def test_pushstatus_lists_native_and_legacy_stations_of_the_site_with_clock_offsets(server, db):
    site = unique("mixed-site")
    key = create_key(server.db_url, site)
    base = _resturl(server, site, key)
    slow_clock = (datetime.utcnow() - timedelta(minutes=10)).isoformat()
    native = requests.post(server.url + "sync/hello/", timeout=30,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"host": "new-pi", "version": "cogent-sync test",
                                 "clock": slow_clock + "Z", "backlog": 42})
    assert native.status_code == 200, native.text
    legacy = requests.post(base + "pushstatus/", timeout=30, data=json.dumps(
        {"hostname": "old-pi", "localtime": datetime.utcnow().isoformat(), "version": "0.4"}))
    assert legacy.status_code == 201, legacy.text
    listed = {s["hostname"]: s for s in requests.get(base + "pushstatus/", timeout=30).json()}
    assert set(listed) == {"new-pi", "old-pi"}
    assert listed["new-pi"]["dialect"] == "native" and listed["new-pi"]["backlog"] == 42
    assert -660 < listed["new-pi"]["clockOffset"] < -540  # ten minutes slow
    assert listed["old-pi"]["dialect"] == "legacy" and listed["old-pi"]["version"] == "0.4"
