"""The documented deployment, run: etc/install-base-station.sh into a scratch prefix, then the
unit's ExecStart run as systemd would run it.

"As systemd would": the unit's User and Group (``nobody`` when the tests run as root, the
current user otherwise), its WorkingDirectory, only the environment it sets, and the
configuration folder read-only as ``ProtectSystem=full`` makes /etc (a read-only bind mount
in a private mount namespace when the tests run as root; without write permission
otherwise). Then: does the daemon start, push, stop cleanly on SIGTERM, and keep every
piece of state under the state folder?
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from base.db import make_engine
from models import Reading
from tests.dbs import in_ci
from tests.live_server import REPO, create_key, start_server
from tests.pushkit import count, seed_cogent_house

pytestmark = pytest.mark.slow

ROOT = os.geteuid() == 0
SERVER_ONLY = ("fastapi", "uvicorn", "psycopg", "starlette")


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, str]]:
    """(prefix, user): the base station installed under a scratch prefix."""
    if shutil.which("systemd-analyze") is None:
        why = "systemd-analyze is missing: 'make test-tools' installs Debian's systemd package"
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    prefix = Path(tempfile.mkdtemp(prefix="cogent-deploy-", dir="/tmp"))
    prefix.chmod(0o755)  # the unit's user must reach its folders
    user = "nobody" if ROOT else pwd.getpwuid(os.geteuid()).pw_name
    try:
        done = subprocess.run(
            ["bash", str(REPO / "etc/install-base-station.sh"), "--prefix", str(prefix),
             "--user", user],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        yield prefix, user
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def run_as_unit(unit: Path, readonly: list[Path]) -> subprocess.Popen[str]:
    """Start the unit's ExecStart the way systemd would (see the module's docstring)."""
    s = unit_settings(unit)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    for assignment in s.get("Environment", []):
        key, value = assignment.split("=", 1)
        env[key] = value
    argv = s["ExecStart"][0].split()
    user = s["User"][0]
    if ROOT:
        mounts = " && ".join(
            f"mount --bind {p} {p} && mount -o remount,bind,ro {p}" for p in readonly
        )
        drop = ["setpriv", f"--reuid={user}", f"--regid={s['Group'][0]}", "--init-groups"]
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'{mounts} && exec "$@"', "sh", *drop, *argv]  # fmt: skip
    else:
        for p in readonly:
            p.chmod(0o555)
        cmd = argv
    return subprocess.Popen(
        cmd, cwd=s["WorkingDirectory"][0], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def configure(prefix: Path, resturl: str, key: str, text: str | None = None) -> Path:
    conf = prefix / "etc/cogent/synchronise.conf"
    text = text if text is not None else conf.read_text()
    text = text.replace("resturl = http://127.0.0.1:6543/rest/", f"resturl = {resturl}")
    text = text.replace("apikey =\n", f"apikey = {key}\n", 1)
    text = text.replace("synctime = 60", "synctime = 1")
    conf.write_text(text)
    return conf


def as_unit_user(prefix: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A documented one-off command (``sudo -u cogent cogent-push …``) as the unit's user."""
    unit = unit_settings(prefix / "etc/systemd/system/cogent-restpusher.service")
    env = {"PATH": "/usr/bin:/bin"}
    for assignment in unit.get("Environment", []):
        key, value = assignment.split("=", 1)
        env[key] = value
    drop = ["setpriv", f"--reuid={user}", f"--regid={unit['Group'][0]}", "--init-groups"]
    exe = str(prefix / "opt/cogent-sync/.venv/bin/cogent-push")
    conf = str(prefix / "etc/cogent/synchronise.conf")
    return subprocess.run(
        [*(drop if ROOT else []), exe, "-c", conf, *args],
        cwd=unit["WorkingDirectory"][0], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def wait_for_readings(url: str, n: int, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"the daemon exited with {proc.returncode}:\n{out}")
            if count(engine, Reading) >= n:
                return
            time.sleep(0.5)
    finally:
        engine.dispose()
    proc.kill()
    pytest.fail(f"readings did not arrive:\n{proc.communicate()[0]}")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def _chown_state(prefix: Path, user: str) -> None:
    record = pwd.getpwnam(user)
    for path in [prefix / "var/lib/cogent", *(prefix / "var/lib/cogent").rglob("*")]:
        os.chown(path, record.pw_uid, record.pw_gid)


def test_the_base_station_install_has_none_of_the_servers_dependencies(installed):
    prefix, _ = installed
    python = prefix / "opt/cogent-sync/.venv/bin/python"
    for module in SERVER_ONLY:
        found = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed on the base station"
    done = subprocess.run(
        [prefix / "opt/cogent-sync/.venv/bin/cogent-push", "--help"], capture_output=True
    )
    assert done.returncode == 0, done.stderr


def test_the_installed_units_pass_systemd_analyze_verify(installed):
    prefix, _ = installed
    unit = prefix / "etc/systemd/system/cogent-restpusher.service"
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    settings = unit_settings(unit)
    assert settings["ProtectSystem"] == ["full"]
    assert settings["WorkingDirectory"] == [str(prefix / "var/lib/cogent")]


ONLY_SQLITE = pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])


@ONLY_SQLITE
def test_the_unit_starts_pushes_and_stops_with_a_read_only_etc(installed, make_db):
    """The documented steps (install, edit the configuration, migrate, enable) on a fresh
    box: the daemon runs as the unit's user with /etc read-only and every file it writes
    lands in /var/lib/cogent."""
    prefix, user = installed
    remote = make_db("remote")
    server = start_server(remote)
    try:
        configure(prefix, server.url, create_key(remote, "deploy-site"))
        migrated = as_unit_user(prefix, user, "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        state = prefix / "var/lib/cogent"
        local = f"sqlite:///{state / 'cogent-base.db'}"
        data = seed_cogent_house(local, days=1)
        if ROOT:
            _chown_state(prefix, user)
        unit = prefix / "etc/systemd/system/cogent-restpusher.service"
        proc = run_as_unit(unit, readonly=[prefix / "etc", Path("/etc"), Path("/usr")])
        wait_for_readings(remote, data.readings, proc)
        code, out = stop(proc)
        assert code == 0, out
        assert "Read-only file system" not in out, out
        assert {p.name for p in state.iterdir()} >= {"cogent-base.db", "restpusher.log"}
        assert sorted(p.name for p in (prefix / "etc/cogent").iterdir()) == ["synchronise.conf"]
    finally:
        server.stop()
        if not ROOT:
            (prefix / "etc").chmod(0o755)


@ONLY_SQLITE
def test_a_configuration_with_relative_paths_keeps_its_state_in_var_lib_cogent(
    installed, make_db
):
    """The sample copied as it is (relative paths, as the old docs said): the unit's
    COGENT_STATE_DIR sends database, log and lock to /var/lib/cogent, not /etc/cogent/var
    (which ProtectSystem=full makes read-only: a crash loop before)."""
    prefix, user = installed
    remote = make_db("remote")
    server = start_server(remote)
    conf = prefix / "etc/cogent/synchronise.conf"
    kept = conf.read_text()
    state = prefix / "var/lib/cogent"
    try:
        configure(prefix, server.url, create_key(remote, "deploy-site-2"),
                  text=(REPO / "synchronise.conf").read_text())  # fmt: skip
        (state / "var").mkdir(exist_ok=True)
        if ROOT:
            _chown_state(prefix, user)
        migrated = as_unit_user(prefix, user, "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        data = seed_cogent_house(f"sqlite:///{state / 'var/cogent-base.db'}", days=1, seed=3)
        if ROOT:
            _chown_state(prefix, user)
        unit = prefix / "etc/systemd/system/cogent-restpusher.service"
        proc = run_as_unit(unit, readonly=[prefix / "etc", Path("/etc"), Path("/usr")])
        wait_for_readings(remote, data.readings, proc)
        code, out = stop(proc)
        assert code == 0, out
        assert (state / "var/restpusher.log").exists() and (state / "var/restpusher.lock").exists()
        assert not (prefix / "etc/cogent/var").exists()
    finally:
        server.stop()
        if not ROOT:
            (prefix / "etc").chmod(0o755)
        conf.write_text(kept)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
