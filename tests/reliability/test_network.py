"""Network faults between the daemon and the server, through the fault proxy on 127.0.0.1.

tests/push/test_e2e.py puts each fault once inside one ``once`` cycle. Here the real
daemon meets a seeded storm of them — resets before and after the server commits,
stalls longer than the read timeout, truncated replies, slow trickles, 502/503 from a
fake gateway, and a captive portal answering ``200`` with HTML — on every kind of
request (version, map, batches), including runs longer than the in-cycle retries, so
whole cycles fail and the daemon's backoff has to bring it back without help.
"""

from __future__ import annotations

import random
import threading

import pytest

from tests.faultproxy import FaultProxy
from tests.oracle import assert_replica
from tests.pushkit import seed_cogent_house
from tests.reliability.kit import (
    Pusher,
    caught_up,
    record,
    wait_for,
)

KINDS = ("502", "503", "reset_before", "reset_after", "truncate", "stall", "trickle", "portal")
PORTAL = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 52\r\n"
    b"Connection: close\r\n\r\n<html><body>Please log in to the Wi-Fi</body></html>"
)


class StormProxy(FaultProxy):
    """The fault proxy plus ``portal``: a hotel Wi-Fi login page answering 200 in the
    server's place (the request never reaches the server)."""

    def __init__(self, upstream_url: str, stall_seconds: float):
        super().__init__(upstream_url, stall_seconds=stall_seconds)
        self._local = threading.local()

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _next_fault(self) -> str:
        fault = super()._next_fault()
        self._local.portal = fault == "portal"
        return "pass" if fault == "portal" else fault

    def _forward(self, request: bytes) -> bytes | None:
        if getattr(self._local, "portal", False):
            return PORTAL
        return super()._forward(request)

    def pending(self) -> int:
        with self._lock:
            return len(self.faults)


def storm(rng: random.Random, faults: int, stalls: int) -> list[str]:
    """``faults`` faults with a few passes between them, exactly ``stalls`` of them stalls
    (each costs a read timeout), and one run of four in a row (more than a cycle retries)."""
    others = [k for k in KINDS if k != "stall"]
    chosen = ["stall"] * stalls + [rng.choice(others) for _ in range(faults - stalls - 4)]
    rng.shuffle(chosen)
    plan: list[str] = []
    for fault in chosen:
        plan.append(fault)
        plan.extend(["pass"] * rng.choice((0, 0, 1, 2, 3)))
    at = rng.randrange(len(plan))
    plan[at:at] = [rng.choice(others) for _ in range(4)]
    return plan


def push_through_a_storm(pair, *, faults: int, stalls: int, seed: int, pushlimit: int) -> dict:
    proxy = StormProxy(pair.server.url, stall_seconds=3)  # the pusher's read timeout is 2 s
    plan = storm(random.Random(seed), faults, stalls)
    proxy.inject(*plan)
    config = pair.config(pushlimit=pushlimit, url=proxy.url)
    daemon = Pusher(config.path, name="daemon").start()
    try:
        wait_for(lambda: proxy.pending() == 0, 60 + 5 * faults, "every fault to be acted out")
        wait_for(caught_up(pair.local), 300, "the daemon to catch up without help")
        assert daemon.alive, daemon.output[-3000:]
    finally:
        code = daemon.terminate()
        proxy.close()
    assert code == 0, daemon.output[-3000:]
    injected = {k: proxy.seen[k] for k in KINDS}
    assert sum(injected.values()) == faults
    return {"faults": injected, "requests": proxy.requests,
            "failed_cycles": daemon.output.count("cycle failed"),
            "batch_retries": daemon.output.count("batch failed")}


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_daemon_pushes_through_a_storm_of_every_network_fault_and_recovers_alone(pair):
    seed_cogent_house(pair.local, days=3)
    figures = push_through_a_storm(pair, faults=24, stalls=1, seed=4, pushlimit=300)
    assert figures["failed_cycles"] >= 1  # the run of four faults outlasted a cycle's retries
    result = assert_replica(pair.local, pair.remote)
    record("network faults (suite)", **figures, comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(3600)
@pytest.mark.parametrize(
    "backend",
    [pytest.param("sqlite", id="sqlite"), pytest.param("mysql", id="mysql",
                                                       marks=pytest.mark.mysql)],
)
def test_torture_six_hundred_network_faults_during_a_push(pair, backend):
    seed_cogent_house(pair.local, days=40)
    figures = push_through_a_storm(pair, faults=600, stalls=60, seed=600, pushlimit=300)
    result = assert_replica(pair.local, pair.remote)
    record("network faults (torture)", backend=backend, **figures, comparison=result)
