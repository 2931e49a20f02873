"""Capped exponential backoff with full jitter."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TypeVar

from base.errors import TransientError

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


def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    base: float,
    cap: float,
    stop: threading.Event | None = None,
    on_retry: Callable[[int, float, TransientError], None] | None = None,
) -> T:
    """Call ``fn``; on a transient error wait and try again, up to ``attempts`` calls in all."""
    failures = 0
    while True:
        try:
            return fn()
        except TransientError as exc:
            failures += 1
            if failures >= attempts or (stop is not None and stop.is_set()):
                raise
            delay = backoff_delay(failures, base, cap)
            if on_retry:
                on_retry(failures, delay, exc)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                threading.Event().wait(delay)
