"""Per-day counts and checksums: identical on every backend, and served at /rest/summary/…."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models import NodeState, Reading
from models.summary import iter_summary, nodestate_summary, reading_summary
from tests.factories import place_node
from tests.live_server import create_key
from tests.rest.conftest import (
    FIVE_MIN,
    T0,
    client,
    make_site,
    nodestates_batch,
    readings_batch,
)

# Ties after *1000 (1/16 °C steps, 0.0125), negatives, tiny values and a large one.
VALUES = [21.0625, 21.5005, 0.0125, -21.0625, -0.0005, 0.0005, 2.5e-3, 1e9 + 0.0625, 19.99, None]


def milli(v: float) -> int:
    if not -1e12 < v < 1e12:  # also NaN and infinities
        return 0
    x = v * 1000.0
    return -math.floor(0.5 - x) if x < 0 else math.floor(x + 0.5)


def seconds(t: datetime) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def expected_readings(rows):
    groups: dict[tuple, list] = defaultdict(list)
    for loc, node, typ, t, v in rows:
        groups[(loc, node, typ, t.date().isoformat())].append((t, v))
    return {
        k: (len(g), sum(milli(v) for _, v in g if v is not None), sum(seconds(t) for t, _ in g))
        for k, g in groups.items()
    }


def test_summary_queries_give_identical_numbers_on_every_backend(engine):
    start = datetime(2026, 3, 1, 23, 50, 0, 999_999)
    with Session(engine) as s:
        placed = place_node(s, 7, deployment="D", address="A", room="R", node_type=None)
        house, loc = placed.house, placed.location
        rows = []
        for i, v in enumerate(VALUES * 3):
            t = start + timedelta(minutes=3 * i, microseconds=-i)
            rows.append((loc, 7, i % 2, t, v))
        if engine.dialect.name != "mysql":  # MySQL/MariaDB store neither infinities nor NaN
            extra = [math.inf, -math.inf, 5e12, -5e12, math.nan] * 3
            rows += [(loc, 7, 0, start + timedelta(seconds=i + 1), v) for i, v in enumerate(extra)]
        s.execute(
            insert(Reading),
            [
                dict(zip(("locationId", "nodeId", "type", "time", "value"), r, strict=True))
                for r in rows
            ],
        )
        states = [(start + timedelta(minutes=7 * i), 7, 100 + i) for i in range(12)]
        s.execute(insert(NodeState), [{"time": t, "nodeId": n, "seq_num": q} for t, n, q in states])
        s.commit()
    with engine.connect() as conn:
        got = list(iter_summary(conn, reading_summary(house_id=house)))
        got_states = list(iter_summary(conn, nodestate_summary(node_id=7)))
        march2 = list(iter_summary(conn, reading_summary(start=datetime(2026, 3, 2), type_id=1)))
    assert {
        (g["locationId"], g["nodeId"], g["type"], g["day"]): (
            g["count"],
            g["valueSum"],
            g["timeSum"],
        )
        for g in got
    } == expected_readings(rows)
    assert all(isinstance(g["valueSum"], int) and isinstance(g["day"], str) for g in got)
    assert sum(g["count"] for g in march2) == sum(
        1 for r in rows if r[2] == 1 and r[3] >= datetime(2026, 3, 2)
    )
    by_day: dict[str, list] = defaultdict(list)
    for t, _, q in states:
        by_day[t.date().isoformat()].append((t, q))
    assert {g["day"]: (g["count"], g["timeSum"], g["seqSum"]) for g in got_states} == {
        d: (len(v), sum(seconds(t) for t, _ in v), sum(q for _, q in v)) for d, v in by_day.items()
    }


def test_summary_endpoints_match_what_was_pushed(server):
    site = make_site(server)
    values = [21.0625, 20.5, -3.0005, 18.25] * 100  # 400 rows over ~33 hours
    site.batch(readings_batch(site, values))
    site.batch(nodestates_batch(site, list(range(50))))
    reply = site.http.get("summary/reading/", params={"houseId": site.house})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    t0 = datetime(2026, 1, 1, 12)
    rows = [
        (site.location, site.node, 0, t0 + timedelta(seconds=300 * i), v)
        for i, v in enumerate(values)
    ]
    want = expected_readings(rows)
    assert {
        (g["locationId"], g["nodeId"], g["type"], g["day"]): (
            g["count"],
            g["valueSum"],
            g["timeSum"],
        )
        for g in reply.json()
    } == want
    one_day = site.http.get(
        "summary/reading/",
        params={"nodeId": site.node, "start": "2026-01-02", "end": "2026-01-03T00:00:00Z"},
    ).json()
    assert [g["day"] for g in one_day] == ["2026-01-02"]
    states = site.http.get("summary/nodestate/", params={"locationId": site.location}).json()
    time_sum = sum(12 * 3600 + 300 * i for i in range(50))
    assert states == [
        {"nodeId": site.node, "day": "2026-01-01", "count": 50, "seqSum": sum(range(50)),
         "timeSum": time_sum}
    ]  # fmt: skip
    assert T0 and FIVE_MIN  # the batch helpers' time base: 2026-01-01T12:00:00Z, 5 minutes


def test_summary_refuses_unknown_or_bad_parameters(server):
    site = make_site(server)
    for params, words in (({"colour": "x"}, "unknown parameter"), ({"houseId": "x"}, "integer"),
                          ({"start": "soon"}, "ISO-8601"), ({"type": "t"}, "integer")):  # fmt: skip
        reply = site.http.get("summary/reading/", params=params)
        assert reply.status_code == 400 and words in reply.json()["error"], reply.text
    assert site.http.get("summary/nodestate/", params={"type": 0}).status_code == 400


def test_an_admin_summary_of_every_house_at_once_is_refused_with_what_to_ask_instead(server):
    """Grouping every row of a fleet took tens of seconds on a few million (issue 11): an
    unrestricted key names a house, location or node, or asks for at most 31 days."""
    site = make_site(server)
    site.batch(readings_batch(site, [1.0, 2.0]))
    with client(server, create_key(server.db_url, None, "readonly")) as http:
        for path in ("summary/reading/", "summary/nodestate/"):
            reply = http.get(path)
            assert reply.status_code == 400, reply.text
            assert "houseId" in reply.json()["error"] and "31 days" in reply.json()["error"]
            assert http.get(path, params={"start": "2026-01-01",
                                          "end": "2026-03-01"}).status_code == 400
            for params in ({"houseId": site.house}, {"nodeId": site.node},
                           {"locationId": site.location},
                           {"start": "2026-01-01", "end": "2026-02-01"}):
                assert http.get(path, params=params).status_code == 200, (path, params)
        [group] = http.get("summary/reading/", params={"houseId": site.house}).json()
        assert group["count"] == 2
    assert site.http.get("summary/reading/").status_code == 200  # a site's own houses
