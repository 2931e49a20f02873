"""GET /metrics: Prometheus' text format, parsed with Prometheus' own parser; a read-only or
admin key (it names every site)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import create_key
from tests.rest.conftest import client, make_site, readings_batch


def _url(server) -> str:
    return server.url.replace("/rest/", "/metrics")


def _scrape(http, url: str) -> dict[str, list]:
    reply = http.get(url)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(reply.text)}


def _value(samples, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_batches_rows_requests_and_site_contact(server):
    site = make_site(server)
    with client(server, create_key(server.db_url, None, "readonly")) as http:
        before = _scrape(http, _url(server))
        reply = site.batch(readings_batch(site, [1.0, 2.0, "x"]))
        assert reply.status_code == 200
        after = _scrape(http, _url(server))
    rows = after["cogent_batch_rows"]
    stored = _value(rows, "cogent_batch_rows_total", outcome="stored") - _value(
        before["cogent_batch_rows"], "cogent_batch_rows_total", outcome="stored")
    rejected = _value(rows, "cogent_batch_rows_total", outcome="rejected") - _value(
        before["cogent_batch_rows"], "cogent_batch_rows_total", outcome="rejected")
    assert (stored, rejected) == (2, 1)
    assert _value(after["cogent_batches"], "cogent_batches_total", dialect="native") >= 1
    assert _value(after["cogent_batch_apply_seconds"], "cogent_batch_apply_seconds_count") >= 1
    assert _value(after["cogent_http_requests"], "cogent_http_requests_total",
                  route="/rest/sync/batch/", status="200") >= 1
    ages = [s for s in after["cogent_site_last_contact_age_seconds"]
            if s.labels["site"] == site.name]
    assert ages and 0 <= ages[0].value < 300
    assert "cogent_db_connections_in_use" in after


def test_metrics_need_a_read_only_or_admin_key(server):
    site = make_site(server)
    with client(server) as anonymous:
        assert anonymous.get(_url(server)).status_code == 401
    with client(server, site.key) as http:
        assert http.get(_url(server)).status_code == 403
