"""Engine settings the rest of the project relies on."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from base.db import make_engine, normalise_url, redact
from base.errors import ConfigError


def test_sqlite_engine_uses_wal_foreign_keys_and_a_busy_timeout(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    engine.dispose()


def test_bare_mysql_url_gets_pymysql_and_utf8mb4():
    u = normalise_url("mysql://u:p@h/db")
    assert u.drivername == "mysql+pymysql"
    assert u.query["charset"] == "utf8mb4"


def test_bad_database_url_names_the_url():
    with pytest.raises(ConfigError, match="not-a-url"):
        normalise_url("not-a-url")


def test_redact_hides_the_password():
    assert "secret" not in redact("mysql://u:secret@h/db")


@pytest.mark.slow  # starts a subprocess
def test_malloc_arenas_are_capped_unless_the_operator_chose(monkeypatch):
    from base.memory import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True  # glibc, as on every base station we support
