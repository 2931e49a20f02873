"""The auth matrix. Reads: every route with no/malformed/wrong/revoked keys, read-only,
own site, other site and admin. Writes: every write route of the application's route
table x its operation x key kind, with the status the rule (rest/authz.py) gives; a route
added without a rule here fails, and the table docs/RELIABILITY.md shows is the one this
test observed."""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from base.db import make_engine
from rest.app import create_app
from rest.keys import revoke_key
from rest.resources import RESOURCES
from rest.settings import Settings
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

REPO = Path(__file__).resolve().parents[2]
OWNED = ("house", "location", "node", "sensor", "reading", "nodestate")
WRITE_KEYS = ("none", "wrong", "revoked", "readonly", "own", "other", "admin")
BAD = ("none", "malformed", "basic", "wrong", "revoked")
_serial = itertools.count(1)


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
        "own": a.key,
        "other": b.key,
        "admin": admin_key,
    }
    http = {name: client(server, key) for name, key in keys.items()}
    http["malformed"].headers["Authorization"] = "Bearer not-a-key"
    http["basic"] = client(server, None, Authorization="Basic dXNlcjpwYXNz")
    adm = http["admin"]
    rows = {
        "house": adm.get(f"house/{a.house}").json(),
        "location": adm.get(f"location/{a.location}").json(),
        "node": adm.get(f"node/{a.node}").json(),
        "sensor": adm.get(f"sensor/{a.sensor}").json(),
        "reading": adm.get("reading/", params={"nodeId": a.node}).json()[0],
        "nodestate": adm.get("nodestate/", params={"nodeId": a.node}).json()[0],
    }
    a.site_id = rows["house"]["siteId"]
    a.dep_name = adm.get(f"deployment/{a.deployment}").json()["name"]
    a.room_name = adm.get(f"room/{a.room}").json()["name"]
    yield {"a": a, "b": b, "http": http, "rows": rows, "server": server}
    for h in http.values():
        h.close()


def _expect(bad: int, **per_key: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(BAD, bad)
    out.update(per_key)
    return out


def test_read_matrix_on_every_route(world):
    a, http, rows = world["a"], world["http"], world["rows"]
    problems: list[str] = []

    def check(label: str, send: Callable[[httpx.Client], httpx.Response], expect: dict[str, Any]):
        for who, want in expect.items():
            reply = send(http[who])
            ok = want(reply) if callable(want) else reply.status_code == want
            if not ok:
                problems.append(f"{label} as {who}: got {reply.status_code} {reply.text[:150]}")

    def status(code: int, test: Callable[[Any], bool] = lambda _doc: True):
        return lambda r: r.status_code == code and test(r.json())

    everyone_ok = dict.fromkeys([*BAD, "readonly", "own", "other", "admin"], 200)
    check("version", lambda h: h.get("version/"), everyone_ok)
    for kind in ("sensortype", "nodetype", "roomtype"):
        readers = _expect(401, none=200, readonly=200, own=200, other=200, admin=200)
        check(f"GET {kind}/", lambda h, k=kind: h.get(f"{k}/"), readers)
        check(f"GET {kind}/1", lambda h, k=kind: h.get(f"{k}/1"), readers)
    for kind, row_id in (("room", a.room), ("deployment", a.deployment)):
        any_key = _expect(401, readonly=200, own=200, other=200, admin=200)
        check(f"GET {kind}/", lambda h, k=kind: h.get(f"{k}/"), any_key)
        check(f"GET {kind}/{row_id}", lambda h, k=kind, i=row_id: h.get(f"{k}/{i}"), any_key)
    for kind in OWNED:
        row = rows[kind]

        def mine(r, i=row["id"]):
            return r.status_code == 200 and i in [x["id"] for x in r.json()]

        def not_mine(r, i=row["id"]):
            return r.status_code == 200 and i not in [x["id"] for x in r.json()]

        check(
            f"GET {kind}/",
            lambda h, k=kind, i=row["id"]: h.get(f"{k}/", params={"ge_id": i, "le_id": i}),
            _expect(401, readonly=mine, own=mine, other=not_mine, admin=mine),
        )
        check(
            f"GET {kind}/{row['id']}",
            lambda h, k=kind, i=row["id"]: h.get(f"{k}/{i}"),
            _expect(401, readonly=200, own=200, other=404, admin=200),
        )
    for what in ("reading", "nodestate"):
        some = status(200, lambda d: len(d) > 0)
        check(
            f"GET summary/{what}/",
            lambda h, w=what: h.get(f"summary/{w}/", params={"houseId": a.house}),
            _expect(401, readonly=some, own=some, other=status(200, lambda d: d == []),
                    admin=some),
        )  # fmt: skip
    # Keys never in the URL.
    check(
        "key in query string",
        lambda h: h.get("sensortype/", params={"key": a.key}),
        dict.fromkeys(["none", "own", "admin"], 400),
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


# --------------------------------------------------------------------------- the write matrix

WRITE_METHODS = {"POST", "PUT", "DELETE", "PATCH"}
_TYPE_ROUTE = re.compile(r"/rest/([a-z]+)/(\{row_id\})?")


def write_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app`` that takes a writing method."""
    out: list[tuple[str, str]] = []
    todo: list[Any] = list(app.routes)
    while todo:
        route = todo.pop(0)
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            todo[:0] = inner.routes
            continue
        methods = getattr(route, "methods", None) or set()
        out.extend((m, route.path) for m in sorted(set(methods) & WRITE_METHODS))
    return out


def operation(method: str, path: str) -> tuple[str, str]:
    """(operation, what it writes) of a write route; fails for a route with no rule."""
    if (method, path) == ("POST", "/rest/sync/map/"):
        return "map", "sync"
    if (method, path) == ("POST", "/rest/sync/batch/"):
        return "batch", "sync"
    if (method, path) == ("POST", "/rest/sync/hello/"):  # the keyed check-in (issue 11)
        return "hello", "sync"
    if (method, path) == ("POST", "/rest/login/"):  # an account's password, not a key
        return "login", "public"
    if (method, path) == ("POST", "/login"):  # the fleet page's login form, likewise
        return "web-login", "public"
    if (method, path) == ("POST", "/rest/bulk/"):  # the original client's dialect (issue 15)
        return "bulk", "legacy"
    if (method, path) == ("POST", "/rest/pushstatus/"):
        return "pushstatus", "legacy"
    if (method, path) == ("PUT", "/rest/{type_name}/"):
        return "put-query", "legacy"
    if path == "/rest/{type_name}/{tail:path}":
        return "fallback", "unknown"
    m = _TYPE_ROUTE.fullmatch(path)
    if m and m[1] in RESOURCES:
        op = {("POST", None): "create", ("PUT", "{row_id}"): "update",
              ("DELETE", "{row_id}"): "delete"}.get((method, m[2]))  # fmt: skip
        if op:
            return op, m[1]
    raise AssertionError(
        f"{method} {path} has no authorisation rule in this test: decide who may call it "
        f"(rest/authz.py) and add its row to the matrix"
    )


def expected(op: str, kind: str) -> dict[str, int | set[int]]:
    """The status per key kind that the rule gives."""
    refused = {"none": 401, "wrong": 401, "revoked": 401, "readonly": 403}
    if op == "fallback":  # an unknown type: nothing there to write, whoever asks
        return dict.fromkeys(WRITE_KEYS, 404)
    if op == "hello":  # whether a read-only key may check in is the pusher side's choice
        return refused | {"readonly": {200, 403}, "own": 200, "other": 200, "admin": 200}
    if op in ("map", "batch"):  # 200 for every writer: refused rows are listed in the reply
        return refused | {"own": 200, "other": 200, "admin": 200}
    if op in ("login", "web-login"):  # whatever key is sent, an unknown account gets nothing
        return dict.fromkeys(WRITE_KEYS, 401)
    if op == "bulk":  # 201 as the original answered; refused rows are counted in headers
        return refused | {"own": 201, "other": 201, "admin": 201}
    if op == "pushstatus":  # a station records itself; an admin key is no station
        return refused | {"own": 201, "other": 201, "admin": 403}
    if op == "put-query":  # another site's node is not theirs to move (nor to create anew)
        return refused | {"own": 201, "other": {403, 409}, "admin": 201}
    res = RESOURCES[kind].kind
    created, changed, deleted = 201, 200, 204
    own_other = {
        ("catalogue", "create"): (403, 403),
        ("catalogue", "update"): (403, 403),
        ("shared", "create"): (created, created),
        ("shared", "update"): (changed, 403),
        ("owned", "create"): (created, 403),
        ("owned", "update"): (changed, 404),
    }.get((res, op), (403, 403))  # fmt: skip  (delete: admin keys only)
    admin = {"create": created, "update": changed, "delete": deleted}[op]
    return refused | {"own": own_other[0], "other": own_other[1], "admin": admin}


# What a 200 from the map or the batch must also say, per key kind; and its table note.
CONTENT: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("map", "own"): (lambda d: d["errors"] == [], "200, all mapped"),
    ("map", "admin"): (lambda d: d["errors"] == [], "200, all mapped"),
    ("map", "other"): (
        lambda d: {e["type"] for e in d["errors"]} == {"house", "location", "node", "sensor"},
        "200, rows in `errors`",
    ),
    ("batch", "own"): (lambda d: d["stored"] == 1 and d["rejected"] == [], "200, stored"),
    ("batch", "admin"): (lambda d: d["stored"] == 1 and d["rejected"] == [], "200, stored"),
    ("batch", "other"): (
        lambda d: d["stored"] == 0 and len(d["rejected"]) == 1,
        "200, rows `rejected`",
    ),
}
# bulk/ answers [] whoever sends it; what it stored is in X-Cogent-Stored / X-Cogent-Rejected
# (tests/rest/test_legacy.py checks another site's rows are rejected).


class Requests:
    """The request of each write route on site A's rows (fresh rows where it needs them)."""

    def __init__(self, world: dict[str, Any]):
        self.a = world["a"]
        self.rows = world["rows"]
        self.admin = world["http"]["admin"]

    def _made(self, kind: str, body: dict[str, Any]) -> int:
        reply = self.admin.post(f"{kind}/", json=body)
        assert reply.status_code == 201, (kind, reply.text)
        return int(reply.json()["id"])

    def fresh_body(self, kind: str) -> dict[str, Any]:
        a, n = self.a, next(_serial)
        when = f"2027-01-01T00:00:00.{n:06d}"
        bodies: dict[str, Callable[[], dict[str, Any]]] = {
            "sensortype": lambda: {"id": 200_000 + next_node_id(), "name": "x", "code": "x",
                                   "units": "u"},
            "nodetype": lambda: {"id": 200_000 + next_node_id(), "name": "x"},
            "roomtype": lambda: {"name": unique("rt")},
            "deployment": lambda: {"name": unique("dep")},
            "room": lambda: {"name": unique("room")},
            "house": lambda: {"deploymentId": a.deployment, "address": unique("new"),
                              "siteId": a.site_id},
            "location": lambda: {"houseId": a.house, "roomId": self._made("room", {
                "name": unique("room")})},
            "node": lambda: {"id": next_node_id(), "locationId": a.location},
            "sensor": lambda: {"nodeId": self._made("node", self.fresh_body("node")),
                               "sensorTypeId": 0},
            "reading": lambda: {"time": when, "nodeId": a.node, "type": 0,
                                "locationId": a.location, "value": 1.0},
            "nodestate": lambda: {"time": when, "nodeId": a.node, "seq_num": n},
        }  # fmt: skip
        if kind not in bodies:
            raise AssertionError(f"no request for the new type {kind!r}: add one to this test")
        return bodies[kind]()

    def change(self, kind: str) -> tuple[int, dict[str, Any]]:
        a, rows = self.a, self.rows
        if RESOURCES[kind].kind == "catalogue":
            target = self._made(kind, self.fresh_body(kind))
            return target, {"roomtype": {"name": unique("rt")}}.get(kind, {"name": "changed"})
        return {
            "deployment": (a.deployment, {"description": "changed"}),
            "room": (a.room, {"roomTypeId": None}),
            "house": (a.house, {"endDate": "2027-06-01T00:00:00"}),
            "location": (a.location, {"roomId": a.room}),
            "node": (a.node, {"locationId": a.location}),
            "sensor": (a.sensor, {"calibrationSlope": 2.0}),
            "reading": (rows["reading"]["id"], {"value": 5.0}),
            "nodestate": (rows["nodestate"]["id"], {"rssi": -1}),
        }[kind]

    def sender(self, op: str, kind: str, method: str) -> Callable[[httpx.Client], httpx.Response]:
        """A function sending this route's request with a client (admin's last)."""
        a = self.a
        if op == "create":
            return lambda h: h.post(f"{kind}/", json=self.fresh_body(kind))
        if op == "update":
            target, body = self.change(kind)
            return lambda h: h.put(f"{kind}/{target}", json=body)
        if op == "delete":
            target = self._made(kind, self.fresh_body(kind))
            return lambda h: h.delete(f"{kind}/{target}")
        if op == "map":
            body = map_body(a.dep_name, a.address, a.room_name, a.node)
            return lambda h: h.post("sync/map/", json=body)
        if op == "batch":
            return lambda h: h.post(
                "sync/batch/", json=readings_batch(a, [7.0], start=T0 + 1000 + next(_serial))
            )
        if op == "hello":
            return lambda h: h.post("sync/hello/", json={"host": "matrix-station"})
        if op == "login":
            return lambda h: h.post("login/", json={"name": "matrix-nobody",
                                                    "password": "not a password"})
        if op == "web-login":
            root = str(h_root(self.admin))
            return lambda h: h.post(root + "login", data={"name": "matrix-nobody",
                                                          "password": "not a password"})
        if op == "bulk":
            rows = [{"__table__": "Reading", "nodeId": a.node, "type": 0,
                     "locationId": a.location, "value": 7.0,
                     "time": f"2027-02-01T00:00:00.{next(_serial):06d}"}]
            return lambda h: h.post("bulk/", content=zlib.compress(json.dumps(rows).encode()))
        if op == "pushstatus":
            return lambda h: h.post("pushstatus/", json={"hostname": "matrix-legacy"})
        if op == "put-query":
            return lambda h: h.put("node/", params={"id": a.node},
                                   json={"locationId": a.location})
        return lambda h: h.request(method, "nosuchtype/1", json={})


def h_root(http: httpx.Client) -> str:
    """The server's root URL (the clients' base is /rest/)."""
    return str(http.base_url).removesuffix("rest/")


def app_routes(db_url: str) -> Iterator[tuple[str, str]]:
    app = create_app(Settings(db_url=db_url))
    try:
        yield from write_routes(app)
    finally:
        app.state.cogent.engine.dispose()


_REQUEST = {
    "create": "`POST /rest/<type>/`",
    "update": "`PUT /rest/<type>/<id>`",
    "delete": "`DELETE /rest/<type>/<id>`",
    "map": "`POST /rest/sync/map/`",
    "batch": "`POST /rest/sync/batch/`",
    "hello": "`POST /rest/sync/hello/`",
    "login": "`POST /rest/login/` (an account that does not exist)",
    "web-login": "`POST /login`, the fleet page's form (an account that does not exist)",
    "bulk": "`POST /rest/bulk/` (original dialect)",
    "pushstatus": "`POST /rest/pushstatus/` (original dialect)",
    "put-query": "`PUT /rest/<type>/?id=N` (original dialect)",
    "fallback": "`POST`, `PUT`, `PATCH`, `DELETE` on `/rest/<unknown type>/`",
}
_WHAT = {"map": "metadata", "batch": "readings, node states", "hello": "check-in",
         "login": "a new key", "web-login": "a session cookie",
         "bulk": "readings, node states", "pushstatus": "check-in",
         "put-query": "any type (node in the matrix)", "fallback": "-"}  # fmt: skip


def table_row(op: str, kind: str) -> tuple[str, str]:
    """(what is written, the request): one line of the table."""
    if kind in RESOURCES:
        res = RESOURCES[kind].kind
        names = ", ".join(n for n, r in RESOURCES.items() if r.kind == res)
        return f"{res}: {names}", _REQUEST[op]
    return _WHAT[op], _REQUEST[op]


_GROUPS = ("catalogue", "shared", "owned", "map", "batch", "hello", "login", "web-login",
           "bulk", "pushstatus", "put-query", "fallback")
_OPS = ("create", "update", "delete")


def _table_order(case: tuple[tuple[str, str], str, str]) -> tuple[int, int, str, str]:
    (op, kind), method, _ = case
    group = RESOURCES[kind].kind if kind in RESOURCES else op
    return _GROUPS.index(group), _OPS.index(op) if op in _OPS else 0, kind, method


def render(seen: dict[tuple[str, str], dict[str, set[str]]]) -> str:
    """The observed matrix as the Markdown table of docs/RELIABILITY.md."""
    head = ["rows", "request", "no key", "wrong key", "revoked key", "read-only",
            "own site", "other site", "admin"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (what, request), cells in seen.items():
        row = [what, request, *("/".join(sorted(cells[w])) for w in WRITE_KEYS)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def test_write_matrix_every_write_route_operation_and_key_kind(world):
    """Every write route x key kind gets the rule's status; the docs show this very table."""
    http = world["http"]
    requests = Requests(world)
    routes = list(app_routes(world["server"].db_url))
    assert len(routes) >= 36, routes  # 11 types x 3 writes, map, batch, the fallback
    problems: list[str] = []
    seen: dict[tuple[str, str], dict[str, set[str]]] = {}
    cases = sorted(((operation(m, p), m, p) for m, p in routes), key=_table_order)
    for (op, kind), method, path in cases:
        want = expected(op, kind)
        send = requests.sender(op, kind, method)
        cells = seen.setdefault(table_row(op, kind), {w: set() for w in WRITE_KEYS})
        for who in WRITE_KEYS:  # admin last: its delete really deletes
            reply = send(http[who])
            allowed = want[who] if isinstance(want[who], set) else {want[who]}
            content = CONTENT.get((op, who))
            note = str(reply.status_code)
            if reply.status_code not in allowed:
                problems.append(
                    f"{method} {path} as {who}: {reply.status_code} "
                    f"(want {want[who]}) {reply.text[:160]}"
                )
            elif reply.status_code >= 400 and op != "web-login":  # that one answers a page
                doc = reply.json()
                if set(doc) - {"error", "status", "valid"} or doc["status"] != reply.status_code:
                    problems.append(f"{method} {path} as {who}: error body {doc}")
            elif content is not None:
                good, note = content
                if not good(reply.json()):
                    problems.append(f"{method} {path} as {who}: {reply.text[:300]}")
            cells[who].add(note)
    assert not problems, "\n".join(problems)
    table = render(seen)
    docs = (REPO / "docs" / "RELIABILITY.md").read_text()
    assert table in docs, f"docs/RELIABILITY.md must show the observed matrix:\n{table}"


def test_a_write_route_without_a_rule_fails_the_matrix(server):
    """The matrix is generated from the route table: a new write route it has no rule for
    stops it (here one added to a copy of the application)."""
    app = create_app(Settings(db_url=server.db_url))
    try:

        @app.post("/rest/sync/gizmo/")
        async def gizmo() -> dict[str, str]:
            return {}

        routes = write_routes(app)
        assert ("POST", "/rest/sync/gizmo/") in routes
        with pytest.raises(AssertionError, match="no authorisation rule"):
            for method, path in routes:
                operation(method, path)
    finally:
        app.state.cogent.engine.dispose()
