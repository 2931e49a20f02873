"""Filling the day cache in the background, so no one waits for it on a house page.

The first view of a house's year computes every day of it (seconds, on a house with a
year of 5-minute data); so does the first view after a catch-up dropped the days it wrote.
The warmer computes those days before anyone asks: every ``--warm-interval`` seconds each
server worker walks the locations with readings in the last year, one at a time, and fills
the days missing from ``ReadingDay`` (:func:`rest.daycache.daily` does the work and keeps
it). Two workers warming the same day both compute it; the second's rows are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from models import Location, Reading
from rest.daycache import daily
from rest.times import utcnow

log = logging.getLogger("cogent.rest.daywarmer")

WARM_DAYS = 365  # the house page's longest range


def warm_once(engine: Engine, now: datetime | None = None,
              stop: threading.Event | None = None) -> int:
    """Fill the missing cached days of every location with readings in the last
    :data:`WARM_DAYS` days; the number of locations looked at."""
    now = now or utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    since = today - timedelta(days=WARM_DAYS)
    with engine.connect() as conn:
        locations = list(conn.execute(select(Location.id).order_by(Location.id)).scalars())
    warmed = 0
    for location in locations:
        if stop is not None and stop.is_set():
            break
        with engine.begin() as conn:
            # An index probe (ix_Reading_locationId_time), not a scan.
            recent = conn.execute(select(Reading.time).where(
                Reading.locationId == location, Reading.time >= since).limit(1)).first()
            if recent is None:
                continue
            daily(conn, [location], since, today)  # the days the year's plot asks for
        warmed += 1
    return warmed


class DayWarmer:
    """A daemon thread running :func:`warm_once` every ``interval`` seconds (the first time
    ``interval`` after start: a server that lives for seconds, as in tests, never warms)."""

    def __init__(self, engine: Engine, interval: float):
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="day-warmer", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                n = warm_once(self.engine, stop=self._stop)
            except Exception:  # the page computes what the warmer could not; try next time
                log.exception("warming the day cache failed; next try in %.0f s", self.interval)
                continue
            log.info("day cache warm for %d location(s) in %.1f s", n, time.monotonic() - started)
