"""The benchmark harness at toy sizes, so that `make bench` does not rot between runs.

Every scenario runs end to end against the real MariaDB and real servers on loopback;
the figures are meaningless at this size, but delivery is checked exactly and the
report must come out whole.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bench.__main__ import main
from tests.dbs import MYSQL_ADMIN_URL, PG_ADMIN_URL

pytestmark = pytest.mark.mysql


@pytest.fixture
def mariadb(_database_pools) -> str:
    why_not = _database_pools["mysql"].available()
    if why_not:
        from tests.dbs import in_ci

        if in_ci():
            pytest.fail(why_not)
        pytest.skip(why_not)
    return MYSQL_ADMIN_URL


def test_every_benchmark_scenario_runs_and_delivers_everything(mariadb: str, tmp_path: Path):
    report = tmp_path / "BENCHMARKS.md"
    res = main(
        [
            "--quick",
            "--readings", "1500",
            "--memory-readings", "1500,3000",
            "--baseline-readings", "600",
            "--stations", "3,5",
            "--station-readings", "120",
            "--fleet-workers", "1",
            "--fleet-procs", "1",
            "--pushlimit", "500",
            "--mysql", mariadb,
            "--db-prefix", f"cgt_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}",
            "--workdir", str(tmp_path / "work"),
            "--out", str(report),
            "--only", "catchup,memory,fleet,encodings,adoption,catchup-pg,writepaths",
            "--postgres", PG_ADMIN_URL,
            "--quiet",
        ]
    )
    f = res.figures
    assert f["ours_delivered"] is True, res.notes
    assert f["ours"]["catchup"]["readings"] == f["dataset"]["readings"] == 1500
    assert f["baseline_delivered"] is True and f["baseline"]["readings"] == 600
    assert f["direct"]["readings"] == f["loaddata"]["readings"] == 1500
    assert f["ours"]["idle"]["readings"] == 0 and f["ours"]["idle"]["requests"] <= 2
    assert set(f["memory"]) == {"1500", "3000"}
    for size in ("3x1", "5x1"):
        assert f["fleet"][size]["all_delivered"] is True, f["fleet"][size]["errors"]
        assert f["fleet"][size]["server_rss_mib"] > 10
    pg = f["catchup_pg"]
    assert pg["ours_delivered"] is True
    assert pg["executemany"]["readings"] == pg["copy"]["readings"] == 1500
    assert all(f["writepaths"][db][path] > 0 for db in ("MariaDB", "PostgreSQL")
               for path in ("insert", "bulk"))
    assert f["encodings"]["Reading"]["rows"] == 1500
    assert f["adoption"]["copied"] == f["adoption"]["readings"] == 1500
    text = report.read_text()
    for heading in ("# Benchmarks", "## Machine", "## Results", "1 Catch-up", "2 Wire",
                    "3 Memory", "4 Idle", "5 Fleet", "6 Adoption",
                    "1b Catch-up, PostgreSQL", "5 base stations at once", "7 Write paths"):
        assert heading in text, heading
    assert not res.notes, res.notes
