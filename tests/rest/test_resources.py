"""Browsing /rest/<type>/: list, get, create, update, delete; filters, sort and pagination."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from models import DATA_TABLES
from tests.live_server import create_key
from tests.rest.conftest import (
    FIVE_MIN,
    T0,
    client,
    make_site,
    next_node_id,
    readings_batch,
    unique,
)

TYPES = [m.__tablename__.lower() for m in DATA_TABLES]
_catalogue_ids = itertools.count(1000)


@pytest.fixture
def admin(server):
    with client(server, create_key(server.db_url, None, "admin")) as http:
        yield http


def _new_row(kind: str, site, admin) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body to create one ``kind`` row, columns to change with PUT)."""
    if kind == "sensortype":
        return {"id": next(_catalogue_ids), "name": unique("st"), "code": "X", "units": "u"}, {
            "units": "v"
        }
    if kind == "nodetype":
        return {"id": next(_catalogue_ids), "name": unique("nt"), "period": 60}, {"period": 30}
    if kind == "roomtype":
        return {"name": unique("rt")}, {"name": unique("rt2")}
    if kind == "room":
        return {"name": unique("room"), "roomTypeId": 1}, {"roomTypeId": 2}
    if kind == "deployment":
        return {"name": unique("dep"), "startDate": "2026-01-01T00:00:00Z"}, {"description": "new"}
    if kind == "house":
        return {"deploymentId": site.deployment, "address": unique("addr")}, {
            "endDate": "2026-02-01T00:00:00"
        }
    if kind == "location":
        room = admin.post("room/", json={"name": unique("room")}).json()["id"]
        return {"houseId": site.house, "roomId": room}, {}
    if kind == "node":
        return {"id": next_node_id(), "locationId": site.location}, {"nodeTypeId": 1}
    if kind == "sensor":
        return {"nodeId": site.node, "sensorTypeId": 2}, {"calibrationSlope": 3.0}
    if kind == "reading":
        return (
            {"time": "2026-03-01T00:00:00.250000", "nodeId": site.node, "type": 0,
             "locationId": site.location, "value": 1.5},
            {"value": 2.5},
        )  # fmt: skip
    if kind == "nodestate":
        return {"time": "2026-03-01T00:00:00", "nodeId": site.node, "seq_num": 3}, {"rssi": -70}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", TYPES)
def test_every_resource_can_be_created_listed_fetched_and_updated(server, admin, kind):
    site = make_site(server)
    writer = admin if kind in ("sensortype", "nodetype", "roomtype") else site.http
    body, change = _new_row(kind, site, admin)
    created = writer.post(f"{kind}/", json=body)
    assert created.status_code == 201, created.text
    row = created.json()
    assert created.headers["location"] == f"/rest/{kind}/{row['id']}"
    for col, value in body.items():
        if col.endswith("Date") or col == "time":
            assert row[col] == value.removesuffix("Z")
        else:
            assert row[col] == value
    fetched = writer.get(f"{kind}/{row['id']}")
    assert fetched.status_code == 200 and fetched.json() == row
    listed = writer.get(f"{kind}/", params={"id": row["id"]})
    assert listed.status_code == 200 and listed.json() == [row]

    updated = writer.put(f"{kind}/{row['id']}", json=change)
    assert updated.status_code == 200, updated.text
    expected = {**row, **{k: v.removesuffix("Z") if isinstance(v, str) and k.endswith("Date") else v
                          for k, v in change.items()}}  # fmt: skip
    assert updated.json() == expected, "PUT must leave unspecified columns alone"
    assert writer.get(f"{kind}/{row['id']}").json() == expected


def test_a_browser_opening_sensortype_sees_the_json_list(server):
    with client(server) as http:
        reply = http.get("sensortype/", headers={"Accept": "text/html"})
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        rows = reply.json()
        assert isinstance(rows, list) and rows[0]["name"] == "Temperature"
        assert http.get("sensortype", follow_redirects=True).json() == rows


def test_unknown_type_is_404_listing_the_valid_types(server):
    with client(server) as http:
        reply = http.get("gizmo/")
    assert reply.status_code == 404
    doc = reply.json()
    assert "sensortype" in doc["error"] and sorted(doc["valid"]) == sorted(TYPES)
    with client(server) as http:  # type names in any case, as the original took them
        reply = http.get("SensorType/")
        assert reply.status_code == 200
        assert {r["__table__"] for r in reply.json()} == {"SensorType"}


def test_filters_on_values_containing_underscores(server, admin):
    names = [unique("dep_with_underscores"), unique("dep_with_underscores")]
    for name in names:
        assert admin.post("deployment/", json={"name": name}).status_code == 201
    assert [r["name"] for r in admin.get("deployment/", params={"name": names[0]}).json()] == [
        names[0]
    ]
    both = admin.get("deployment/", params=[("name", names[0]), ("name", names[1])]).json()
    assert sorted(r["name"] for r in both) == sorted(names)
    ne = admin.get(
        "deployment/", params={"ne_name": names[0], "ge_name": "dep_with_underscores"}
    ).json()
    assert names[1] in [r["name"] for r in ne] and names[0] not in [r["name"] for r in ne]


def test_comparisons_on_time_and_on_a_column_whose_name_has_an_underscore(server):
    site = make_site(server)
    site.batch(readings_batch(site, [float(i) for i in range(10)]))  # 12:00 .. 12:45
    states = [{"node": site.node, "t": [T0, FIVE_MIN, FIVE_MIN], "seq": [5, 6, 7]}]
    site.batch({"format": "cogent-batch/1", "nodestates": states})
    get = site.http.get
    between = get("reading/", params={"nodeId": site.node, "ge_time": "2026-01-01T12:10:00Z",
                                      "lt_time": "2026-01-01T12:30:00"}).json()  # fmt: skip
    assert [r["value"] for r in between] == [2.0, 3.0, 4.0, 5.0]
    with_offset = get(
        "reading/", params={"nodeId": site.node, "gt_time": "2026-01-01T13:35:00+01:00"}
    ).json()
    assert [r["value"] for r in with_offset] == [8.0, 9.0]
    assert between[0]["time"] == "2026-01-01T12:10:00"
    assert [
        r["seq_num"]
        for r in get("nodestate/", params={"nodeId": site.node, "ge_seq_num": 6}).json()
    ] == [6, 7]
    assert [
        r["seq_num"] for r in get("nodestate/", params={"nodeId": site.node, "seq_num": 5}).json()
    ] == [5]


def test_null_filters_and_sorting_with_nulls(server, admin):
    ids = [next_node_id() for _ in range(4)]
    site = make_site(server)
    for i, node in enumerate(ids):
        loc = site.location if i % 2 else None
        assert admin.post("node/", json={"id": node, "locationId": loc}).status_code == 201
    span = {"ge_id": ids[0], "le_id": ids[-1]}
    assert [
        r["id"] for r in admin.get("node/", params={**span, "locationId": "null"}).json()
    ] == ids[0::2]
    assert [
        r["id"] for r in admin.get("node/", params={**span, "ne_locationId": "null"}).json()
    ] == ids[1::2]
    asc = admin.get("node/", params={**span, "_sort": "locationId"}).json()
    assert [r["id"] for r in asc] == ids[1::2] + ids[0::2]  # NULLs last
    desc = admin.get("node/", params={**span, "_sort": "-locationId"}).json()
    assert [r["id"] for r in desc] == ids[0::2][::-1] + ids[1::2][::-1]


def _walk(http, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    pages = 0
    reply = http.get(path, params=params)
    while True:
        assert reply.status_code == 200, reply.text
        pages += 1
        rows += reply.json()
        link = reply.headers.get("link")
        if not link:
            return rows, pages
        assert link.endswith('>; rel="next"')
        reply = http.get(link[1 : link.index(">")])


def test_pagination_walks_every_row_once_in_order(server):
    site = make_site(server)
    values = [float(i % 7) for i in range(250)]  # many equal values: ties broken by id
    site.batch(readings_batch(site, values))
    by_id, pages = _walk(site.http, "reading/", {"nodeId": site.node, "_limit": 40})
    assert pages == 7 and len(by_id) == 250
    ids = [r["id"] for r in by_id]
    assert ids == sorted(ids) and len(set(ids)) == 250
    by_time, _ = _walk(site.http, "reading/", {"nodeId": site.node, "_limit": 33, "_sort": "-time"})
    assert [r["time"] for r in by_time] == sorted((r["time"] for r in by_id), reverse=True)
    by_value, _ = _walk(
        site.http, "reading/", {"nodeId": site.node, "_limit": 16, "_sort": "value"}
    )
    assert sorted(r["id"] for r in by_value) == ids
    assert [r["value"] for r in by_value] == sorted(values)
    desc_id, _ = _walk(site.http, "reading/", {"nodeId": site.node, "_limit": 100, "_sort": "-id"})
    assert [r["id"] for r in desc_id] == ids[::-1]


def test_bad_list_parameters_are_400_with_what_is_valid(server, admin):
    cases = [
        ({"colour": "red"}, "unknown column"),
        ({"ge_colour": "1"}, "unknown column"),
        ({"_sort": "colour"}, "cannot sort"),
        ({"_limit": "0"}, "_limit"),
        ({"_limit": "10001"}, "_limit"),
        ({"_after": "x"}, "_after"),
        ({"_sort": "time", "_after": "5"}, "_cursor"),
        ({"_cursor": "garbage"}, "_cursor"),
        ({"nodeId": "abc"}, "not an integer"),
        ({"ge_time": "yesterday"}, "ISO-8601"),
        ({"value": "nan"}, "finite"),
        ({"_frobnicate": "1"}, "unknown"),
    ]
    for params, words in cases:
        reply = admin.get("reading/", params=params)
        assert reply.status_code == 400, (params, reply.text)
        assert words in reply.json()["error"], (params, reply.json())
    reply = admin.get("reading/", params={"colour": "red"})
    assert "nodeId" in reply.json()["valid"]


def test_bad_bodies_are_4xx_with_a_message_never_5xx(server, admin):
    site = make_site(server)
    cases = [
        ("post", "house/", {"deploymentId": site.deployment}, 422, "address"),
        ("post", "house/", {"deploymentId": 99_999_999, "address": "x"}, 422, "no deployment"),
        ("post", "house/", {"deploymentId": site.deployment, "address": "x" * 300}, 422, "255"),
        ("post", "house/", {"id": 5, "deploymentId": site.deployment, "address": "y"}, 400,
         "assigned"),
        ("post", "house/", {"colour": "red"}, 400, "unknown column"),
        ("post", "house/", [1, 2], 400, "JSON object"),
        ("post", "reading/", {"time": "2026-01-01", "nodeId": site.node, "type": 0,
                              "locationId": site.location, "value": "hot"}, 422, "not a number"),
        ("post", "node/", {"id": 2**40}, 422, "out of range"),
        ("put", f"house/{site.house}", {"id": site.house + 1}, 400, "differs"),
        ("put", "house/99999999", {"address": "z"}, 404, "no house"),
        ("get", "house/abc", None, 422, "integer"),
    ]  # fmt: skip
    for method, path, body, status, words in cases:
        reply = admin.request(method, path, json=body)
        assert reply.status_code == status, (path, body, reply.text)
        assert words in reply.json()["error"], reply.json()
    dup = admin.post(
        "deployment/", json={"name": admin.get(f"deployment/{site.deployment}").json()["name"]}
    )
    assert dup.status_code == 409 and "name" in dup.json()["error"]


def test_delete_only_for_admins_and_only_without_dependants(server, admin):
    site = make_site(server)
    site.batch(readings_batch(site, [1.0]))
    reading = site.http.get("reading/", params={"nodeId": site.node}).json()[0]
    assert site.http.delete(f"reading/{reading['id']}").status_code == 403
    blocked = admin.delete(f"house/{site.house}")
    assert blocked.status_code == 409
    assert "location" in blocked.json()["error"]
    assert admin.delete(f"reading/{reading['id']}").status_code == 204
    assert admin.get(f"reading/{reading['id']}").status_code == 404
    assert admin.delete(f"reading/{reading['id']}").status_code == 404
    room = admin.post("room/", json={"name": unique("spare")}).json()
    assert admin.delete(f"room/{room['id']}").status_code == 204


def test_values_no_database_can_store_are_refused_before_reaching_it(server, admin):
    site = make_site(server)
    cases = [
        ({"name": "nul\x00byte"}, "NUL"),
        ({"name": unique("d"), "startDate": "0001-01-01T00:00:00"}, "out of range"),
    ]
    for body, words in cases:
        reply = site.http.post("deployment/", json=body)
        assert reply.status_code == 422 and words in reply.json()["error"], reply.text
    surrogate = b'{"name": "\\ud800"}'
    reply = site.http.post("deployment/", content=surrogate)
    assert reply.status_code == 422 and "Unicode" in reply.json()["error"]
    huge = site.http.post("reading/", content=b'{"value": 1' + b"0" * 400 + b"}")
    assert huge.status_code == 422
    assert admin.get("reading/", params={"_after": str(2**70)}).status_code == 400
    assert admin.get(f"reading/{2**70}").status_code == 404
    assert admin.get("deployment/", params={"name": "a\x00"}).status_code == 400


def test_large_pages_are_gzipped_for_clients_that_ask(server):
    site = make_site(server)
    site.batch(readings_batch(site, [1.0] * 200))
    reply = site.http.get(
        "reading/", params={"nodeId": site.node}, headers={"Accept-Encoding": "gzip"}
    )
    assert reply.headers["content-encoding"] == "gzip"
    assert len(reply.json()) == 200
