"""The push daemon: cycles on a timer, per-remote backoff, graceful shutdown.

Each remote runs in its own thread on its own schedule, so a remote that is down,
slow or hung (waiting out its backoff, or a request its deadline has not yet ended)
never holds back the others. The first SIGTERM/SIGINT lets the batches in flight
finish, records their progress and exits — within :data:`STOP_GRACE` seconds
whatever a remote is doing (a batch abandoned then is simply sent again next time);
a second one aborts at once.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from base.config import Config
from base.db import make_engine
from base.errors import CogentError, PermanentError
from push.backoff import backoff_delay
from push.cycle import RemoteReport, RemoteSync
from push.metricsfile import MetricsFile

log = logging.getLogger(__name__)


STOP_GRACE = 10.0  # seconds a remote has to finish after the first SIGTERM


def _abandoned(name: str) -> RemoteReport:
    return RemoteReport(name, ok=False, error="stopped while a request was still running",
                        stopped=True)


@dataclass
class _Schedule:
    failures: int = 0


class Pusher:
    def __init__(self, config: Config, stop: threading.Event | None = None):
        self.config = config
        self.stop = stop or threading.Event()
        self.engine = make_engine(config.localurl)
        self.syncs = {r.name: RemoteSync(config, r, self.engine, self.stop)
                      for r in config.enabled_remotes}  # fmt: skip
        self.metrics = MetricsFile(config.metrics_file, self.engine) if config.metrics_file \
            else None

    def close(self) -> None:
        for s in self.syncs.values():
            s.close()
        self.engine.dispose()

    def run_remote(self, name: str) -> RemoteReport:
        report = self._run_remote(name)
        if self.metrics is not None:
            try:
                self.metrics.record(name, report.ok, report.sent,
                                    self.syncs[name].client.clock_offset)
            except Exception as exc:  # figures must never stop the pushing
                log.warning("%s: could not write %s: %s", name, self.metrics.path, exc)
        return report

    def _run_remote(self, name: str) -> RemoteReport:
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
        """One cycle of every enabled remote, all at once; their reports in config order."""
        reports: dict[str, RemoteReport] = {}

        def one(name: str) -> None:
            reports[name] = self.run_remote(name)

        threads = [self._start(name, functools.partial(one, name)) for name in self.syncs]
        self._join(threads)
        return [reports.get(name) or _abandoned(name) for name in self.syncs]

    def run_forever(self) -> None:
        if not self.syncs:
            log.warning("no remote is enabled in [locations]; nothing to do")
        log.info(
            "push daemon started: %d remote(s), every %g s", len(self.syncs), self.config.synctime
        )
        threads = [self._start(name, functools.partial(self._cycle_forever, name))
                   for name in self.syncs]
        self._join(threads)
        log.info("push daemon stopped")

    def _cycle_forever(self, name: str) -> None:
        slot = _Schedule()
        while not self.stop.is_set():
            report = self.run_remote(name)
            if report.ok:
                slot.failures = 0
                delay = self._interval()
            else:
                slot.failures += 1
                delay = backoff_delay(
                    slot.failures, self.config.backoff_min, self.config.backoff_max
                )
                if report.permanent:  # a bad key or schema will not fix itself quickly
                    delay = max(delay, self.config.synctime)
                log.info("%s: next try in %.0f s (failure %d in a row)", name, delay,
                         slot.failures)
            self.stop.wait(delay)

    @staticmethod
    def _start(name: str, work: Callable[[], None]) -> threading.Thread:
        # Daemon threads: a remote still inside a request when the grace period ends must
        # not keep the process alive.
        thread = threading.Thread(target=work, name=f"cogent-push-{name}", daemon=True)
        thread.start()
        return thread

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for every remote's thread; once stopping, at most STOP_GRACE seconds more."""
        while any(t.is_alive() for t in threads):
            if self.stop.wait(0.2):
                break
        deadline = time.monotonic() + STOP_GRACE
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("%s: still inside a request after %g s; leaving it (its batch is "
                            "sent again next time)", t.name.removeprefix("cogent-push-"),
                            STOP_GRACE)

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
