"""Progress of long work with a horizon: done of total, rate, and time left.

On a terminal a one-line bar redrawn in place; otherwise (a log file, cron, CI) a log
line every ``interval`` seconds and one at the end, never a line per batch.
Thread-safe: the pusher acknowledges batches of several remotes at once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger("push.progress")

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "rows",
        *,
        stream: TextIO | None = None,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        done: int = 0,
    ):
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.out = stream or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.interval = interval
        self.clock = clock
        self.start_done = self.done = done
        self.t0 = clock()
        self._shown = float("-inf")
        self._lock = threading.Lock()
        self._finished = False

    # -- feeding it ------------------------------------------------------------------------------
    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            self._maybe_show()

    def update(self, done: int) -> None:
        with self._lock:
            self.done = done
            self._maybe_show()

    def finish(self, interrupted: bool = False) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if self.tty:
                self.out.write("\r" + self.line() + "\n")
                self.out.flush()
            elif not interrupted:
                log.info("%s: %s", self.label, self.summary())

    # -- what it says ----------------------------------------------------------------------------
    @property
    def rate(self) -> float:
        elapsed = self.clock() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def left(self) -> float | None:
        """Seconds left at the rate so far; None before there is a rate."""
        rate = self.rate
        if rate <= 0:
            return None
        return max(0, self.total - self.done) / rate

    def line(self) -> str:
        done = min(self.done, self.total) if self.total else self.done
        pct = 100 * done / self.total if self.total else 100.0
        text = f"{self.label}: {done:,} of {self.total:,} {self.unit} ({pct:.0f}%)"
        if self.tty:
            filled = int(BAR_WIDTH * pct / 100)
            text = f"{self.label}: [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] " + text.split(
                ": ", 1
            )[1]
        rate = self.rate
        if rate > 0:
            text += f", {rate:,.0f} {self.unit}/s"
            left = self.left()
            if left is not None and done < self.total:
                text += f", about {duration(left)} left"
        return text

    def summary(self) -> str:
        elapsed = self.clock() - self.t0
        return (
            f"{self.done - self.start_done:,} {self.unit} in {duration(elapsed)}"
            + (f" ({self.rate:,.0f} {self.unit}/s)" if elapsed > 0 else "")
        )

    def _maybe_show(self) -> None:
        now = self.clock()
        every = REDRAW_SECONDS if self.tty else self.interval
        if now - self._shown < every:
            return
        self._shown = now
        if self.tty:
            self.out.write("\r" + self.line() + "\x1b[K")
            self.out.flush()
        else:
            log.info("%s", self.line())
