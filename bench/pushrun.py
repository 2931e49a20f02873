"""Run the real pusher against a server and measure it.

In a process of its own (``python -m bench.pushrun CONFIG``, what the catch-up and
memory scenarios do) it runs one full cycle — the catch-up — then a second one
(the idle cycle), and prints one JSON line: times, per-stream requests and bytes
(headers included), batch latencies, and its own peak RSS (``VmHWM``). The fleet
runs :func:`push_station` in threads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from base.config import Config, load_config
from base.db import make_engine
from base.memory import limit_malloc_arenas
from models.protocol.encode import BatchPayload
from push.client import RemoteClient
from push.cycle import RemoteReport, RemoteSync


@dataclass
class StreamTraffic:
    batches: int = 0
    rows: int = 0
    bytes: int = 0  # sent + received, headers included
    latencies: list[float] = field(default_factory=list)  # seconds per batch request


class MeasuredClient(RemoteClient):
    """A RemoteClient that books each batch request's bytes and latency to its stream."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.streams: dict[str, StreamTraffic] = {}
        self._books = threading.Lock()

    def send_batch(self, payload: Any) -> Any:
        if isinstance(payload, BatchPayload):
            name = "Reading" if payload.readings else "NodeState"
            rows = sum(len(s.values) for g in payload.readings for s in g.series) + sum(
                len(s.times) for s in payload.nodestates
            )
        else:
            name = "Reading" if payload.get("readings") else "NodeState"
            rows = sum(len(s["t"]) for s in payload.get(name.lower() + "s", []))
        before = self.traffic.this_thread()  # batches go from several threads at once
        t0 = time.perf_counter()
        try:
            return super().send_batch(payload)
        finally:
            with self._books:
                stats = self.streams.setdefault(name, StreamTraffic())
                stats.latencies.append(time.perf_counter() - t0)
                stats.batches += 1
                stats.rows += rows
                stats.bytes += self.traffic.this_thread() - before


@dataclass
class CycleResult:
    seconds: float
    ok: bool
    error: str | None
    readings: int
    nodestates: int
    requests: int
    bytes: int  # everything the cycle sent and received, headers included
    streams: dict[str, StreamTraffic]
    busy: int = 0  # 429/503 + Retry-After answers waited for


def _cycle(config: Config, engine: Any, client: MeasuredClient) -> CycleResult:
    client.streams = {}
    sync = RemoteSync(config, config.enabled_remotes[0], engine, client=client)
    t0 = time.perf_counter()
    report: RemoteReport = sync.run()
    seconds = time.perf_counter() - t0
    return CycleResult(
        seconds=seconds,
        ok=report.ok,
        error=report.error,
        readings=report.streams["Reading"].sent if "Reading" in report.streams else 0,
        nodestates=report.streams["NodeState"].sent if "NodeState" in report.streams else 0,
        requests=report.requests,
        bytes=report.bytes_sent + report.bytes_received,
        streams=client.streams,
        busy=report.busy,
    )


def push_station(config: Config, start: threading.Barrier | None = None) -> CycleResult:
    """One catch-up cycle of one base station (for the fleet, in a thread)."""
    engine = make_engine(config.localurl)
    client = MeasuredClient(config.enabled_remotes[0])
    try:
        if start is not None:
            start.wait()
        return _cycle(config, engine, client)
    finally:
        client.close()
        engine.dispose()


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str]) -> None:
    limit_malloc_arenas()  # as RestPusher.py does
    config = load_config(argv[0])
    engine = make_engine(config.localurl)
    client = MeasuredClient(config.enabled_remotes[0])
    try:
        catchup = _cycle(config, engine, client)
        idle = _cycle(config, engine, client)
    finally:
        client.close()
        engine.dispose()
    print(
        json.dumps(
            {"catchup": asdict(catchup), "idle": asdict(idle), "peak_rss_kib": peak_rss_kib()}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
