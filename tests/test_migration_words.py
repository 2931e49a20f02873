"""What Alembic and ``migrate`` say when asked for the impossible: one line, nothing lost."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import func, insert, select

from base.db import make_engine
from base.migrate import head_revision
from models import Reading
from models.base import table_of
from tests.factories import place_node
from tests.live_server import REPO

pytestmark = pytest.mark.slow  # runs alembic as a command


def alembic(*args: str, cwd=REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alembic", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_a_downgrade_that_would_delete_data_is_refused_in_one_line_and_keeps_it(db_url):
    engine = make_engine(db_url)
    placed = place_node(engine, 77)
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)).values(
            nodeId=77, type=0, time=datetime(2026, 1, 1), locationId=placed.location, value=1.0))
    result = alembic("-x", f"url={db_url}", "downgrade", "base")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    failed = [line for line in (result.stdout + result.stderr).splitlines()
              if line.startswith("FAILED")]
    assert len(failed) == 1 and "refusing to downgrade below 0002" in failed[0], result.stderr
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table_of(Reading))).scalar() == 1
    engine.dispose()


def test_alembic_run_outside_the_repository_works_with_the_config_path(sqlite_url, tmp_path):
    result = alembic("-c", str(REPO / "alembic.ini"), "-x", f"url={sqlite_url}", "current",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert head_revision() in result.stdout


def test_migrate_on_a_database_at_an_unknown_revision_is_one_line_and_changes_nothing(
    sqlite_url, tmp_path
):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'deadbeef0000'")
    engine.dispose()
    conf = tmp_path / "s.conf"
    conf.write_text(f"[general]\nlocalurl = {sqlite_url}\n[locations]\n")
    result = subprocess.run([sys.executable, str(REPO / "RestPusher.py"), "-c", str(conf),
                             "migrate"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 6, result.stderr  # the schema exit code
    assert "Traceback" not in result.stderr
    assert "'deadbeef0000' is not one this cogent-sync knows" in result.stderr
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == (
            "deadbeef0000")
    engine.dispose()
