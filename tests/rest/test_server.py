"""The server as a program: version, OpenAPI, the schema check at start, the CLI, logs, keys."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from base.migrate import head_revision, upgrade
from models import ApiKey, Site
from rest.cli import main
from tests.live_server import REPO, create_key, start_server
from tests.live_server import live_server as live_server  # the fixture, as other suites use it
from tests.reliability.kit import wait_for
from tests.rest.conftest import client, make_site


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``cogent-rest ARGS`` in this process (``python -m rest`` itself runs in every LiveServer)."""

    def run(*args: str, db_url: str | None = None) -> Ran:
        monkeypatch.delenv("COGENT_DB_URL", raising=False)
        if db_url:
            monkeypatch.setenv("COGENT_DB_URL", db_url)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_version_endpoint_reports_application_version_and_revisions(server):
    with client(server) as http:
        reply = http.get("version/")
    assert reply.status_code == 200
    assert reply.json() == {
        "application": "cogent-sync",
        "version": "0.1.0",
        "schema": head_revision(),
        "head": head_revision(),
    }


def test_openapi_document_and_interactive_docs_are_served(server):
    root = server.url.removesuffix("rest/")
    doc = httpx.get(root + "openapi.json").json()
    paths = doc["paths"]
    for kind in ("sensortype", "house", "reading", "nodestate"):
        assert {"get", "post"} <= set(paths[f"/rest/{kind}/"])
        assert {"get", "put", "delete"} <= set(paths[f"/rest/{kind}/{{row_id}}"])
    for path in (
        "/rest/version/",
        "/rest/sync/map/",
        "/rest/sync/batch/",
        "/rest/summary/reading/",
    ):
        assert path in paths
    assert "requestBody" in paths["/rest/sync/batch/"]["post"]
    assert "bearer" in doc["components"]["securitySchemes"]
    docs = httpx.get(root + "docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_paths_and_methods_get_json_errors(server):
    with client(server) as http:
        assert http.get("../nothing-here").json()["status"] == 404
        reply = http.patch("sensortype/1")
    assert reply.status_code == 405 and "not allowed" in reply.json()["error"]


def test_server_refuses_to_start_on_a_database_not_at_head(run_cli, make_db):
    empty = make_db("empty", migrate=False)
    result = run_cli("serve", "--db", empty, "--port", "1")
    assert result.returncode == 2
    assert "alembic -x url=" in result.stderr and "upgrade head" in result.stderr
    old = make_db("old", migrate=False)
    upgrade(old, "0001")
    result = run_cli("serve", "--port", "1", db_url=old)  # the URL from COGENT_DB_URL
    assert result.returncode == 2
    assert f"revision 0001 but this server needs {head_revision()}" in result.stderr


def test_every_subcommand_has_help(run_cli):
    for args, words in (
        ((), "serve"),
        (("serve",), "--max-body"),
        (("keys",), "revoke"),
        (("keys", "create"), "--role"),
        (("keys", "list"), "--site"),
        (("keys", "revoke"), "id"),
    ):
        result = run_cli(*args, "--help")
        assert result.returncode == 0, result.stderr
        assert words in result.stdout
    assert run_cli("serve").returncode == 2  # no database given
    assert "COGENT_DB_URL" in run_cli("serve").stderr


@pytest.mark.slow  # starts a subprocess
def test_python_dash_m_rest_is_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "rest", "keys", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0 and "create" in result.stdout


def test_keys_cli_creates_lists_and_revokes_keys(run_cli, server, db):
    site = make_site(server).name
    created = run_cli("keys", "create", "--site", site, "--db", server.db_url)
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines()[0].startswith("cogent-rest: database ")  # which one, first
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cgk_") and len(key) >= 36
    with client(server, key) as http:
        assert http.get("house/").status_code == 200
    listing = run_cli("keys", "list", "--site", site, db_url=server.db_url)
    assert listing.returncode == 0
    assert key[:12] in listing.stdout and key not in listing.stdout
    with db.connect() as conn:
        stored = conn.execute(
            select(ApiKey.id, ApiKey.keyHash).where(ApiKey.prefix == key[:12])
        ).one()
    assert key not in stored.keyHash and len(stored.keyHash) == 64
    revoked = run_cli("keys", "revoke", str(stored.id), db_url=server.db_url)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with client(server, key) as http:
        assert http.get("house/").status_code == 401
    assert "no key with id" in run_cli("keys", "revoke", "987654", db_url=server.db_url).stderr
    bad = run_cli("keys", "create", "--db", server.db_url)
    assert bad.returncode == 2 and "--site" in bad.stderr


def test_key_use_is_recorded_without_a_write_per_request(server, db):
    site = make_site(server)
    with db.connect() as conn:
        first = conn.execute(
            select(ApiKey.lastUsed, Site.lastSeen)
            .join(Site, Site.id == ApiKey.siteId)
            .where(Site.name == site.name)
        ).one()
    assert first.lastUsed is not None and first.lastSeen is not None
    for _ in range(3):
        site.http.get("house/")
    with db.connect() as conn:
        again = conn.execute(
            select(ApiKey.lastUsed)
            .join(Site, Site.id == ApiKey.siteId)
            .where(Site.name == site.name)
        ).scalar_one()
    assert again == first.lastUsed  # within the minute: not written again


@pytest.mark.parametrize("backend", ["sqlite"])
def test_live_server_fixture_restarts_on_the_same_port(live_server):
    key = create_key(live_server.db_url, "site-a")
    port = live_server.port
    live_server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(live_server.url + "version/")
    live_server.start()
    assert live_server.port == port
    with client(live_server, key) as http:
        assert http.get("house/").status_code == 200
    live_server.kill()
    live_server.start()
    assert httpx.get(live_server.url + "version/").status_code == 200


@pytest.mark.slow  # starts a subprocess
def test_keys_never_reach_the_log_even_when_sent_in_the_url(sqlite_url):
    live = start_server(sqlite_url, log_level="info", workers=2)
    try:
        key = create_key(sqlite_url, "site-log")
        with client(live, key) as http:
            assert http.get("house/").status_code == 200
            assert http.get("house/", params={"apikey": key}).status_code == 400
            assert http.get(f"house/?address={key}").status_code == 400
            http.get("version/?after=all")  # logged after the others: once it is there, they are
        wait_for(lambda: "after=all" in live.log, 10, "the server's access log")
        log = live.log
        assert "GET /rest/house/" in log  # the access log is on
        assert key not in log and key[4:] not in log
    finally:
        live.stop()
