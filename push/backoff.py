"""Capped exponential backoff with full jitter."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TypeVar

from base.errors import RemoteBusy, TransientError

T = TypeVar("T")


def backoff_delay(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before the next try after ``failures`` consecutive failures (≥ 1).

    Full jitter: uniformly between half and all of ``min(cap, base·2^(n-1))``,
    so a fleet of base stations that failed together does not retry together.
    """
    r = rng or random
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    return ceiling * (0.5 + 0.5 * r.random())


# How long one call waits in all for a busy server (429/503 with Retry-After) before it fails.
# A busy server is not a failure: a thousand stations back from an outage may each be asked to
# wait several times (measured: docs/BENCHMARKS.md, fleet of 1,000), and a count of waits
# gave up on some of them while the server was still working through the others.
MAX_BUSY_SECONDS = 1800.0


def busy_delay(retry_after: float, floor: float, ceiling: float,
               rng: random.Random | None = None) -> float:
    """How long to wait when the server asked for ``retry_after`` seconds: that, kept within
    [floor, ceiling], plus up to 20 % jitter so that the stations it turned away do not
    all come back in the same second."""
    r = rng or random
    return min(ceiling, max(floor, retry_after)) * (1 + 0.2 * r.random())


def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    base: float,
    cap: float,
    stop: threading.Event | None = None,
    on_retry: Callable[[int, float, TransientError], None] | None = None,
    busy_cap: float | None = None,
    on_busy: Callable[[float, RemoteBusy], None] | None = None,
) -> T:
    """Call ``fn``; on a transient error wait and try again, up to ``attempts`` calls in all.

    A busy server's Retry-After is honoured (within ``base`` … ``busy_cap``) and does not
    use up an attempt, for up to :data:`MAX_BUSY_SECONDS` of waiting in all."""
    failures = 0
    busy = 0.0  # seconds waited for a busy server
    while True:
        try:
            return fn()
        except RemoteBusy as exc:
            last: TransientError = exc
            delay = busy_delay(exc.retry_after, base, busy_cap or cap)
            if busy + delay > MAX_BUSY_SECONDS or (stop is not None and stop.is_set()):
                raise
            busy += delay
            if on_busy:
                on_busy(delay, exc)
        except TransientError as exc:
            last = exc
            failures += 1
            if failures >= attempts or (stop is not None and stop.is_set()):
                raise
            delay = backoff_delay(failures, base, cap)
            if on_retry:
                on_retry(failures, delay, exc)
        if stop is not None:
            if stop.wait(delay):
                raise last
        else:
            threading.Event().wait(delay)
