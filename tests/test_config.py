"""synchronise.conf: defaults, validation, and messages that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.config import load_config, parse_config
from base.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
MINIMAL = "[general]\nlocalurl = sqlite:///x.db\n"


def test_the_sample_configuration_loads_and_enables_only_central():
    cfg = load_config(REPO / "synchronise.conf")
    assert cfg.pushlimit == 5000
    assert [r.name for r in cfg.enabled_remotes] == ["central"]
    assert cfg.remote("central").resturl == "http://127.0.0.1:6543/rest/"
    assert cfg.localurl == f"sqlite:///{REPO / 'var/cogent-base.db'}"


def test_defaults_fill_every_key_but_localurl(tmp_path):
    cfg = parse_config(MINIMAL, base_dir=tmp_path)
    assert (cfg.pushlimit, cfg.synctime, cfg.loglevel) == (5000, 60.0, "INFO")
    assert cfg.remotes == ()
    assert cfg.logfile == str(tmp_path / "var/restpusher.log")


@pytest.mark.parametrize(
    ("text", "must_mention"),
    [
        ("[general]\n", ["[general]", "localurl"]),
        (MINIMAL + "pushlimit = lots\n", ["[general]", "pushlimit", "'lots'"]),
        (MINIMAL + "pushlimit = 0\n", ["pushlimit", "out of range"]),
        (MINIMAL + "synctime = nan\n", ["synctime"]),
        (MINIMAL + "pushlimt = 10\n", ["unknown key 'pushlimt'", "pushlimit"]),
        (MINIMAL + "loglevel = chatty\n", ["loglevel", "'chatty'"]),
        (MINIMAL + "[locations]\nc = 1\n", ["[locations]", "c", "no [c] section"]),
        (MINIMAL + "[locations]\nc = maybe\n[c]\nresturl=http://x/\n", ["'maybe'"]),
        (MINIMAL + "[locations]\nc = 1\n[c]\nresturl = ftp://x/\n", ["[c]", "resturl", "ftp://x/"]),
        (MINIMAL + "[locations]\nc = 1\n[c]\nresturl=http://x/\ntimeout=-1\n", ["[c] timeout"]),
        ("[general]\nlocalurl = oracle://x\n", ["localurl", "oracle"]),
        ("no section here", ["cannot parse"]),
    ],
)
def test_bad_configuration_names_section_key_and_value(tmp_path, text, must_mention):
    with pytest.raises(ConfigError) as err:
        parse_config(text, base_dir=tmp_path)
    for part in must_mention:
        assert part in str(err.value)


def test_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match=r"sample synchronise\.conf"):
        load_config(tmp_path / "nope.conf")


def test_disabled_remote_without_section_is_ignored(tmp_path):
    cfg = parse_config(MINIMAL + "[locations]\nold = 0\n", base_dir=tmp_path)
    assert cfg.remotes == ()


def test_resturl_gets_a_trailing_slash(tmp_path):
    cfg = parse_config(
        MINIMAL + "[locations]\nc = 1\n[c]\nresturl = http://h:1/rest\n", base_dir=tmp_path
    )
    assert cfg.remote("c").resturl == "http://h:1/rest/"


@given(st.integers(min_value=1, max_value=1_000_000))
def test_any_valid_pushlimit_round_trips(n):
    assert parse_config(MINIMAL + f"pushlimit = {n}\n").pushlimit == n


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12))
def test_garbage_pushlimit_is_a_config_error_never_a_crash(raw):
    raw = raw.replace("\n", " ").replace("\r", " ")
    try:
        n = parse_config(MINIMAL + f"pushlimit = {raw}\n").pushlimit
    except ConfigError:
        return
    assert 1 <= n <= 1_000_000


def test_relative_paths_are_taken_from_cogent_state_dir_when_set(tmp_path, monkeypatch):
    """The unit keeps its configuration in read-only /etc/cogent and sets COGENT_STATE_DIR:
    state must land there, not next to the configuration."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    conf = etc / "synchronise.conf"
    conf.write_text("[general]\nlocalurl = sqlite:///var/base.db\nlogfile = var/push.log\n")
    monkeypatch.setenv("COGENT_STATE_DIR", str(state))
    config = load_config(conf)
    assert config.localurl == f"sqlite:///{state}/var/base.db"
    assert (config.logfile, config.lockfile, config.pidfile) == (
        f"{state}/var/push.log", f"{state}/var/restpusher.lock", f"{state}/var/restpusher.pid"
    )
    absolute = etc / "abs.conf"
    absolute.write_text("[general]\nlocalurl = sqlite:////data/base.db\nlockfile = /run/x.lock\n")
    config = load_config(absolute)
    assert config.localurl == "sqlite:////data/base.db" and config.lockfile == "/run/x.lock"
    monkeypatch.delenv("COGENT_STATE_DIR")
    assert load_config(conf).localurl == f"sqlite:///{etc}/var/base.db"
    monkeypatch.setenv("COGENT_STATE_DIR", "relative/dir")
    with pytest.raises(ConfigError, match="must be an absolute path"):
        load_config(conf)


@pytest.mark.parametrize("raw, seconds", [("300", 300), ("300s", 300), ("5m", 300),
                                          ("1h", 3600), ("1.5h", 5400), ("10 m", 600)])
def test_synctime_takes_a_unit_and_a_bare_number_is_seconds(tmp_path, raw, seconds):
    config = parse_config(f"[general]\nlocalurl = sqlite:///x.db\nsynctime = {raw}\n",
                          base_dir=tmp_path)
    assert config.synctime == seconds


@pytest.mark.parametrize("raw", ["5x", "0", "2d", "m", "nan"])
def test_a_synctime_that_is_not_a_duration_names_the_key_and_value(tmp_path, raw):
    with pytest.raises(ConfigError, match=rf"\[general\] synctime: = '?{raw}"):
        parse_config(f"[general]\nlocalurl = sqlite:///x.db\nsynctime = {raw}\n",
                     base_dir=tmp_path)


def test_without_c_the_original_install_location_is_searched_after_the_current_folder(
        tmp_path, monkeypatch):
    import sys

    prefix = tmp_path / "venv"
    original = prefix / "etc" / "cogent-house" / "push-script" / "synchronise.conf"
    original.parent.mkdir(parents=True)
    original.write_text("[general]\nlocalurl = mysql://chuser@localhost/ch\npushlimit = 10000\n"
                        "synctime = 10m\n[locations]\nlocal = 0\ncogentee = 1\n[local]\n"
                        "resturl = http://127.0.0.1:6543/rest/\n[cogentee]\n"
                        "resturl = http://example.org/rest/\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("COGENT_CONFIG", raising=False)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    config = load_config()
    assert config.path == original and config.synctime == 600
    assert [r.name for r in config.enabled_remotes] == ["cogentee"]
    (work / "synchronise.conf").write_text("[general]\nlocalurl = sqlite:///here.db\n")
    assert load_config().path == Path("synchronise.conf")  # the current folder comes first


def test_a_metrics_file_the_node_exporter_would_not_read_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[general\] metrics_file: .*\.prom"):
        parse_config("[general]\nlocalurl = sqlite:///x.db\nmetrics_file = cogent.txt\n",
                     base_dir=tmp_path)
    config = parse_config("[general]\nlocalurl = sqlite:///x.db\nmetrics_file = var/cogent.prom\n",
                          base_dir=tmp_path)
    assert config.metrics_file == str(tmp_path / "var" / "cogent.prom")
