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
import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import MetaData, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from base.db import make_engine
from models import ApiKey, House, Location, Node, NodeState, Reading, Sensor
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
    if path == "/rest/sync/map/":
        kw["json"] = map_body(unique("d"), unique("a"), unique("r"), next_node_id())
    elif path == "/rest/sync/batch/":
        kw["json"] = readings_batch(a, [5.0, 6.0], start=T0 + 10**12)
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
    for method, path in routes:
        kind = path.removeprefix("/rest/").split("/")[0]
        open_read = method == "GET" and (path == "/rest/version/" or kind in CATALOGUE)
        for who, header in bad.items():
            url, kw = request_for(method, path, a)
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
        reply = http.request(method, url, headers={"Authorization": f"Bearer {readonly}"}, **kw)
        tries += 1
        want = 200 if method == "GET" else 403
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
        for i in ids:
            expect(f"GET {kind}/{i}", http.get(f"{kind}/{i}"), 403)
            expect(f"PUT {kind}/{i}", http.put(f"{kind}/{i}", json={}), 403)
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
           lambda d: d["stored"] == 0 and len(d["rejected"]) == 2)
    expect("node states into A", h.post("sync/batch/", json=nodestates_batch(a, [3])), 200,
           lambda d: d["stored"] == 0 and len(d["rejected"]) == 1)
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
        time.sleep(0.3)
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
