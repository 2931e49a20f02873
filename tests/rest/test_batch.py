"""POST /rest/sync/batch/: idempotent bulk ingest, per-row rejection, gzip and size limits."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from datetime import datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select

from models import NodeState, Reading
from tests.live_server import start_server
from tests.rest.conftest import (
    FIVE_MIN,
    T0,
    client,
    make_site,
    nodestates_batch,
    readings_batch,
    table_rows,
)

T0_TIME = datetime(2026, 1, 1, 12, 0, 0)


def counts(reply: dict) -> dict:
    """The acknowledgement without its batch digest and row count (tested on their own)."""
    return {k: reply[k] for k in ("stored", "unchanged", "rejected")}


def _count(db, table, node: int) -> int:
    with db.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.nodeId == node)
        ).scalar_one()


def test_batch_stores_readings_and_node_states_with_delta_times(server, db):
    site = make_site(server)
    body = readings_batch(site, [21.5, 21.52, 21.5])
    body["nodestates"] = nodestates_batch(site, [17, 18])["nodestates"]
    reply = site.batch(body)
    assert reply.status_code == 200, reply.text
    assert counts(reply.json()) == {"stored": 5, "unchanged": 0, "rejected": []}
    with db.connect() as conn:
        rows = conn.execute(
            select(Reading.time, Reading.value, Reading.locationId)
            .where(Reading.nodeId == site.node)
            .order_by(Reading.time)
        ).all()
        states = conn.execute(
            select(NodeState.time, NodeState.seq_num, NodeState.rssi)
            .where(NodeState.nodeId == site.node)
            .order_by(NodeState.time)
        ).all()
    step = timedelta(minutes=5)
    assert [tuple(r) for r in rows] == [
        (T0_TIME, 21.5, site.location),
        (T0_TIME + step, 21.52, site.location),
        (T0_TIME + 2 * step, 21.5, site.location),
    ]
    assert [tuple(s) for s in states] == [(T0_TIME, 17, -60), (T0_TIME + step, 18, -60)]


def test_resent_batch_stores_nothing_and_leaves_the_database_unchanged(server, db):
    site = make_site(server)
    body = readings_batch(site, [20.0 + i / 100 for i in range(500)])
    body["nodestates"] = nodestates_batch(site, list(range(300)))["nodestates"]
    first = site.batch(body)
    assert counts(first.json()) == {"stored": 800, "unchanged": 0, "rejected": []}
    before = (table_rows(db, Reading.__table__), table_rows(db, NodeState.__table__))
    again = site.batch(body)
    assert again.status_code == 200
    assert counts(again.json()) == {"stored": 0, "unchanged": 800, "rejected": []}
    after = (table_rows(db, Reading.__table__), table_rows(db, NodeState.__table__))
    assert after == before


def test_resent_batch_with_a_corrected_value_updates_only_that_row(server, db):
    site = make_site(server)
    site.batch(readings_batch(site, [1.0, 2.0, 3.0]))
    reply = site.batch(readings_batch(site, [1.0, 2.5, 3.0]))
    assert counts(reply.json()) == {"stored": 1, "unchanged": 2, "rejected": []}
    with db.connect() as conn:
        values = conn.execute(
            select(Reading.value).where(Reading.nodeId == site.node).order_by(Reading.time)
        ).scalars()
        assert list(values) == [1.0, 2.5, 3.0]


def test_a_null_value_is_stored_as_null(server, db):
    site = make_site(server)
    reply = site.batch(readings_batch(site, [21.0, None]))
    assert reply.status_code == 200 and counts(reply.json())["stored"] == 2, reply.text
    with db.connect() as conn:
        values = set(conn.execute(select(Reading.value).where(Reading.nodeId == site.node))
                     .scalars())
    assert values == {21.0, None}


def test_batch_with_one_bad_row_rejects_only_that_row_and_says_why(server, db):
    site = make_site(server)
    body = readings_batch(site, [21.0, 22.0, "x", 23.0])
    reply = site.batch(body)
    assert reply.status_code == 200
    assert counts(reply.json()) == {
        "stored": 3,
        "unchanged": 0,
        "rejected": [{"kind": "reading", "index": 2, "count": 1, "code": "bad_value",
                      "reason": "value 'x' is not a number"}],
    }
    assert _count(db, Reading.__table__, site.node) == 3


def test_nan_and_infinite_values_are_rejected_per_row_even_as_bare_json_literals(server, db):
    site = make_site(server)
    body = readings_batch(site, [1.0, math.nan, math.inf, -math.inf, "warm", True, 2.0])
    raw = json.dumps(body).encode()  # the stdlib writes NaN / Infinity literals
    assert b"NaN" in raw
    reply = site.http.post("sync/batch/", content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    reasons = {i: r["reason"] for r in reply.json()["rejected"]
               for i in range(r["index"], r["index"] + r["count"])}
    assert reasons[1] == "value is NaN"
    assert reasons[2] == reasons[3] == "value is infinite"
    assert "not a number" in reasons[4] and "not a number" in reasons[5]
    assert reply.json()["stored"] == 2


def test_times_before_1970_or_a_day_ahead_are_rejected(server):
    site = make_site(server)
    future = int((datetime.now() + timedelta(days=2) - datetime(1970, 1, 1)).total_seconds() * 1e6)
    body = {
        "format": "cogent-batch/1",
        "readings": [
            {"node": site.node, "type": 0, "location": site.location, "t": [-1], "v": [1.0]},
            {"node": site.node, "type": 0, "location": site.location, "t": [future], "v": [1.0]},
        ],
    }
    reply = site.batch(body).json()
    assert reply["stored"] == 0
    assert [r["reason"] for r in reply["rejected"]] == [
        "time is before 1970",
        "time is more than a day in the future",
    ]


def test_unknown_references_and_other_sites_rows_are_rejected_with_reasons(server, db):
    a, b = make_site(server), make_site(server)
    body = {
        "format": "cogent-batch/1",
        "readings": [
            {"node": a.node, "type": 0, "location": a.location, "t": [T0], "v": [1.0]},
            {"node": 99_999_999, "type": 0, "location": a.location, "t": [T0], "v": [1.0]},
            {"node": a.node, "type": 999, "location": a.location, "t": [T0], "v": [1.0]},
            {"node": a.node, "type": 0, "location": 99_999_999, "t": [T0], "v": [1.0]},
            {"node": b.node, "type": 0, "location": b.location, "t": [T0, 1], "v": [1.0, 2.0]},
        ],
        "nodestates": [{"node": b.node, "t": [T0], "seq": [1]}],
    }
    reply = a.batch(body).json()
    assert reply["stored"] == 1
    rejected = [(r["kind"], r["index"], r["count"], r["code"], r["reason"].split(":")[0])
                for r in reply["rejected"]]
    assert rejected == [
        ("reading", 1, 1, "unknown_node", "unknown node 99999999"),
        ("reading", 2, 1, "unknown_type", "unknown sensor type 999"),
        ("reading", 3, 1, "unknown_location", "unknown location 99999999"),
        ("reading", 4, 2, "not_your_site",
         f"location {b.location} is not a location of this key's site"),
        ("nodestate", 0, 1, "not_your_site",
         f"node {b.node} is claimed by another site on this server (a node id "
         "is unique across sites"),
    ]
    assert _count(db, Reading.__table__, b.node) == 0
    assert _count(db, NodeState.__table__, b.node) == 0


def test_malformed_batches_are_refused_whole_with_a_message(server):
    site = make_site(server)
    good = readings_batch(site, [1.0, 2.0])
    cases = [
        ({**good, "format": "cogent-batch/9"}, "format"),
        ({"readings": good["readings"]}, "format"),
        ({**good, "readings": [{**good["readings"][0], "v": [1.0]}]}, "must match"),
        ({**good, "readings": [{**good["readings"][0], "t": [T0, "x"]}]}, "integers"),
        ({**good, "readings": [{**good["readings"][0], "location": None}]}, "location"),
        ({**good, "extra": 1}, "unknown field"),
        ([1, 2], "JSON object"),
    ]
    for body, words in cases:
        reply = site.batch(body)
        assert reply.status_code == 400, (body, reply.text)
        assert words in reply.json()["error"], reply.json()
    not_json = site.http.post("sync/batch/", content=b"{nope")
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]


def test_gzip_body_is_accepted(server, db):
    site = make_site(server)
    raw = gzip.compress(orjson.dumps(readings_batch(site, [5.0] * 50)))
    reply = site.http.post(
        "sync/batch/",
        content=raw,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["stored"] == 50
    assert _count(db, Reading.__table__, site.node) == 50


def test_corrupt_gzip_and_unknown_encodings_are_refused(server):
    site = make_site(server)
    broken = gzip.compress(b'{"format": "cogent-batch/1"}')[:-12]
    reply = site.http.post("sync/batch/", content=broken, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 400
    assert "gzip" in reply.json()["error"]
    reply = site.http.post("sync/batch/", content=b"{}", headers={"Content-Encoding": "br"})
    assert reply.status_code == 415


@pytest.fixture
def small_server(server):
    """A second server on the same database with a 64 KiB body limit."""
    live = start_server(server.db_url, max_body=65536)
    yield live
    live.stop()


def test_oversized_and_gzip_bomb_bodies_get_413_and_write_nothing(server, small_server, db):
    site = make_site(server)
    http = client(small_server, site.key)
    big = readings_batch(site, [1.0] * 10_000)  # ~100 KiB of JSON
    raw = orjson.dumps(big)
    assert len(raw) > 65536
    reply = http.post("sync/batch/", content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    assert "65536" in reply.json()["error"]

    # Chunked upload without Content-Length: the limit is counted on what arrives.
    reply = http.post(
        "sync/batch/", content=iter([raw[i : i + 8192] for i in range(0, len(raw), 8192)])
    )
    assert reply.status_code == 413

    # 20 MiB of JSON that compresses to a few KiB: refused while decompressing.
    bomb = b'{"format": "cogent-batch/1", "readings": [], "pad": "' + b" " * (20 << 20) + b'"}'
    packed = gzip.compress(bomb, 9)
    assert len(packed) < 65536
    reply = http.post("sync/batch/", content=packed, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 413
    assert "decompressed" in reply.json()["error"]
    assert _count(db, Reading.__table__, site.node) == 0


def test_duplicates_inside_one_batch_are_stored_once(server, db):
    site = make_site(server)
    body = {
        "format": "cogent-batch/1",
        "readings": [
            {"node": site.node, "type": 0, "location": site.location,
             "t": [T0, 0, FIVE_MIN], "v": [1.0, 1.5, 2.0]},
        ],
    }  # fmt: skip
    reply = site.batch(body).json()
    assert counts(reply) == {"stored": 2, "unchanged": 1, "rejected": []}
    with db.connect() as conn:
        values = conn.execute(
            select(Reading.value).where(Reading.nodeId == site.node).order_by(Reading.time)
        ).scalars()
        assert list(values) == [1.5, 2.0]


def test_large_batch_of_fifty_thousand_rows_in_one_request(server, db):
    site = make_site(server)
    body = readings_batch(site, [float(i % 400) / 16 for i in range(50_000)])
    raw = gzip.compress(orjson.dumps(body))
    reply = site.http.post("sync/batch/", content=raw, headers={"Content-Encoding": "gzip"})
    assert counts(reply.json()) == {"stored": 50_000, "unchanged": 0, "rejected": []}
    again = site.http.post("sync/batch/", content=raw, headers={"Content-Encoding": "gzip"})
    assert counts(again.json()) == {"stored": 0, "unchanged": 50_000, "rejected": []}
    assert _count(db, Reading.__table__, site.node) == 50_000


def test_the_acknowledgement_names_the_batch_by_the_digest_of_its_decompressed_body(server):
    site = make_site(server)
    raw = orjson.dumps(readings_batch(site, [1.0, 2.0, None]))
    for body, headers in ((raw, {}), (gzip.compress(raw), {"Content-Encoding": "gzip"})):
        reply = site.http.post("sync/batch/", content=body,
                               headers={"Content-Type": "application/json", **headers}).json()
        assert reply["batch"] == hashlib.sha256(raw).hexdigest()
        assert reply["rows"] == 3
        assert reply["stored"] + reply["unchanged"] + sum(
            r["count"] for r in reply["rejected"]) == 3


def test_a_small_body_of_a_million_rejected_rows_gets_a_reply_of_one_run(server, db):
    """Issue 11: 52 bytes of binary batch → 1.4M rejected rows → a 143 MB reply. Rows refused
    for one reason are one run, so the reply is as small as the reasons are few."""
    site = make_site(server)
    body = {"format": "cogent-batch/1", "readings": [
        {"node": 99_999_991, "type": 0, "location": site.location, "t": [T0] + [1] * 999_999,
         "v": [1.0] * 1_000_000}]}
    raw = gzip.compress(orjson.dumps(body))
    assert len(raw) < 100_000
    reply = site.http.post("sync/batch/", content=raw, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 200, reply.text
    assert len(reply.content) < 1000
    assert reply.json()["rejected"] == [
        {"kind": "reading", "index": 0, "count": 1_000_000, "code": "unknown_node",
         "reason": "unknown node 99999991: map it first (POST /rest/sync/map/)"}]


def test_rejections_that_need_more_than_ten_thousand_runs_refuse_the_batch_whole(server, db):
    site = make_site(server)
    values = [1.0 if i % 2 else "x" for i in range(20_002)]  # 10,001 runs of one bad value
    reply = site.batch(readings_batch(site, values))
    assert reply.status_code == 422, reply.text
    assert "smaller batches" in reply.json()["error"]
    assert _count(db, Reading.__table__, site.node) == 0  # nothing of it stored
