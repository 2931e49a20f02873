"""POST /rest/login/: a base station's account and password → a new key for its site;
wrong passwords counted and locked out, disabled accounts refused, only site accounts."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from rest.accounts import MAX_FAILURES, create_account, disable_account
from rest.keys import list_keys
from tests.rest.conftest import client, unique

PASSWORD = "correct horse battery"


def _account(db, role: str = "site", site: str | None = None) -> tuple[str, str | None]:
    name = unique("acct")
    site = site or (unique("station") if role == "site" else None)
    with Session(db) as session:
        create_account(session, name, PASSWORD, role, site)
        session.commit()
    return name, site


def _login(server, name: str, password: str) -> httpx.Response:
    with client(server) as http:
        return http.post("login/", json={"name": name, "password": password})


def test_a_site_account_gets_a_working_key_for_its_site(server, db):
    name, site = _account(db)
    reply = _login(server, name, PASSWORD)
    assert reply.status_code == 201, reply.text
    assert reply.json()["site"] == site
    key = reply.json()["key"]
    with client(server, key) as http:
        assert http.get("house/").status_code == 200
    with Session(db) as session:  # an ordinary site key: listed, revocable
        assert [k.site for k in list_keys(session, site)] == [site]


def test_wrong_passwords_lock_the_account_and_unknown_names_say_nothing_more(server, db):
    name, _ = _account(db)
    unknown = _login(server, unique("nobody"), PASSWORD)
    for _ in range(MAX_FAILURES):
        wrong = _login(server, name, "not the password")
        assert wrong.status_code == 401
        assert wrong.json()["error"] == unknown.json()["error"]  # no hint which was wrong
    locked = _login(server, name, PASSWORD)  # even the right password, while locked
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
    assert "locked" in locked.json()["error"]


def test_disabled_and_non_site_accounts_get_no_key(server, db):
    name, _ = _account(db)
    with Session(db) as session:
        disable_account(session, name)
        session.commit()
    assert _login(server, name, PASSWORD).status_code == 403
    reader, _ = _account(db, role="readonly")
    reply = _login(server, reader, PASSWORD)
    assert reply.status_code == 403 and "site" in reply.json()["error"]
