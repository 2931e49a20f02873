"""Small requests that asked for large work (issue 11, item 4), against a real server: its
resident memory, its CPU time and the latency of other requests meanwhile, measured from
outside and held to the ceilings docs/RELIABILITY.md states.

Torture (``make torture``): each scenario sends its request a few times over.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from bench.procstats import RssSampler, cpu_seconds, rss_kib
from models.protocol.encode import BatchPayload, ReadingGroup, ValueSeries
from tests.live_server import LiveServer, start_server
from tests.reliability.kit import record
from tests.rest.conftest import T0, make_site

pytestmark = pytest.mark.torture

RSS_CEILING_MIB = 150  # growth of the server's resident set over its idle size
CPU_BUDGET_S = 5.0  # server CPU seconds for one hostile request
LATENCY_CEILING_S = 2.0  # a /rest/version/ asked meanwhile
MAP_CPU_BUDGET_S = 40.0  # a map creating 40,000 rows
REPEATS = 3


@dataclass
class Cost:
    rss_growth_mib: float = 0.0
    cpu_s: float = 0.0
    worst_version_s: float = 0.0
    statuses: list[int] = field(default_factory=list)
    reply_bytes: int = 0


@contextmanager
def measured(server: LiveServer) -> Iterator[Cost]:
    """Samples the server's RSS every 20 ms and asks /rest/version/ every 100 ms while the
    block runs."""
    assert server.process is not None
    pid = server.process.pid
    cost = Cost()
    idle = rss_kib(pid)
    cpu0 = cpu_seconds(pid)
    done = threading.Event()
    rss = RssSampler([pid], every=0.02)

    def ask() -> None:
        with httpx.Client(timeout=30) as http:
            while not done.wait(0.1):
                t0 = time.monotonic()
                http.get(server.url + "version/")
                cost.worst_version_s = max(cost.worst_version_s, time.monotonic() - t0)

    asker = threading.Thread(target=ask)
    with rss:
        asker.start()
        try:
            yield cost
        finally:
            done.set()
            asker.join()
    cost.rss_growth_mib = (max(rss.peak_kib, idle) - idle) / 1024
    cost.cpu_s = cpu_seconds(pid) - cpu0


def _json_batch_of_zeros(rows: int) -> bytes:
    """A gzip JSON batch whose one series claims ``rows`` rows: ~16 MB of JSON in ~30 KB."""
    head = b'{"format":"cogent-batch/1","readings":[{"node":1,"type":0,"location":1,"t":[0'
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(head)]
    chunk = b",0" * 100_000
    for _ in range(rows // 100_000):
        out.append(z.compress(chunk))
    out.append(z.compress(b'],"v":[0.0' + b",0.0" * 10 + b"]}]}"))
    out.append(z.flush())
    return b"".join(out)


def _binary_batch_unknown_node(rows: int) -> bytes:
    times = list(range(T0, T0 + rows * 1_000_000, 1_000_000))
    series = [ValueSeries(type=0, location=1, rows=None, values=[20.5] * rows)]
    return BatchPayload(readings=[ReadingGroup(node=2_000_000_000, times=times,
                                               series=series)]).binary()


def _empty_gzip_members(mib: int) -> bytes:
    member = gzip.compress(b"", 1)
    return member * (mib * 1024 * 1024 // len(member))


def _map_of_houses(n: int) -> bytes:
    body = {"deployment": [{"key": 1, "name": "Amplified"}],
            "roomtype": [{"key": 1, "name": "R"}],
            "room": [{"key": 1, "name": "Kitchen", "roomType": 1}],
            "house": [{"key": i, "deployment": 1, "address": f"{i} Road"} for i in range(n)],
            "location": [{"key": i, "house": i, "room": 1} for i in range(n)]}
    return gzip.compress(orjson.dumps(body))


JSON_GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


@dataclass(frozen=True)
class Scenario:
    path: str
    build: Callable[[], bytes]
    headers: dict[str, str]
    cpu_budget_s: float = CPU_BUDGET_S
    reply_ceiling: int = 64 * 1024  # refusals are summarised, not listed row by row


SCENARIOS: dict[str, Scenario] = {
    "json batch of 8M zeros, gzip": Scenario(
        "sync/batch/", lambda: _json_batch_of_zeros(8_000_000), JSON_GZIP),
    "binary batch of 1.4M rows of an unknown node": Scenario(
        "sync/batch/", lambda: _binary_batch_unknown_node(1_400_000),
        {"Content-Type": "application/vnd.cogent-batch"}),
    "30 MiB of empty gzip members": Scenario(
        "sync/batch/", lambda: _empty_gzip_members(30), JSON_GZIP),
    # Real work, not amplification: 40,000 rows created (a map carries at most 50,000), an id
    # each in the reply; what must hold is that it is linear and leaves the event loop free.
    "map of 20,000 houses and locations": Scenario(
        "sync/map/", lambda: _map_of_houses(20_000), JSON_GZIP,
        cpu_budget_s=MAP_CPU_BUDGET_S, reply_ceiling=8 * 1024 * 1024),
}


@pytest.fixture(scope="module")
def amplified(tmp_path_factory) -> Iterator[tuple[LiveServer, str]]:
    from base.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('amplification') / 'central.db'}"
    upgrade(url)
    server = start_server(url)
    try:
        site = make_site(server)
        yield server, site.key
    finally:
        server.stop()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_small_hostile_request_costs_bounded_memory_cpu_and_latency(amplified, scenario):
    server, key = amplified
    case = SCENARIOS[scenario]
    body = case.build()
    with httpx.Client(base_url=server.url, timeout=120,
                      headers={"Authorization": f"Bearer {key}", **case.headers}) as http:
        http.get("version/")
        worst = Cost()
        for _ in range(REPEATS):
            with measured(server) as cost:
                reply = http.post(case.path, content=body)
            cost.statuses.append(reply.status_code)
            cost.reply_bytes = len(reply.content)
            assert reply.status_code < 500, reply.text[:500]
            worst = Cost(max(worst.rss_growth_mib, cost.rss_growth_mib),
                         max(worst.cpu_s, cost.cpu_s),
                         max(worst.worst_version_s, cost.worst_version_s),
                         worst.statuses + cost.statuses, max(worst.reply_bytes, cost.reply_bytes))
    record(f"amplification: {scenario}", backend="sqlite", body_bytes=len(body),
           statuses=worst.statuses, reply_bytes=worst.reply_bytes,
           rss_growth_mib=round(worst.rss_growth_mib, 1), cpu_s=round(worst.cpu_s, 2),
           worst_version_s=round(worst.worst_version_s, 3))
    assert worst.rss_growth_mib < RSS_CEILING_MIB, worst
    assert worst.cpu_s < case.cpu_budget_s, worst
    assert worst.worst_version_s < LATENCY_CEILING_S, worst
    assert worst.reply_bytes < case.reply_ceiling, worst
