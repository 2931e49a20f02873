"""Browsing in the original dialect, beside today's: value-prefixed comparisons
(``?id=le_3``, ``?startDate=gt_2012-05-20``), ``*`` wildcards, ``None`` for null,
``sort(-id)``, ``Range: items=0-24`` answered with ``Content-Range``."""

from __future__ import annotations

import pytest

from tests.live_server import create_key
from tests.rest.conftest import client, unique


@pytest.fixture
def deployments(server):
    """Three deployments with one shared name prefix; the admin client."""
    prefix = unique("Browse")
    with client(server, create_key(server.db_url, None, "admin")) as http:
        ids = []
        for i, (start, end) in enumerate([("2012-05-01T00:00:00", None),
                                          ("2012-06-01T00:00:00", "2013-01-01T00:00:00"),
                                          ("2012-07-01T00:00:00", None)]):
            reply = http.post("deployment/", json={"name": f"{prefix}_{i}*x",
                                                    "startDate": start, "endDate": end})
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["id"])
        yield prefix, ids, http


def _ids(reply) -> list[int]:
    assert reply.status_code == 200, reply.text
    return [r["id"] for r in reply.json()]


def test_value_prefixed_comparisons_filter_numbers_and_times(deployments):
    prefix, ids, http = deployments
    mine = {"name": f"{prefix}*"}
    assert _ids(http.get("deployment/", params={**mine, "id": f"le_{ids[1]}"})) == ids[:2]
    assert _ids(http.get("deployment/", params={**mine, "id": f"gt_{ids[0]}"})) == ids[1:]
    assert _ids(http.get("deployment/", params={**mine, "startDate": "gt_2012-05-20"})) == ids[1:]
    assert _ids(http.get("deployment/", params={**mine, "startDate": "lt_2012-06-01"})) == ids[:1]


def test_wildcards_match_the_rest_literally_and_none_is_null(deployments):
    prefix, ids, http = deployments
    assert _ids(http.get("deployment/", params={"name": f"{prefix}*"})) == ids
    assert _ids(http.get("deployment/", params={"name": f"{prefix}_1*"})) == [ids[1]]
    # '_' and the other characters are literal; only '*' is a wildcard.
    assert _ids(http.get("deployment/", params={"name": f"{prefix}%"})) == []
    assert _ids(http.get("deployment/", params={"name": f"{prefix}*", "endDate": "None"})) == [
        ids[0], ids[2]]


def test_sort_and_range_page_as_the_original_did(deployments):
    prefix, ids, http = deployments
    mine = {"name": f"{prefix}*"}
    reply = http.get(f"deployment/?name={prefix}*&sort(-id)")
    assert _ids(reply) == ids[::-1]
    reply = http.get("deployment/", params=mine, headers={"Range": "items=1-5"})
    assert _ids(reply) == ids[1:]
    assert reply.headers["Content-Range"] == "items 1-2/3"
    bad = http.get("deployment/", params=mine, headers={"Range": "items=5-1"})
    assert bad.status_code == 400


def test_none_on_a_column_that_must_not_be_null_matches_nothing_instead_of_a_400(server):
    """Regression, found by running the original client: it asks house/?deploymentId=None
    for a house whose deployment it has not mapped, and reads the answer as a list."""
    with client(server, create_key(server.db_url, None, "admin")) as http:
        reply = http.get("house/", params={"address": unique("1 Road"), "deploymentId": "None"})
    assert reply.status_code == 200 and reply.json() == []
