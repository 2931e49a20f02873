"""What a process on this machine uses, read from /proc: CPU time and resident memory (for the
benchmarks and the torture tests that hold a server to a budget)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set of process ``pid`` now (VmRSS), in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """The peak of the summed resident sets of ``pids`` (a server and its workers), sampled
    every ``every`` seconds while the block runs."""

    def __init__(self, pids: list[int], every: float = 0.2):
        self.pids = pids
        self.every = every
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak_kib = max(self.peak_kib, sum(rss_kib(pid) for pid in self.pids))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
