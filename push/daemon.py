"""The push daemon: cycles on a timer, per-remote backoff, graceful shutdown.

Each remote has its own schedule, so a remote that is down (waiting out its
backoff) never holds back the others. The first SIGTERM/SIGINT lets the batch
in flight finish, records its progress and exits; a second one aborts at once.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from base.config import Config
from base.db import make_engine
from base.errors import CogentError, PermanentError
from push.backoff import backoff_delay
from push.sync import RemoteReport, RemoteSync

log = logging.getLogger(__name__)


@dataclass
class _Schedule:
    due: float = 0.0
    failures: int = 0


class Pusher:
    def __init__(self, config: Config, stop: threading.Event | None = None):
        self.config = config
        self.stop = stop or threading.Event()
        self.engine = make_engine(config.localurl)
        self.syncs = {r.name: RemoteSync(config, r, self.engine, self.stop)
                      for r in config.enabled_remotes}  # fmt: skip

    def close(self) -> None:
        for s in self.syncs.values():
            s.close()
        self.engine.dispose()

    def run_remote(self, name: str) -> RemoteReport:
        try:
            report = self.syncs[name].run()
        except CogentError as exc:
            log.error("%s: cycle failed: %s", name, exc)
            return RemoteReport(
                name,
                ok=False,
                error=str(exc),
                permanent=isinstance(exc, PermanentError),
                failure=type(exc),
            )
        except Exception as exc:  # a bug must not kill an unattended daemon
            log.exception("%s: unexpected error", name)
            return RemoteReport(
                name, ok=False, error=f"{exc.__class__.__name__}: {exc}", failure=type(exc)
            )
        log.info(
            "%s: cycle done: %d rows sent in %.1f s, %d requests, %d bytes out, %d bytes in",
            name,
            report.sent,
            report.seconds,
            report.requests,
            report.bytes_sent,
            report.bytes_received,
        )
        return report

    def run_once(self) -> list[RemoteReport]:
        reports = []
        for name in self.syncs:
            if self.stop.is_set():
                break
            reports.append(self.run_remote(name))
        return reports

    def run_forever(self) -> None:
        if not self.syncs:
            log.warning("no remote is enabled in [locations]; nothing to do")
        schedule = {name: _Schedule() for name in self.syncs}
        log.info(
            "push daemon started: %d remote(s), every %g s", len(schedule), self.config.synctime
        )
        while not self.stop.is_set():
            now = time.monotonic()
            for name, slot in schedule.items():
                if self.stop.is_set() or slot.due > now:
                    continue
                report = self.run_remote(name)
                if report.ok:
                    slot.failures = 0
                    slot.due = time.monotonic() + self._interval()
                else:
                    slot.failures += 1
                    delay = backoff_delay(
                        slot.failures, self.config.backoff_min, self.config.backoff_max
                    )
                    if report.permanent:  # a bad key or schema will not fix itself quickly
                        delay = max(delay, self.config.synctime)
                    slot.due = time.monotonic() + delay
                    log.info(
                        "%s: next try in %.0f s (failure %d in a row)", name, delay, slot.failures
                    )
            if not schedule:
                wait = self.config.synctime
            else:
                wait = max(0.0, min(s.due for s in schedule.values()) - time.monotonic())
            self.stop.wait(wait)
        log.info("push daemon stopped")

    def _interval(self) -> float:
        j = self.config.jitter
        return self.config.synctime * (1 + random.uniform(-j, j))


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: finish the batches in flight and exit. Second: exit now."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s: aborting now", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info(
            "%s: finishing the batches in flight, then stopping (send it again to abort)",
            signal.Signals(signum).name,
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
