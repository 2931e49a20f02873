"""Admission control: at most N batches applied at once in one worker; beyond that the server
answers ``429`` with ``Retry-After`` at once instead of queueing without bound (the pusher
waits as asked, with jitter, and counts it as "server busy").

``Retry-After`` is how long the stations already turned away will take to be served: their
number (distinct keys turned away in the last minute and not admitted since) times the mean
time one batch takes, divided by the places. A thousand stations back from an outage are
thus spread over the minutes the server needs for them, instead of all coming back in two
seconds to be turned away again (measured: docs/BENCHMARKS.md, fleet of 1,000).

The count is per worker process (``--workers N`` admits up to N times ``--max-batches``); every
other piece of server state lives in the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rest.errors import ApiError

MIN_RETRY_AFTER = 1
MAX_RETRY_AFTER = 120
WAITING_WINDOW = 60.0  # seconds a turned-away key counts as waiting
_SMOOTHING = 0.2  # weight of the latest batch in the mean batch time


class Admission:
    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0  # changed only on the event loop's thread: no lock needed
        self.mean_seconds = 0.5  # a batch's time in its place, smoothed
        self._waiting: dict[int, float] = {}  # key id → when it was last turned away

    def retry_after(self, now: float) -> int:
        """Seconds until the stations waiting now are likely to have been served."""
        for key, when in list(self._waiting.items()):
            if now - when > WAITING_WINDOW:
                del self._waiting[key]
        seconds = len(self._waiting) * self.mean_seconds / max(1, self.limit)
        return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, math.ceil(seconds)))

    @contextmanager
    def batch(self, key_id: int = 0) -> Iterator[None]:
        """Hold one of the ``limit`` places while a batch is parsed and applied, or raise 429."""
        now = time.monotonic()
        if self.active >= self.limit:
            self._waiting[key_id] = now
            wait = self.retry_after(now)
            raise ApiError(
                429,
                f"server busy: {self.active} batches are being applied (at most {self.limit} "
                f"at once) and {len(self._waiting)} station(s) are waiting; send this one "
                f"again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._waiting.pop(key_id, None)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            spent = time.monotonic() - now
            self.mean_seconds += _SMOOTHING * (spent - self.mean_seconds)
