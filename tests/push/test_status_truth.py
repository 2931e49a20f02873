"""``status`` true in every line, ``stop`` whoever started the daemon, a mistyped SQLite path
that creates nothing, and every command naming its database first."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from base.db import make_engine
from base.errors import DatabaseUnavailable
from models import Node, NodeState
from push.lock import PushLock, lock_holder, unit_of_cgroup
from push.outcome import Exit
from tests.live_server import create_key, free_port
from tests.push.test_exit_codes import cli
from tests.pushkit import push_once, seed_cogent_house, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")]),  # pair's backend
]
REPO = Path(__file__).resolve().parents[2]


def test_status_names_both_counts_when_node_states_were_deleted_on_the_server(pair):
    seed_cogent_house(pair.local, days=1)
    push_once(pair.config())
    remote = make_engine(pair.remote)
    with remote.begin() as conn:  # 12 node states of one node lost on the server
        ids = conn.execute(
            select(NodeState.id).where(NodeState.nodeId == 101).order_by(NodeState.id).limit(12)
        ).scalars().all()
        conn.execute(delete(NodeState).where(NodeState.id.in_(ids)))
    remote.dispose()
    code, out, err = cli(pair.config().path, "status")
    assert code == Exit.FAILED, out + err
    line = next(x for x in out.splitlines() if "'1 Mill Lane'" in x)
    assert "12 node states missing on the remote (1 range differs" in line, line
    assert "same counts" not in line
    local, remote_part = line.split(", remote ")
    assert "562 node states" in local and remote_part.startswith("1124 / 550"), line


def test_status_counts_the_local_rows_of_a_house_the_server_refused(pair):
    """The issue's second station: its whole house belongs to another site on the server."""
    seed_cogent_house(pair.local, days=1)
    push_once(pair.config())  # site-a owns both houses now
    other = pair.dir / "b.db"
    local_b = f"sqlite:///{other}"
    from base.migrate import upgrade

    upgrade(local_b)
    data = seed_cogent_house(local_b, days=1, seed=2)
    conf = write_config(
        pair.dir / "b.conf", local_b, {"central": (pair.server.url, create_key(pair.remote, "b"))}
    ).path
    code, out, err = cli(conf, "once")
    assert code == Exit.SET_ASIDE, out + err
    code, out, err = cli(conf, "status")
    assert code == Exit.SET_ASIDE, out + err
    first = out.splitlines()[0]
    assert first.startswith(f"local database {local_b}") and f"{data.readings} readings" in first
    assert "local 0 readings" not in out
    assert "(all set aside), remote -: not on the remote: every row of it was set aside" in out
    # Grouped by cause, house, node and type with their time range, and the command that fixes
    # them; no local row ids.
    assert (
        "a house with this deployment and address is already on this server and is not this "
        "key's site's; ask the server's operator" in out
    )
    assert "house '1 Mill Lane', node 101, Temperature: 288 readings, 2026-01-05 00:00 to" in out
    assert f'RestPusher.py -c {conf} retry --remote central --reason "house ' in out
    assert " id " not in out
    code, out, err = cli(conf, "status", "--json")
    doc = json.loads(out)
    assert doc["readings"] == data.readings and doc["exit"] == Exit.SET_ASIDE
    [central] = doc["remotes"]
    assert central["key_accepted"] is True and central["set_aside"]["count"] == (
        data.readings + data.node_states
    )
    houses = {h["address"]: h for h in central["houses"]}
    assert houses["1 Mill Lane"]["local"]["readings"] == houses["1 Mill Lane"]["set_aside"][
        "readings"
    ] > 0
    reason = central["set_aside"]["reasons"][0]
    assert reason["retry"].startswith(f"RestPusher.py -c {conf} retry --remote central")
    assert {s["table"] for s in reason["series"]} == {"Reading", "NodeState"}


def test_status_lists_a_disabled_remote_as_disabled_and_never_contacts_it(pair):
    seed_cogent_house(pair.local, days=0)
    push_once(pair.config())
    conf = pair.dir / "two.conf"
    conf.write_text(
        pair.config().path.read_text()
        + "\n[backup]\nresturl = https://backup.invalid/rest/\napikey = x\n"
    )
    text = conf.read_text().replace("[locations]\n", "[locations]\nbackup = 0\n")
    conf.write_text(text)
    code, out, err = cli(conf, "status")
    assert code == Exit.OK, out + err
    assert "remote backup (https://backup.invalid/rest/): disabled ([locations] backup = 0); " \
           "not contacted" in out
    assert "backup.invalid" not in err and "Name or service" not in out
    doc = json.loads(cli(conf, "status", "--json")[1])
    backup = next(r for r in doc["remotes"] if r["name"] == "backup")
    assert backup["enabled"] is False and backup["contacted"] is False
    assert backup["backlog"] == {}


def test_status_counts_readings_of_nodes_without_a_location(pair):
    seed_cogent_house(pair.local, days=0)
    from tests.push.test_retry import unplaced_readings
    from tests.pushkit import insert_unchecked

    insert_unchecked(pair.local, unplaced_readings(3))
    engine = make_engine(pair.local)
    with engine.begin() as conn:
        conn.execute(Node.__table__.update().where(Node.id == 202).values(locationId=None))
        states = conn.execute(
            select(func.count()).select_from(NodeState).where(NodeState.nodeId == 202)
        ).scalar_one()
    engine.dispose()
    code, out, err = cli(pair.config().path, "status", "--offline")
    assert code == Exit.OK, out + err
    assert f"of them in no house (their node has no location): 3 readings, {states} node" in out


def test_stop_stops_a_daemon_it_did_not_start(pair):
    """systemd (or a shell) runs the daemon in the foreground: no pidfile, only the lock."""
    seed_cogent_house(pair.local, days=0)
    config = pair.config()
    daemon = subprocess.Popen(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config.path), "run"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while lock_holder(config.lockfile) != daemon.pid and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock_holder(config.lockfile) == daemon.pid
        assert not Path(config.pidfile).exists()
        code, out, err = cli(config.path, "once")  # the lock message names what works …
        assert code == Exit.ALREADY_RUNNING and f"RestPusher.py -c {config.path} stop" in err
        code, out, err = cli(config.path, "stop")  # … and it does
        assert code == 0, out + err
        assert f"stopped (pid {daemon.pid})" in out and f"lock {config.lockfile}" in out
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGKILL)
    code, out, err = cli(config.path, "stop")
    assert code == 0 and "not running" in out, out + err
    assert lock_holder(config.lockfile) is None


def test_the_systemd_unit_of_a_process_is_read_from_its_cgroup(backend):
    unit = unit_of_cgroup("0::/system.slice/cogent-restpusher.service\n")
    assert unit is not None and unit.stop_command == "systemctl stop cogent-restpusher.service"
    user = unit_of_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/p.service")
    assert user is not None and user.stop_command == "systemctl --user stop p.service"
    assert unit_of_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    assert unit_of_cgroup("0::/\n") is None


def test_a_mistyped_sqlite_path_is_an_error_that_creates_nothing(pair, tmp_path):
    missing_dir = tmp_path / "nosuchdir" / "base.db"
    with pytest.raises(DatabaseUnavailable, match="does not exist; create it"):
        make_engine(f"sqlite:///{missing_dir}")
    assert not missing_dir.parent.exists()
    missing_file = tmp_path / "base.db"
    for command in ("once", "status", "verify", "retry", "run"):
        conf = write_config(
            tmp_path / "typo.conf", f"sqlite:///{missing_file}", {"central": (pair.server.url, "k")}
        ).path
        code, out, err = cli(conf, command)
        assert code == Exit.LOCAL_DATABASE, (command, out + err)
        assert "there is no file" in err and "RestPusher.py migrate" in err, err
    assert not missing_file.exists()
    code, out, err = cli(conf, "migrate")  # the one command that creates it
    assert code == 0 and missing_file.exists(), out + err


def test_every_command_names_its_database_first_and_says_whether_it_writes(pair):
    seed_cogent_house(pair.local, days=0)
    password_url = f"mysql://cogent:s3cret@127.0.0.1:{free_port()}/cogent"
    conf = write_config(pair.dir / "pw.conf", password_url, {"central": (pair.server.url, "k")})
    code, out, err = cli(conf.path, "once")
    assert code == Exit.LOCAL_DATABASE, out + err
    assert "s3cret" not in out + err and "cogent:***@" in out.splitlines()[0], out + err
    config = pair.config()
    expected = {
        ("once",): "pushing to central (writes",
        ("migrate",): "upgrading its schema to",
        ("verify",): "comparing with central (read only)",
        ("verify", "--repair"): "--repair re-sends rows to the remote",
        ("retry",): "(writes which stay set aside)",
    }
    for args, words in expected.items():
        _, out, _ = cli(config.path, *args)
        first = out.splitlines()[0]
        assert first.startswith(f"local database {pair.local}: ") and words in first, first
    out = cli(config.path, "status")[1]
    assert out.startswith(f"local database {pair.local} (schema ")


def test_a_held_lock_names_its_holder_and_a_free_one_none(pair, tmp_path):
    path = tmp_path / "x.lock"
    assert lock_holder(path) is None
    with PushLock(path):
        import os

        assert lock_holder(path) == os.getpid()
    assert lock_holder(path) is None
