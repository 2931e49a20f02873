"""RestPusher.py login: the key a base station's account receives is written into its
synchronise.conf (mode 0600, every other line kept); the password is in no file and no log;
the pusher then pushes with that key."""

from __future__ import annotations

import io
import stat
import sys

from sqlalchemy.orm import Session

from base.config import load_config
from base.db import make_engine
from push.cli import main
from rest.accounts import create_account
from tests.pushkit import push_once, seed_cogent_house, write_config

PASSWORD = "a long station password"


def test_login_writes_the_key_into_the_config_and_never_the_password(pair, monkeypatch,
                                                                     capsys):
    engine = make_engine(pair.remote)
    with Session(engine) as session:
        create_account(session, "loft-1", PASSWORD, "site", "loft-site")
        session.commit()
    engine.dispose()
    conf = pair.dir / "synchronise.conf"
    write_config(conf, pair.local, {"central": (pair.server.url, "")})
    text = conf.read_text().replace("apikey = \n", "# the key goes here\napikey = \n")
    conf.write_text(text)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code = main(["-c", str(conf), "login", "--user", "loft-1", "--password-stdin"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "loft-site" in out.out and "not stored" in out.out
    written = conf.read_text()
    assert "# the key goes here" in written and "apikey = cgk_" in written
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    for path in pair.dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in out.out + out.err
    data = seed_cogent_house(pair.local, days=1)
    [report] = push_once(load_config(conf))
    assert report.ok, report.error
    assert report.streams["Reading"].sent == data.readings


def test_a_wrong_password_writes_nothing_and_says_so(pair, monkeypatch, capsys):
    engine = make_engine(pair.remote)
    with Session(engine) as session:
        create_account(session, "loft-2", PASSWORD, "site", "loft-site-2")
        session.commit()
    engine.dispose()
    conf = pair.dir / "synchronise.conf"
    write_config(conf, pair.local, {"central": (pair.server.url, "")})
    before = conf.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong password\n"))
    code = main(["-c", str(conf), "login", "--user", "loft-2", "--password-stdin"])
    err = capsys.readouterr().err
    assert code != 0 and "login refused: wrong account name or password" in err
    assert conf.read_text() == before
