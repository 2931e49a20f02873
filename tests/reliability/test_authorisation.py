"""Authorisation, from the attacker's side, with "nothing written" checked after every try.

tests/rest/test_auth.py checks the status of each cell of the matrix in docs/PROTOCOL.md.
Here: every route the OpenAPI document lists (so a route added later is covered without
editing this file) with no key, a malformed key, a Basic header, a wrong key and a
revoked key, and a read-only key on every write — the database byte-for-byte unchanged
afterwards; site B's key trying every way into site A's houses, locations, nodes, sensors,
readings and node states (by id, by filter, by cursor, by summary, by moving its own rows
there, by mapping and by batches) — A's rows unchanged and none of them shown to B; and
keys hashed at rest and absent from every log, database and output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import MetaData, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from base.db import make_engine
from models import (
    ApiKey,
    Deployment,
    House,
    Location,
    Node,
    NodeState,
    Reading,
    Room,
    Sensor,
    SensorType,
)
from rest import cli as rest_cli
from rest.keys import authenticate, revoke_key
from tests.live_server import create_key, start_server
from tests.pushkit import T0 as HOUSE_T0
from tests.pushkit import seed_cogent_house, write_config
from tests.reliability.kit import (
    SUITE_SQLITE_TORTURE_OTHERS,
    Pusher,
    caught_up,
    record,
    run_pusher,
    wait_for,
)
from tests.reliability.test_hostile_input import snapshot
from tests.rest.conftest import (
    FIVE_MIN,
    T0,
    client,
    make_site,
    map_body,
    next_node_id,
    nodestates_batch,
    readings_batch,
    unique,
)

CATALOGUE = ("sensortype", "nodetype", "roomtype")


def revoked_key(db_url: str) -> str:
    key = create_key(db_url, unique("gone"))
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            row, _ = authenticate(session, f"Bearer {key}")
            revoke_key(session, row.id)
            session.commit()
    finally:
        engine.dispose()
    return key


@pytest.fixture
def world(server):
    """Sites A and B with a house, location, node, sensor, readings and node states each."""
    a, b = make_site(server), make_site(server)
    for s in (a, b):
        assert s.batch(readings_batch(s, [1.0, 2.0, 3.0])).json()["stored"] == 3
        assert s.batch(nodestates_batch(s, [1, 2])).json()["stored"] == 2
    admin_key = create_key(server.db_url, None, "admin")
    with client(server, admin_key) as adm:
        a.reading_ids = [r["id"] for r in adm.get("reading/", params={"nodeId": a.node}).json()]
        a.state_ids = [r["id"] for r in adm.get("nodestate/", params={"nodeId": a.node}).json()]
        b.reading_ids = [r["id"] for r in adm.get("reading/", params={"nodeId": b.node}).json()]
        b.state_ids = [r["id"] for r in adm.get("nodestate/", params={"nodeId": b.node}).json()]
        b.site_id = adm.get(f"house/{b.house}").json()["siteId"]
        a.site_id = adm.get(f"house/{a.house}").json()["siteId"]
        openapi = httpx.get(server.url.removesuffix("rest/") + "openapi.json").json()
    yield {"a": a, "b": b, "admin": admin_key, "openapi": openapi}
    a.http.close()
    b.http.close()


def request_for(method: str, path: str, a) -> tuple[str, dict[str, Any]]:
    """A request on ``path`` that would write (or read) site A's data if it were allowed."""
    kind = path.removeprefix("/rest/").split("/")[0]
    ids = {"house": a.house, "location": a.location, "node": a.node, "sensor": a.sensor,
           "reading": a.reading_ids[0], "nodestate": a.state_ids[0], "room": a.room,
           "deployment": a.deployment, "sensortype": 0, "nodetype": 0, "roomtype": 1}
    url = path.removeprefix("/rest/").replace("{row_id}", str(ids.get(kind, 1)))
    n = next_node_id()
    when = f"2027-02-01T00:00:{n % 60:02d}"
    new = {
        "sensortype": {"id": 30000 + n % 10000, "name": "x", "code": "x", "units": "u"},
        "nodetype": {"id": 30000 + n % 10000, "name": "x"},
        "roomtype": {"name": unique("rt")},
        "room": {"name": unique("room")},
        "deployment": {"name": unique("dep")},
        "house": {"deploymentId": a.deployment, "address": unique("addr")},
        "location": {"houseId": a.house, "roomId": a.room},
        "node": {"id": n, "locationId": a.location},
        "sensor": {"nodeId": a.node, "sensorTypeId": 5},
        "reading": {"time": when, "nodeId": a.node, "type": 0, "locationId": a.location,
                    "value": 1.0},
        "nodestate": {"time": when, "nodeId": a.node, "seq_num": 9},
    }
    change = {
        "sensortype": {"units": "changed"}, "nodetype": {"name": "changed"},
        "roomtype": {"name": unique("changed")}, "room": {"name": unique("changed")},
        "deployment": {"description": "changed"}, "house": {"address": unique("moved")},
        "location": {"roomId": None}, "node": {"locationId": None},
        "sensor": {"calibrationSlope": 9.0}, "reading": {"value": 99.0},
        "nodestate": {"rssi": -1},
    }
    kw: dict[str, Any] = {}
    if path == "/rest/login/":  # a password, not a key: an unknown account gets nothing
        kw["json"] = {"name": "no-such-account", "password": "not the password"}
    elif path == "/rest/bulk/":  # the original dialect (issue 15)
        rows = [{"__table__": "Reading", "time": when, "nodeId": a.node, "type": 0,
                 "locationId": a.location, "value": 1.0}]
        kw["content"] = zlib.compress(json.dumps(rows).encode())
    elif path == "/rest/lastsync/":
        kw["params"] = {"house": "anything"}
    elif path == "/rest/pushstatus/" and method == "POST":
        kw["json"] = {"hostname": unique("station")}
    elif path == "/rest/{type_name}/":
        url = "node/"
        kw["params"] = {"id": a.node}
        kw["json"] = change["node"]
    elif path == "/rest/sync/map/":
        kw["json"] = map_body(unique("d"), unique("a"), unique("r"), next_node_id())
    elif path == "/rest/sync/batch/":
        kw["json"] = readings_batch(a, [5.0, 6.0], start=T0 + 10**12)
    elif path == "/rest/sync/hello/":
        kw["json"] = {"host": unique("station"), "version": "0", "backlog": 0}
    elif path.startswith("/rest/summary/"):
        kw["params"] = {"houseId": a.house}
    elif method == "POST":
        kw["json"] = new[kind]
    elif method == "PUT":
        kw["json"] = change[kind]
    return url, kw


def documented_routes(openapi: dict) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in openapi["paths"].items() for method in ops]


@pytest.mark.parametrize("backend", SUITE_SQLITE_TORTURE_OTHERS)
def test_every_documented_route_refuses_bad_and_read_only_keys_and_writes_nothing(
    server, world, db
):
    a = world["a"]
    routes = documented_routes(world["openapi"])
    assert len(routes) >= 50  # 11 types x 5, map, batch, two summaries, version
    bad = {
        "no key": None,
        "malformed": "Bearer not-a-key",
        "basic": "Basic dXNlcjpwYXNz",
        "wrong": "Bearer cgk_" + "A" * 43,
        "revoked": f"Bearer {revoked_key(server.db_url)}",
        "empty bearer": "Bearer",
    }
    readonly = create_key(server.db_url, None, "readonly")
    before = snapshot(db)
    problems: list[str] = []
    tries = 0
    http = httpx.Client(base_url=server.url, timeout=30)
    root = server.url.removesuffix("/rest/")
    for method, path in routes:
        kind = path.removeprefix("/rest/").split("/")[0]
        open_read = method == "GET" and (path == "/rest/version/" or kind in CATALOGUE)
        for who, header in bad.items():
            url, kw = request_for(method, path, a)
            url = root + path if not path.startswith("/rest/") else url
            headers = {"Authorization": header} if header is not None else {}
            reply = http.request(method, url, headers=headers, **kw)
            tries += 1
            anyone = path == "/rest/version/" or (open_read and who == "no key")
            want = 200 if anyone else 401
            if reply.status_code != want:
                problems.append(f"{method} {path} [{who}]: {reply.status_code} {reply.text[:100]}")
            elif want == 401 and reply.headers.get("www-authenticate") != "Bearer":
                problems.append(f"{method} {path} [{who}]: 401 without WWW-Authenticate")
        url, kw = request_for(method, path, a)
        url = root + path if not path.startswith("/rest/") else url
        reply = http.request(method, url, headers={"Authorization": f"Bearer {readonly}"}, **kw)
        tries += 1
        want = 200 if method == "GET" else 401 if path == "/rest/login/" else 403
        if reply.status_code != want:
            problems.append(f"{method} {path} [readonly]: {reply.status_code} {reply.text[:100]}")
    http.close()
    assert not problems, "\n".join(problems)
    assert snapshot(db) == before, "a refused request wrote something"
    # The same requests with an admin key do write: the snapshot could have seen it.
    with client(server, world["admin"]) as adm:
        url, kw = request_for("PUT", "/rest/reading/{row_id}", a)
        assert adm.put(url, **kw).status_code == 200
    assert snapshot(db) != before
    record("auth: bad and read-only keys on every route", routes=len(routes), requests=tries)


def a_rows(db, a) -> dict[str, list[tuple]]:
    tables = {
        "house": (House, House.id == a.house),
        "location": (Location, Location.houseId == a.house),
        "node": (Node, Node.locationId == a.location),
        "sensor": (Sensor, Sensor.nodeId == a.node),
        "reading": (Reading, Reading.locationId == a.location),
        "nodestate": (NodeState, NodeState.nodeId == a.node),
    }
    with db.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(select(model).where(cond)
                                                       .order_by(model.id))]
                for name, (model, cond) in tables.items()}


def cursor(sort: str, value: Any, last_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort, value, last_id])).decode().rstrip("=")


@pytest.mark.parametrize("backend", SUITE_SQLITE_TORTURE_OTHERS)
def test_site_b_cannot_read_or_change_site_a_houses_locations_nodes_or_readings(world, db):
    a, b = world["a"], world["b"]
    http = b.http
    before = a_rows(db, a)
    a_ids = {"house": [a.house], "location": [a.location], "node": [a.node],
             "sensor": [a.sensor], "reading": a.reading_ids, "nodestate": a.state_ids}
    problems: list[str] = []
    tries = 0

    def expect(label: str, reply: httpx.Response, status: int, check=None) -> None:
        nonlocal tries
        tries += 1
        if reply.status_code != status or (check is not None and not check(reply.json())):
            problems.append(f"{label}: {reply.status_code} {reply.text[:200]}")

    def none_of_a(kind: str):
        return lambda rows: not {r["id"] for r in rows} & set(a_ids[kind])

    for kind, ids in a_ids.items():
        for i in ids:  # another site's row is the same 404 as one that does not exist
            for method, reply in (("GET", http.get(f"{kind}/{i}")),
                                  ("PUT", http.put(f"{kind}/{i}", json={}))):
                expect(f"{method} {kind}/{i}", reply, 404,
                       lambda doc, k=kind, i=i: doc["error"] == f"no {k} with id {i}")
            expect(f"DELETE {kind}/{i}", http.delete(f"{kind}/{i}"), 403)
        lo, hi = min(ids), max(ids)
        for params in ({"id": lo}, {"ge_id": lo, "le_id": hi}, {"_sort": "-id"},
                       {"_after": lo - 1}, {"_sort": "id", "_cursor": cursor("id", None, lo - 1)}):
            expect(f"GET {kind}/?{params}", http.get(f"{kind}/", params=params), 200,
                   none_of_a(kind))
    for params in ({"houseId": a.house}, {"locationId": a.location}, {"nodeId": a.node},
                   {}):
        for what in ("reading", "nodestate"):
            expect(f"summary/{what} {params}", http.get(f"summary/{what}/", params=params), 200,
                   lambda rows: all(r["nodeId"] != a.node for r in rows))
    for flt in ({"locationId": a.location}, {"nodeId": a.node}, {"houseId": a.house}):
        kind = {"locationId": "reading", "nodeId": "nodestate", "houseId": "location"}[next(
            iter(flt))]
        expect(f"GET {kind}/ {flt}", http.get(f"{kind}/", params=flt), 200,
               lambda rows: rows == [])
    # Writing into A's house, or moving B's own rows there.
    n = next_node_id()
    when = "2027-03-01T00:00:00"
    for kind, body in (("location", {"houseId": a.house, "roomId": b.room}),
                       ("node", {"id": n, "locationId": a.location}),
                       ("sensor", {"nodeId": a.node, "sensorTypeId": 7}),
                       ("reading", {"time": when, "nodeId": a.node, "type": 0,
                                    "locationId": a.location, "value": 1.0}),
                       ("reading", {"time": when, "nodeId": b.node, "type": 0,
                                    "locationId": a.location, "value": 1.0}),
                       ("nodestate", {"time": when, "nodeId": a.node, "seq_num": 1})):
        expect(f"POST {kind} into A", http.post(f"{kind}/", json=body), 403)
    for kind, row_id, body in (("house", b.house, {"siteId": a.site_id}),
                               ("location", b.location, {"houseId": a.house}),
                               ("node", b.node, {"locationId": a.location}),
                               ("sensor", b.sensor, {"nodeId": a.node}),
                               ("reading", b.reading_ids[0], {"locationId": a.location}),
                               ("nodestate", b.state_ids[0], {"nodeId": a.node})):
        expect(f"PUT B's {kind} into A", http.put(f"{kind}/{row_id}", json=body), 403)
    # The push protocol: map A's house and node, push readings and node states into them.
    h = http  # B's key
    dep = h.get(f"deployment/{a.deployment}").json()["name"]
    room = h.get(f"room/{a.room}").json()["name"]
    body = map_body(dep, a.address, room, a.node)
    expect("map A's house", h.post("sync/map/", json=body), 200,
           lambda d: {e["type"] for e in d["errors"]} >= {"house", "node"})
    hijack = map_body(unique("d"), unique("a"), unique("r"), a.node)  # A's node, B's house
    expect("map A's node into B's house", h.post("sync/map/", json=hijack), 200,
           lambda d: any(e["type"] == "node" for e in d["errors"]))
    expect("batch into A", h.post("sync/batch/", json=readings_batch(a, [7.0, 8.0])), 200,
           lambda d: d["stored"] == 0 and sum(r["count"] for r in d["rejected"]) == 2)
    expect("node states into A", h.post("sync/batch/", json=nodestates_batch(a, [3])), 200,
           lambda d: d["stored"] == 0 and sum(r["count"] for r in d["rejected"]) == 1)
    assert not problems, "\n".join(problems)
    assert a_rows(db, a) == before, "site B changed site A's rows"
    record("auth: site B on site A", requests=tries)


# --------------------------------------------------------------------------- keys at rest


def all_text(url: str) -> str:
    """Every value of every table of a database, as text."""
    engine = make_engine(url)
    out: list[str] = []
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    out.append(" ".join(map(str, row)))
    finally:
        engine.dispose()
    return "\n".join(out)


def cogent_rest(capsys, *args: str) -> str:
    """``cogent-rest ARGS`` (its main, in this process); what it printed."""
    capsys.readouterr()
    assert rest_cli.main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.slow  # starts a subprocess
@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_keys_are_hashed_at_rest_and_never_in_logs_databases_or_output(make_db, tmp_path,
                                                                          capsys):
    remote, local = make_db("remote"), make_db("local")
    live = start_server(remote, log_level="debug")
    try:
        made = cogent_rest(capsys, "keys", "create", "--site", "loft", "--db", remote)
        key = made.strip().splitlines()[-1]
        assert re.fullmatch(r"cgk_[A-Za-z0-9_\-]{43}", key), made
        secret = key[12:]  # what is never stored: the first 12 characters are, to list keys
        data = seed_cogent_house(local, days=1)
        config = write_config(tmp_path / "synchronise.conf", local, {"central": (live.url, key)})
        daemon = Pusher(config.path, "-v", name="daemon").start()  # DEBUG logging
        try:
            wait_for(caught_up(local), 60, "the push")
        finally:
            daemon.terminate()
        outputs = [daemon.output, run_pusher(config.path, "status").stdout]
        # Refused keys are not echoed either: wrong, revoked, and one sent in a URL.
        with httpx.Client(base_url=live.url) as http:
            http.get("house/", headers={"Authorization": f"Bearer {key[:-1]}x"})
            http.get("house/", params={"apikey": key})
            http.get(f"house/?address={key}")
        listing = cogent_rest(capsys, "keys", "list", "--db", remote)
        assert key[:12] in listing  # recognisable by its first characters
        revoke = cogent_rest(capsys, "keys", "revoke", "1", "--db", remote)
        with make_engine(local).begin() as conn:  # new rows: the cycle must send, and is refused
            conn.execute(insert(Reading), [{"nodeId": 101, "type": 0, "time": HOUSE_T0,
                                            "locationId": data.locations[101], "value": 2.0}])
        refused = run_pusher(config.path, "-v", "once")
        assert refused.returncode != 0 and "revoked" in refused.stderr + refused.stdout
        # A last request the server logs after all the others: once it is there, they are.
        httpx.get(live.url + "version/?after=refused")
        wait_for(lambda: "after=refused" in live.log, 10, "the server's access log")
        engine = make_engine(remote)
        with engine.connect() as conn:
            [stored] = conn.execute(select(ApiKey.keyHash)).scalars().all()
        engine.dispose()
        assert stored == hashlib.sha256(key.encode()).hexdigest()
        places = {
            "server log": live.log,
            "pusher output": "\n".join(outputs) + refused.stdout + refused.stderr,
            "pusher log file": (tmp_path / "push.log").read_text(),
            "cogent-rest keys output": made.replace(key, "") + listing + revoke,
            "server database": all_text(remote),
            "local database": all_text(local),
        }
        assert "GET /rest/house/" in live.log  # the access log is on, at debug level
        for name, content in places.items():
            assert secret not in content, f"the key is in the {name}"
            assert key[4:20] not in content, f"part of the key is in the {name}"
        for url in (remote, local):  # the raw files, write-ahead log included
            for path in Path(str(make_url(url).database)).parent.glob(
                    Path(str(make_url(url).database)).name + "*"):
                assert secret.encode() not in path.read_bytes(), path
        record("keys at rest and in logs", places=len(places),
               log_bytes=sum(len(c) for c in places.values()))
    finally:
        live.stop()


# --------------------------------------------------------------------------- the probe's findings
# Issue 11: an independent probe with two sites A and B broke each of these on both backends.
# Every test runs on SQLite, MariaDB and PostgreSQL.


@pytest.fixture
def two_sites(server):
    """Sites A and B with three readings each, and an admin client."""
    a, b = make_site(server), make_site(server)
    for s in (a, b):
        assert s.batch(readings_batch(s, [1.0, 2.0, 3.0])).json()["stored"] == 3
    admin = client(server, create_key(server.db_url, None, "admin"))
    a.dep_name = admin.get(f"deployment/{a.deployment}").json()["name"]
    b.dep_name = admin.get(f"deployment/{b.deployment}").json()["name"]
    b.room_name = admin.get(f"room/{b.room}").json()["name"]
    yield a, b, admin
    for http in (a.http, b.http, admin):
        http.close()


def readings_of(db, node: int) -> list[tuple]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(Reading.nodeId, Reading.type, Reading.time, Reading.locationId, Reading.value)
            .where(Reading.nodeId == node).order_by(Reading.type, Reading.time))]


def names_ids(text: str, *ids: int) -> bool:
    """Whether ``text`` names any of ``ids`` as a number of its own (node 10170 does not name
    house 17)."""
    return any(re.search(rf"(?<!\d){i}(?!\d)", text) for i in ids)


def names_nothing_of(site, text: str) -> bool:
    """Whether ``text`` (a refusal) names none of ``site``'s house, address or deployment."""
    return all(s not in text for s in (site.address, site.dep_name, site.name))


def test_a_site_cannot_overwrite_another_sites_reading_through_a_batch(two_sites, db):
    a, b, _ = two_sites
    before = readings_of(db, b.node)
    hostile = {"format": "cogent-batch/1",
               "readings": [{"node": b.node, "type": 0, "location": a.location,
                             "t": [T0], "v": [-12345.0]}]}  # B's node, A's location, B's time
    reply = a.batch(hostile)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["stored"] == 0 and len(doc["rejected"]) == 1, doc
    reason = doc["rejected"][0]["reason"]
    assert not reason.startswith(("unknown node", "unknown location")), reason
    assert names_nothing_of(b, reason), reason
    assert readings_of(db, b.node) == before


def test_a_site_cannot_overwrite_a_reading_stored_at_another_sites_location(two_sites, db):
    """A node an admin moved from B's house to A's keeps B's history: A's batches may add
    readings of it, never replace B's."""
    a, b, admin = two_sites
    before = readings_of(db, b.node)
    assert admin.put(f"node/{b.node}", json={"locationId": a.location}).status_code == 200
    batch = {"format": "cogent-batch/1",
             "readings": [{"node": b.node, "type": 0, "location": a.location,
                           "t": [T0, FIVE_MIN * 100], "v": [-12345.0, 4.0]}]}
    doc = a.batch(batch).json()
    assert doc["stored"] == 1, doc  # the new time
    assert [r["index"] for r in doc["rejected"]] == [0], doc
    assert names_nothing_of(b, doc["rejected"][0]["reason"])
    assert readings_of(db, b.node)[: len(before)] == before


def test_a_site_cannot_write_readings_of_another_sites_node_through_post_reading(two_sites, db):
    a, b, _ = two_sites
    before = readings_of(db, b.node)
    reply = a.http.post("reading/", json={"time": "2027-05-01T00:00:00", "nodeId": b.node,
                                          "type": 0, "locationId": a.location, "value": 9.0})
    assert reply.status_code == 403, reply.text
    assert names_nothing_of(b, reply.json()["error"])
    assert readings_of(db, b.node) == before


def test_post_reading_does_not_tell_whether_another_site_has_a_reading_at_that_time(two_sites):
    a, b, _ = two_sites
    taken, free = "2026-01-01T12:00:00", "2026-01-01T12:02:30"  # B has a reading at T0 only
    replies = [a.http.post("reading/", json={"time": when, "nodeId": b.node, "type": 0,
                                             "locationId": a.location, "value": 9.0})
               for when in (taken, free)]
    assert [r.status_code for r in replies] == [403, 403], [r.text for r in replies]
    assert replies[0].json() == replies[1].json()
    # Nor whether the node exists: a node id nobody has gets the same answer.
    nobody = next_node_id()
    missing = a.http.post("reading/", json={"time": taken, "nodeId": nobody, "type": 0,
                                            "locationId": a.location, "value": 9.0})
    assert missing.status_code == 403
    assert missing.json()["error"].replace(str(nobody), str(b.node)) == replies[0].json()["error"]
    # Nor whether a location exists: B's and one nobody has get the same answer.
    own_node = {"time": taken, "nodeId": a.node, "type": 0, "value": 9.0}
    theirs = a.http.post("reading/", json={**own_node, "locationId": b.location})
    nowhere = a.http.post("reading/", json={**own_node, "locationId": 99_999_999})
    assert theirs.status_code == nowhere.status_code == 403
    assert theirs.json()["error"].replace(str(b.location), "L") == nowhere.json()["error"].replace(
        "99999999", "L")


def test_a_site_claiming_another_sites_next_node_id_does_not_tell_whose_it_is(
    two_sites, db, server
):
    """Node ids are one hardware namespace: the first site to map an id claims it. The second
    is told to ask the server's operator (never whose it is); the operator's log says who
    holds it, and an admin key moves the node to the second site, or deletes it."""
    a, b, admin = two_sites
    squatted = next_node_id()  # "B's next node": A takes it first, in A's own location
    assert a.http.post("node/", json={"id": squatted, "locationId": a.location}).status_code == 201
    body = map_body(b.dep_name, b.address, b.room_name, squatted)
    doc = b.map(body).json()
    reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    assert str(squatted) not in doc["node"], doc
    reason = reasons[("node", squatted)]
    assert "operator" in reason and names_nothing_of(a, reason), reason
    assert not names_ids(reason, a.location, a.house), reason
    refused = b.batch({"format": "cogent-batch/1",
                       "readings": [{"node": squatted, "type": 0, "location": b.location,
                                     "t": [T0], "v": [1.0]}]}).json()
    assert refused["stored"] == 0 and names_nothing_of(a, refused["rejected"][0]["reason"])
    # The operator settles it with what exists: move the node to B's location.
    assert admin.put(f"node/{squatted}", json={"locationId": b.location}).status_code == 200
    doc = b.map(body).json()
    assert doc["errors"] == [] and doc["node"][str(squatted)] == squatted, doc
    stored = b.batch({"format": "cogent-batch/1",
                      "readings": [{"node": squatted, "type": 0, "location": b.location,
                                    "t": [T0], "v": [1.0]}]}).json()
    assert stored["stored"] == 1, stored
    assert f"(site {b.name}) was refused node {squatted}" in server.log
    # A claimed id that nothing refers to yet can also be deleted; then B creates it.
    other = next_node_id()
    assert a.http.post("node/", json={"id": other, "locationId": a.location}).status_code == 201
    body = map_body(b.dep_name, b.address, b.room_name, other)
    assert str(other) not in b.map(body).json()["node"]
    assert admin.delete(f"node/{other}").status_code == 204
    doc = b.map(body).json()
    assert doc["errors"] == [] and doc["node"][str(other)] == other, doc


def test_a_site_cannot_define_a_sensor_type_through_the_map(two_sites, db):
    a, _, _ = two_sites
    new_type = 40_000 + next_node_id() % 10_000
    body = map_body(unique("dep"), unique("addr"), unique("room"), next_node_id(), new_type)
    body["sensortype"] = [{"key": new_type, "name": "Evil", "code": "EVL", "units": "furlongs"}]
    doc = a.map(body).json()
    assert str(new_type) not in doc["sensortype"], doc
    reasons = {(e["type"], e["key"]): e["reason"] for e in doc["errors"]}
    reason = reasons[("sensortype", new_type)]
    assert "admin" in reason and "POST /rest/sensortype/" in reason, reason
    assert ("sensor", 6) in reasons  # the sensor of that type depends on it
    assert doc["node"] != {} and doc["house"] != {}  # everything else maps
    with db.connect() as conn:
        assert conn.execute(select(SensorType).where(SensorType.id == new_type)).first() is None


def test_another_sites_sensor_type_never_takes_the_place_of_ours(two_sites, db):
    """A defines sensor type N its way; B's own N must not be matched to A's silently."""
    a, b, _ = two_sites
    n = 40_000 + next_node_id() % 10_000
    evil = {"key": n, "name": "Evil", "code": "EVL", "units": "furlongs"}
    a.map({"sensortype": [evil]})
    body = map_body(b.dep_name, b.address, b.room_name, b.node, n)
    body["sensortype"] = [{"key": n, "name": "Delta CO2", "code": "dCO2", "units": "ppm/s"}]
    doc = b.map(body).json()
    assert str(n) not in doc["sensortype"], doc
    assert any(e["type"] == "sensortype" and e["key"] == n for e in doc["errors"]), doc
    reply = b.batch({"format": "cogent-batch/1",
                     "readings": [{"node": b.node, "type": n, "location": b.location,
                                   "t": [T0], "v": [1.0]}]}).json()
    assert reply["stored"] == 0, reply
    with db.connect() as conn:
        assert conn.execute(select(SensorType.name).where(SensorType.id == n)).first() is None


def deployment_row(db, dep_id: int) -> tuple:
    with db.connect() as conn:
        return tuple(conn.execute(select(Deployment).where(Deployment.id == dep_id)).one())


def room_row(db, room_id: int) -> tuple:
    with db.connect() as conn:
        return tuple(conn.execute(select(Room).where(Room.id == room_id)).one())


def test_a_site_cannot_rename_or_end_another_sites_deployment(two_sites, db):
    a, b, admin = two_sites
    before = deployment_row(db, b.deployment)
    for change in ({"name": unique("renamed")}, {"endDate": "2026-02-01T00:00:00"},
                   {"description": "mine now"}):
        reply = a.http.put(f"deployment/{b.deployment}", json=change)
        assert reply.status_code == 403, reply.text
        assert names_nothing_of(b, reply.json()["error"]), reply.text
    # Through the map: A's house in B's deployment, with another description and an end.
    body = map_body(b.dep_name, unique("a-house"), unique("room"), next_node_id())
    body["deployment"][0] |= {"description": "mine now", "endDate": "2026-02-01T00:00:00"}
    doc = a.map(body).json()
    assert doc["deployment"]["3"] == b.deployment and doc["errors"] == [], doc
    assert deployment_row(db, b.deployment) == before
    # A has a house in it now: B is no longer its only user either; an admin key still may.
    assert b.http.put(f"deployment/{b.deployment}", json={"description": "x"}).status_code == 403
    assert admin.put(f"deployment/{b.deployment}", json={"description": "x"}).status_code == 200


def test_a_site_cannot_rename_or_retype_the_room_another_site_uses(two_sites, db):
    a, b, admin = two_sites
    before = room_row(db, b.room)
    other_type = admin.post("roomtype/", json={"name": unique("rt")}).json()["id"]
    for change in ({"name": unique("renamed")}, {"roomTypeId": other_type}):
        reply = a.http.put(f"room/{b.room}", json=change)
        assert reply.status_code == 403, reply.text
    body = map_body(unique("dep"), unique("addr"), b.room_name, next_node_id())
    body["roomtype"] = [{"key": 1, "name": admin.get(f"roomtype/{other_type}").json()["name"]}]
    doc = a.map(body).json()
    assert doc["room"]["2"] == b.room and doc["errors"] == [], doc
    assert room_row(db, b.room) == before


def test_a_site_changes_shared_rows_only_while_no_other_site_uses_them(two_sites, db):
    a, _, admin = two_sites
    dep = a.http.post("deployment/", json={"name": unique("dep")}).json()["id"]
    room = a.http.post("room/", json={"name": unique("room")}).json()["id"]
    assert a.http.put(f"deployment/{dep}", json={"description": "ours"}).status_code == 200
    assert a.http.put(f"room/{room}", json={"name": unique("renamed")}).status_code == 200
    assert a.http.post("house/", json={"deploymentId": dep, "address": unique("x")}
                       ).status_code == 201  # A's own house: still A's alone
    assert a.http.put(f"deployment/{dep}", json={"description": "still"}).status_code == 200
    assert admin.put(f"deployment/{dep}", json={"description": "admin"}).status_code == 200


def test_the_map_does_not_tell_which_house_a_node_belongs_to(two_sites):
    a, b, _ = two_sites
    for node in (b.node, next_node_id()):  # B's node, and one nobody has
        doc = a.map(map_body(a.dep_name, a.address, unique("room"), node)).json()
        for e in doc["errors"]:
            assert names_nothing_of(b, e["reason"]), e
            assert not names_ids(e["reason"], b.house, b.location), e
    doc = a.map(map_body(a.dep_name, a.address, unique("room"), b.node)).json()
    assert any(e["type"] == "node" and e["key"] == b.node for e in doc["errors"]), doc
