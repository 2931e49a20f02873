"""Fixed-seed base-station databases, made by the simulator and cached.

The standard dataset is the simulator's default house (:class:`base.simulate.Plan`:
four rooms with temperature, humidity, CO2 and battery sensors plus a power meter,
5-minute samples with a few seconds of microsecond jitter, lost packets, quiet
nodes) backfilled from a fixed start until it holds exactly N readings, with the
node states of the same packets. Generating a million readings takes most of a
minute, so each dataset is made once into ``var/bench/cache`` (keyed by its
parameters and the simulator's source) and copied for every run.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from base.db import make_engine
from base.migrate import upgrade
from base.simulate import Plan, backfill

REPO = Path(__file__).resolve().parent.parent
START = datetime(2023, 1, 1)  # fixed, so the dataset never depends on today
DATASET_VERSION = "1"
READINGS_PER_HOUSE_DAY = 4700  # slightly under the default house's rate: overshoot, then trim


@dataclass(frozen=True)
class Dataset:
    path: Path  # a SQLite file of a migrated base-station database
    readings: int
    nodestates: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def copy(self, to: Path) -> Dataset:
        """A private copy to push from (pushing writes cursors and sequence stamps)."""
        to.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(to) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.path, to)
        return Dataset(to, self.readings, self.nodestates)


def _source_digest() -> str:
    """Changes when the simulator or the schema does (bump DATASET_VERSION when this module
    changes what it makes)."""
    h = hashlib.sha1(DATASET_VERSION.encode())
    for name in ("base/simplan.py", "base/simmodel.py", "base/simulate.py"):
        h.update((REPO / name).read_bytes())
    for version in sorted((REPO / "migrations" / "versions").glob("*.py")):
        h.update(version.name.encode())
    return h.hexdigest()[:10]


def _counts(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as db:
        readings = db.execute('SELECT count(*) FROM "Reading"').fetchone()[0]
        states = db.execute('SELECT count(*) FROM "NodeState"').fetchone()[0]
    return int(readings), int(states)


def _template(cache: Path) -> Path:
    """An empty database migrated to head (migrating each copy would cost ~0.1 s apiece)."""
    path = cache / f"empty-{_source_digest()}.db"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        upgrade(f"sqlite:///{tmp}")
        _checkpoint(tmp)
        tmp.rename(path)
    return path


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file so that copying the one file copies everything."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode = DELETE")
        db.commit()


def make_dataset(
    readings: int,
    cache: Path,
    *,
    seed: int = 1,
    houses: int = 1,
    node_base: int = 1000,
    deployment: str = "Simulation",
    label: str = "base",
    log: bool = True,
) -> Dataset:
    """A base-station database with exactly ``readings`` readings (cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    name = f"{label}-{readings}-s{seed}-h{houses}-n{node_base}-{_source_digest()}.db"
    path = cache / name
    if path.exists():
        return Dataset(path, *_counts(path))
    tmp = path.with_suffix(".tmp")
    shutil.copyfile(_template(cache), tmp)
    days = math.ceil(readings / (READINGS_PER_HOUSE_DAY * houses) * 1.03 + 1)
    plan = Plan(
        houses=houses,
        days=days,
        seed=seed,
        start=START,
        node_base=node_base,
        deployment=deployment,
    )
    engine = make_engine(f"sqlite:///{tmp}")
    try:
        if log:
            print(
                f"  simulating {readings:,} readings ({houses} house(s), {days} days)…", flush=True
            )
        backfill(engine, plan, batch_size=20_000)
    finally:
        engine.dispose()
    _trim(tmp, readings)
    _checkpoint(tmp)
    tmp.rename(path)
    return Dataset(path, *_counts(path))


def _trim(path: Path, readings: int) -> None:
    """Keep the first ``readings`` readings (in insertion order, which is time order) and the
    node states up to the last kept reading's time."""
    with closing(sqlite3.connect(path)) as db:
        have = db.execute('SELECT count(*) FROM "Reading"').fetchone()[0]
        if have < readings:
            raise RuntimeError(f"the simulation made {have} readings, fewer than {readings}")
        cut_id, cut_time = db.execute(
            'SELECT id, time FROM "Reading" ORDER BY id LIMIT 1 OFFSET ?', (readings - 1,)
        ).fetchone()
        db.execute('DELETE FROM "Reading" WHERE id > ?', (cut_id,))
        db.execute('DELETE FROM "NodeState" WHERE time > ?', (cut_time,))
        db.commit()
        db.execute("VACUUM")


def fleet_datasets(stations: int, readings: int, cache: Path) -> list[Dataset]:
    """``stations`` base stations of one house each, every one its own deployment and node ids
    (a mote's id is global), ``readings`` readings each, different seeds."""
    out = []
    for i in range(stations):
        out.append(
            make_dataset(
                readings,
                cache / "fleet",
                seed=100 + i,
                node_base=100_000 + 1000 * i,
                deployment=f"Fleet station {i:03d}",
                label=f"station{i:03d}",
                log=False,
            )
        )
    return out


def span(dataset: Dataset) -> tuple[datetime, datetime]:
    with closing(sqlite3.connect(dataset.path)) as db:
        lo, hi = db.execute('SELECT min(time), max(time) FROM "Reading"').fetchone()
    return datetime.fromisoformat(lo), datetime.fromisoformat(hi)
