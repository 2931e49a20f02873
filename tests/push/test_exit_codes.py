"""Every row of the exit-code table in docs/OPERATIONS.md, for ``once`` and for ``status``,
through the real command line against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from base.db import make_engine
from push.lock import PushLock
from push.outcome import Exit, for_failure, worst
from tests.live_server import free_port
from tests.push.test_process import wait_for_remote_rows
from tests.push.test_retry import unplaced_readings
from tests.pushkit import insert_unchecked, seed_cogent_house, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")]),  # pair's backend
]
REPO = Path(__file__).resolve().parents[2]


def cli(conf: Path | str, *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(conf), *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def conf_for(pair, name: str, local: str | None = None, **remotes: tuple[str, str]) -> Path:
    config = write_config(pair.dir / f"{name}.conf", local or pair.local, remotes)
    assert config.path is not None
    return config.path


# -- 0 -------------------------------------------------------------------------------------------
def test_once_exits_0_when_every_enabled_remote_took_everything(pair):
    seed_cogent_house(pair.local, days=1)
    code, out, err = cli(pair.config().path, "once")
    assert code == Exit.OK, out + err
    first = out.splitlines()[0]
    assert first.startswith("local database sqlite:///") and "pushing to central" in first, out
    assert "writes its push cursors" in first
    code, out, err = cli(pair.config().path, "status")
    assert code == Exit.OK, out + err
    assert "reachable: yes; key accepted" in out and "exit " not in out


# -- 1 -------------------------------------------------------------------------------------------
def test_once_exits_1_when_a_remote_refuses_for_another_reason(pair):
    seed_cogent_house(pair.local, days=0)
    conf = conf_for(pair, "elsewhere", central=(pair.server.url + "nothing/", pair.key))
    code, out, err = cli(conf, "once")
    assert code == Exit.FAILED, out + err
    assert "central: FAILED" in out and "404" in out


def test_status_exits_1_when_a_remote_is_behind(pair):
    seed_cogent_house(pair.local, days=1)
    code, out, err = cli(pair.config().path, "status")
    assert code == Exit.FAILED, out + err
    assert "backlog: " in out and "exit 1: behind" in out


# -- 2 -------------------------------------------------------------------------------------------
def test_once_and_status_exit_2_on_a_configuration_or_usage_error(pair):
    bad = pair.dir / "bad.conf"
    bad.write_text(f"[general]\nlocalurl = {pair.local}\npushlimit = lots\n")
    for command in ("once", "status"):
        code, out, err = cli(bad, command)
        assert code == Exit.USAGE and "pushlimit" in err, out + err
    none = pair.dir / "none.conf"
    none.write_text(f"[general]\nlocalurl = {pair.local}\n[locations]\ncentral = 0\n")
    for command in ("once", "status"):
        code, out, err = cli(none, command)
        assert code == Exit.USAGE, out + err
    code, _, err = cli(pair.config().path, "once", "--no-such-option")
    assert code == Exit.USAGE, err


# -- 3 -------------------------------------------------------------------------------------------
def test_once_exits_3_when_rows_were_newly_set_aside_and_0_on_the_next_run(pair):
    seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, unplaced_readings(4))
    conf = pair.config().path
    code, out, err = cli(conf, "once")
    assert code == Exit.SET_ASIDE, out + err
    assert "4 rows newly set aside" in out and "exit 3" in out
    code, out, err = cli(conf, "once")  # nothing new is set aside this time
    assert code == Exit.OK, out + err
    code, out, err = cli(conf, "status")  # but status keeps saying they are there
    assert code == Exit.SET_ASIDE, out + err
    assert "rows set aside: 4" in out and "exit 3: in step, but rows are set aside" in out


# -- 4 -------------------------------------------------------------------------------------------
def test_once_and_status_exit_4_when_a_remote_is_unreachable(pair):
    seed_cogent_house(pair.local, days=0)
    dead = f"http://127.0.0.1:{free_port()}/rest/"
    conf = conf_for(pair, "dead", central=(dead, pair.key))
    code, out, err = cli(conf, "once")
    assert code == Exit.UNREACHABLE, out + err
    code, out, err = cli(conf, "status")
    assert code == Exit.UNREACHABLE, out + err
    assert "reachable: NO" in out


# -- 5 -------------------------------------------------------------------------------------------
def test_once_and_status_exit_5_when_the_key_is_refused(pair):
    seed_cogent_house(pair.local, days=0)
    for key in ("cgk_wrong", ""):
        conf = conf_for(pair, "wrongkey", central=(pair.server.url, key))
        code, out, err = cli(conf, "once")
        assert code == Exit.KEY_REFUSED, out + err
        assert "apikey" in out
        code, out, err = cli(conf, "status")
        assert code == Exit.KEY_REFUSED, out + err
        assert "key REFUSED" in out


def test_the_worst_failure_of_several_remotes_is_the_exit_code(pair):
    seed_cogent_house(pair.local, days=0)
    dead = f"http://127.0.0.1:{free_port()}/rest/"
    conf = conf_for(pair, "two", central=(pair.server.url, "cgk_wrong"), dead=(dead, "x"))
    code, out, err = cli(conf, "once")
    assert code == Exit.KEY_REFUSED, out + err  # a person must fix the key; the link may heal
    assert worst([Exit.SET_ASIDE, Exit.UNREACHABLE, Exit.OK]) is Exit.UNREACHABLE
    assert worst([Exit.LOCAL_DATABASE, Exit.SCHEMA]) is Exit.LOCAL_DATABASE
    assert for_failure(None) is Exit.FAILED


# -- 6 -------------------------------------------------------------------------------------------
def test_once_and_status_exit_6_on_a_schema_mismatch_on_either_side(pair, make_db):
    seed_cogent_house(pair.local, days=0)
    remote = make_engine(pair.remote)
    with remote.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    remote.dispose()
    conf = pair.config().path
    code, out, err = cli(conf, "once")
    assert code == Exit.SCHEMA, out + err
    code, out, err = cli(conf, "status")
    assert code == Exit.SCHEMA and "schema: MISMATCH" in out, out + err
    with remote.begin() as conn:  # the server is right again; now the local side is behind
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    remote.dispose()
    behind = make_db("behind", migrate=False)
    make_engine(behind).connect().close()  # an empty database, never migrated
    conf = conf_for(pair, "behind", local=behind, central=(pair.server.url, pair.key))
    code, out, err = cli(conf, "once")
    assert code == Exit.SCHEMA and f"RestPusher.py -c {conf} migrate" in err, out + err


# -- 7 -------------------------------------------------------------------------------------------
def test_once_and_status_exit_7_when_the_local_database_cannot_be_used(pair):
    garbage = pair.dir / "garbage.db"
    garbage.write_bytes(b"this is not a database " * 200)
    nowhere = pair.dir / "nosuchdir" / "base.db"
    mysql_down = f"mysql://root@127.0.0.1:{free_port()}/cogent"
    for url in (f"sqlite:///{garbage}", f"sqlite:///{nowhere}", mysql_down):
        conf = conf_for(pair, "broken", local=url, central=(pair.server.url, pair.key))
        for command in ("once", "status"):
            code, out, err = cli(conf, command)
            assert code == Exit.LOCAL_DATABASE, (url, command, out + err)
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not nowhere.parent.exists()  # nothing was created


# -- 8 -------------------------------------------------------------------------------------------
def test_once_exits_8_beside_a_running_pusher_and_names_what_stops_it(pair):
    config = pair.config()
    with PushLock(config.lockfile):
        code, out, err = cli(config.path, "once")
    assert code == Exit.ALREADY_RUNNING, out + err
    assert f"pid {os.getpid()}" in err
    assert f"RestPusher.py -c {config.path} stop" in err and "systemctl stop" in err


# -- 130 -----------------------------------------------------------------------------------------
def test_once_exits_130_when_interrupted(pair):
    seed_cogent_house(pair.local, days=6)
    config = pair.config(pushlimit=100)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config.path), "once"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_remote_rows(pair.remote, 1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == Exit.INTERRUPTED, out
    assert "interrupted" in out


def test_status_offline_contacts_nobody_and_exits_0(pair):
    seed_cogent_house(pair.local, days=0)
    dead = f"http://127.0.0.1:{free_port()}/rest/"
    conf = conf_for(pair, "offline", central=(dead, "x"))
    code, out, err = cli(conf, "status", "--offline")
    assert code == Exit.OK, out + err
    assert "reachable: not asked (--offline)" in out


def test_the_exit_code_table_in_the_docs_lists_every_code(backend):
    doc = (REPO / "docs/OPERATIONS.md").read_text()
    table = doc[doc.index("## Exit codes") :]
    for code in Exit:
        assert f"\n| {int(code)} |" in table, f"exit {int(code)} is not in the table"
