"""The auth matrix on every route: no/malformed/wrong/revoked key, read-only, other site, admin."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from base.db import make_engine
from rest.keys import revoke_key
from tests.live_server import create_key
from tests.rest.conftest import (
    T0,
    client,
    make_site,
    map_body,
    next_node_id,
    readings_batch,
    unique,
)

OWNED = ("house", "location", "node", "sensor", "reading", "nodestate")
_times = itertools.count(1)


def _revoked_key(db_url: str) -> str:
    key = create_key(db_url, unique("gone"))
    engine = make_engine(db_url)
    with Session(engine) as session:
        from rest.keys import authenticate

        row, _ = authenticate(session, f"Bearer {key}")
        revoke_key(session, row.id)
        session.commit()
    engine.dispose()
    return key


@pytest.fixture
def world(server):
    a = make_site(server)
    b = make_site(server)
    a.batch(readings_batch(a, [1.0, 2.0]))
    a.batch({"format": "cogent-batch/1", "nodestates": [{"node": a.node, "t": [T0], "seq": [1]}]})
    admin_key = create_key(server.db_url, None, "admin")
    keys = {
        "none": None,
        "malformed": "not-a-key",
        "wrong": "cgk_" + "A" * 43,
        "revoked": _revoked_key(server.db_url),
        "readonly": create_key(server.db_url, None, "readonly"),
        "site_a": a.key,
        "site_b": b.key,
        "admin": admin_key,
    }
    http = {name: client(server, key) for name, key in keys.items()}
    http["malformed"].headers["Authorization"] = "Bearer not-a-key"
    http["basic"] = client(server, None, Authorization="Basic dXNlcjpwYXNz")
    with client(server, admin_key) as adm:
        rows = {
            "house": adm.get(f"house/{a.house}").json(),
            "location": adm.get(f"location/{a.location}").json(),
            "node": adm.get(f"node/{a.node}").json(),
            "sensor": adm.get(f"sensor/{a.sensor}").json(),
            "reading": adm.get("reading/", params={"nodeId": a.node}).json()[0],
            "nodestate": adm.get("nodestate/", params={"nodeId": a.node}).json()[0],
        }
        dep_name = adm.get(f"deployment/{a.deployment}").json()["name"]
        room_name = adm.get(f"room/{a.room}").json()["name"]
    yield {"a": a, "b": b, "http": http, "rows": rows, "dep": dep_name, "room": room_name}
    for h in http.values():
        h.close()


BAD = ("none", "malformed", "basic", "wrong", "revoked")


def _expect(bad: int, **per_key: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(BAD, bad)
    out.update(per_key)
    return out


def _new_owned(kind: str, a) -> dict[str, Any]:
    """A body for a new row of ``kind`` in site A's house (distinct on every call)."""
    n = next(_times)
    when = f"2027-01-01T00:00:{n % 60:02d}.{n:06d}"
    return {
        "house": {"deploymentId": a.deployment, "address": unique("new")},
        "location": {"houseId": a.house, "roomId": None},
        "node": {"id": next_node_id(), "locationId": a.location},
        "sensor": {"nodeId": a.node, "sensorTypeId": 3 + n % 15},
        "reading": {
            "time": when,
            "nodeId": a.node,
            "type": 0,
            "locationId": a.location,
            "value": 1.0,
        },
        "nodestate": {"time": when, "nodeId": a.node, "seq_num": n},
    }[kind]


def test_auth_matrix_on_every_route(world):
    a, b, http, rows = world["a"], world["b"], world["http"], world["rows"]
    problems: list[str] = []
    admin = http["admin"]

    def check(label: str, send: Callable[[httpx.Client], httpx.Response], expect: dict[str, Any]):
        for who, want in expect.items():
            reply = send(http[who])
            ok = want(reply) if callable(want) else reply.status_code == want
            if not ok:
                problems.append(f"{label} as {who}: got {reply.status_code} {reply.text[:150]}")
            elif reply.status_code >= 400:
                doc = reply.json()
                if set(doc) - {"error", "status", "valid"} or doc["status"] != reply.status_code:
                    problems.append(f"{label} as {who}: error body {doc}")

    def status(code: int, test: Callable[[Any], bool] = lambda _doc: True):
        return lambda r: r.status_code == code and test(r.json())

    everyone_ok = dict.fromkeys([*BAD, "readonly", "site_a", "site_b", "admin"], 200)
    check("version", lambda h: h.get("version/"), everyone_ok)

    # Catalogues: readable without a key, writable by admins only.
    for kind in ("sensortype", "nodetype", "roomtype"):
        readers = _expect(401, none=200, readonly=200, site_a=200, site_b=200, admin=200)
        check(f"GET {kind}/", lambda h, k=kind: h.get(f"{k}/"), readers)
        check(f"GET {kind}/0", lambda h, k=kind: h.get(f"{k}/1"), readers)
        check(
            f"PUT {kind}/1",
            lambda h, k=kind: h.put(f"{k}/1", json={}),
            _expect(401, readonly=403, site_a=403, site_b=403, admin=200),
        )
        body = {"roomtype": {"name": unique("rt")}}.get(
            kind, {"id": 5000 + next(_times), "name": "x", "code": "c", "units": "u"}
        )
        if kind == "nodetype":
            body = {"id": 5000 + next(_times), "name": "x"}
        check(
            f"POST {kind}/",
            lambda h, k=kind, bd=body: h.post(f"{k}/", json=bd),
            _expect(401, readonly=403, site_a=403, site_b=403),
        )

    # Shared tables: any key reads; writers create.
    for kind, row_id in (("room", a.room), ("deployment", a.deployment)):
        any_key = _expect(401, readonly=200, site_a=200, site_b=200, admin=200)
        check(f"GET {kind}/", lambda h, k=kind: h.get(f"{k}/"), any_key)
        check(f"GET {kind}/{row_id}", lambda h, k=kind, i=row_id: h.get(f"{k}/{i}"), any_key)
        check(
            f"POST {kind}/",
            lambda h, k=kind: h.post(f"{k}/", json={"name": unique(k)}),
            _expect(401, readonly=403, site_a=201, site_b=201, admin=201),
        )
        check(
            f"DELETE {kind}/{row_id}",
            lambda h, k=kind, i=row_id: h.delete(f"{k}/{i}"),
            _expect(401, readonly=403, site_a=403, site_b=403, admin=409),
        )

    # What hangs off a house: site keys see and change only their own.
    for kind in OWNED:
        row = rows[kind]

        def mine(r, i=row["id"]):
            return r.status_code == 200 and i in [x["id"] for x in r.json()]

        def not_mine(r, i=row["id"]):
            return r.status_code == 200 and i not in [x["id"] for x in r.json()]

        check(
            f"GET {kind}/",
            lambda h, k=kind, i=row["id"]: h.get(f"{k}/", params={"ge_id": i, "le_id": i}),
            _expect(401, readonly=mine, site_a=mine, site_b=not_mine, admin=mine),
        )
        check(
            f"GET {kind}/{row['id']}",
            lambda h, k=kind, i=row["id"]: h.get(f"{k}/{i}"),
            _expect(401, readonly=200, site_a=200, site_b=403, admin=200),
        )
        noop = {c: v for c, v in row.items() if c not in ("id", "siteId")}
        check(
            f"PUT {kind}/{row['id']}",
            lambda h, k=kind, i=row["id"], bd=noop: h.put(f"{k}/{i}", json=bd),
            _expect(401, readonly=403, site_a=200, site_b=403, admin=200),
        )
        if kind == "location":

            def post_location(h, k=kind):
                room = admin.post("room/", json={"name": unique("r")}).json()["id"]
                return h.post(f"{k}/", json={**_new_owned(k, a), "roomId": room})

            send = post_location
        else:
            send = lambda h, k=kind: h.post(f"{k}/", json=_new_owned(k, a))  # noqa: E731
        # Deployments are shared: B may add its own house to A's deployment.
        b_post = 201 if kind == "house" else 403
        check(
            f"POST {kind}/", send, _expect(401, readonly=403, site_a=201, site_b=b_post, admin=201)
        )
        check(
            f"DELETE {kind}/{row['id']}",
            lambda h, k=kind, i=row["id"]: h.delete(f"{k}/{i}"),
            _expect(401, readonly=403, site_a=403, site_b=403,
                    admin=204 if kind in ("sensor", "reading", "nodestate") else 409),
        )  # fmt: skip

    # B may not move A's node or create a house row A owns by writing other columns.
    check(
        "PUT node into B's location",
        lambda h: h.put(f"node/{a.node}", json={"locationId": b.location}),
        {"site_a": 403, "site_b": 403},
    )
    check(
        "PUT house siteId",
        lambda h: h.put(f"house/{a.house}", json={"siteId": None}),
        {"site_a": 403},
    )

    # The push protocol.
    body = map_body(world["dep"], a.address, world["room"], a.node)
    refused = status(
        200, lambda d: {e["type"] for e in d["errors"]} == {"house", "location", "node", "sensor"}
    )
    check(
        "POST sync/map/",
        lambda h: h.post("sync/map/", json=body),
        _expect(401, readonly=403, site_a=status(200, lambda d: d["errors"] == []),
                site_b=refused, admin=status(200, lambda d: d["errors"] == [])),
    )  # fmt: skip
    batch = readings_batch(a, [7.0], start=T0 + 10**9 * 3600)
    check(
        "POST sync/batch/",
        lambda h: h.post("sync/batch/", json=batch),
        _expect(401, readonly=403,
                site_a=status(200, lambda d: d["rejected"] == []),
                site_b=status(200, lambda d: d["stored"] == 0 and len(d["rejected"]) == 1),
                admin=status(200, lambda d: d["rejected"] == [])),
    )  # fmt: skip

    # Summaries: any key; a site key sees only its own houses.
    for what in ("reading", "nodestate"):
        some = status(200, lambda d: len(d) > 0)
        check(
            f"GET summary/{what}/",
            lambda h, w=what: h.get(f"summary/{w}/", params={"houseId": a.house}),
            _expect(
                401, readonly=some, site_a=some, site_b=status(200, lambda d: d == []), admin=some
            ),
        )

    # Keys never in the URL.
    check(
        "key in query string",
        lambda h: h.get("sensortype/", params={"key": a.key}),
        dict.fromkeys(["none", "site_a", "admin"], 400),
    )
    check(
        "key value in a filter",
        lambda h: h.get("house/", params={"address": a.key}),
        {"none": 400, "admin": 400},
    )
    assert not problems, "\n".join(problems)


def test_unauthorized_replies_say_how_to_send_a_key(world):
    http = world["http"]
    reply = http["none"].get("house/")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in reply.json()["error"]
    assert "malformed" in http["malformed"].get("house/").json()["error"]
    assert "malformed" in http["basic"].get("house/").json()["error"]
    assert "unknown key" in http["wrong"].get("house/").json()["error"]
    assert "revoked" in http["revoked"].get("house/").json()["error"]
