"""The server's Prometheus counters, one registry per application (rest/metrics.py serves
them at ``GET /metrics``).

One registry per application (not the process-wide default), so that several apps in one
process — the tests start many — never share or double-count.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select

from models import Site, StationStatus
from models.sql import utcnow


class Metrics:
    """The counters of one application."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cogent_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=self.registry)
        self.batches = Counter(
            "cogent_batches", "Batches of readings and node states applied, by dialect",
            ["dialect"], registry=self.registry)
        self.rows = Counter(
            "cogent_batch_rows", "Rows of applied batches by outcome (stored, unchanged, "
            "rejected)", ["outcome"], registry=self.registry)
        self.apply_seconds = Histogram(
            "cogent_batch_apply_seconds", "Time to validate and apply one batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry)
        self.registry.register(_DatabaseCollector(engine))

    def batch(self, dialect: str, stored: int, unchanged: int, rejected: int,
              seconds: float) -> None:
        self.batches.labels(dialect).inc()
        self.rows.labels("stored").inc(stored)
        self.rows.labels("unchanged").inc(unchanged)
        self.rows.labels("rejected").inc(rejected)
        self.apply_seconds.observe(seconds)


class _DatabaseCollector(Collector):
    """Figures read when scraped: nothing to keep in step between scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.engine.pool
        in_use = GaugeMetricFamily("cogent_db_connections_in_use",
                                   "Database connections checked out of the pool")
        checked_out = getattr(pool, "checkedout", None)
        in_use.add_metric([], float(checked_out()) if callable(checked_out) else 0.0)
        yield in_use
        since = GaugeMetricFamily("cogent_site_last_contact_age_seconds",
                                  "Seconds since each site's key was last used", labels=["site"])
        offset = GaugeMetricFamily("cogent_station_clock_offset_seconds",
                                   "Each station's clock minus the server's at its last check-in",
                                   labels=["site", "host"])
        now = utcnow()
        with self.engine.connect() as conn:
            for name, seen in conn.execute(select(Site.name, Site.lastSeen)):
                if seen is not None:
                    since.add_metric([name], (now - seen).total_seconds())
            rows = conn.execute(select(Site.name, StationStatus.hostname, StationStatus.clockOffset)
                                .join(Site, Site.id == StationStatus.siteId))
            for site, host, clock in rows:
                if clock is not None:
                    offset.add_metric([site, host], float(clock))
        yield since
        yield offset
