"""metrics_file: after every cycle the pusher rewrites a node exporter textfile, parsed here
with Prometheus' own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.pushkit import T0 as START
from tests.pushkit import insert_unchecked, push_once, seed_cogent_house, write_config


def _samples(path) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_each_cycle_rewrites_the_textfile_with_backlog_set_aside_and_last_success(pair):
    data = seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, [{"nodeId": 999, "type": 0, "time": START, "locationId": 9999,
                                   "value": 1.0}])
    prom = pair.dir / "cogent.prom"
    config = write_config(pair.dir / "m.conf", pair.local,
                          {"central": (pair.server.url, pair.key)}, metrics_file=prom)
    [report] = push_once(config)
    assert report.ok, report.error
    got = _samples(prom)
    central = (("remote", "central"),)
    assert got[("cogent_push_last_cycle_ok", central)] == 1
    assert got[("cogent_push_last_cycle_rows_sent", central)] == data.readings + data.node_states
    assert got[("cogent_push_set_aside_rows", central)] == 1
    assert got[("cogent_push_backlog_rows", (("remote", "central"), ("stream", "Reading")))] == 0
    assert got[("cogent_push_last_success_timestamp_seconds", central)] > 1.7e9
    assert abs(got[("cogent_push_clock_offset_seconds", central)]) < 3
    assert not list(pair.dir.glob(".cogent.prom.*"))  # no temporary file left behind
