"""The one configuration object, loaded from ``synchronise.conf``.

Defaults, then the file, then validation: every error names the section, the
key and the bad value, and says what is allowed. Nothing here runs at import.
Relative paths (a SQLite file, the log file, the pidfile) are resolved against
the state directory: ``$COGENT_STATE_DIR`` when set (the systemd unit sets it to
/var/lib/cogent, so a configuration kept read-only in /etc/cogent never sends
state there), else the directory of the configuration file, so a daemon started
from anywhere finds the same files. Absolute paths are taken as they are.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import make_url

from base.convert import boolean as _boolean
from base.convert import choice as _choice
from base.convert import duration as _duration
from base.convert import integer as _integer
from base.convert import number as _number
from base.errors import ConfigError

DEFAULT_CONFIG_NAME = "synchronise.conf"
CONFIG_ENV = "COGENT_CONFIG"
STATE_DIR_ENV = "COGENT_STATE_DIR"
COMPRESSIONS = ("gzip", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteConfig:
    """One central server to push to: a ``[name]`` section, enabled in ``[locations]``."""

    name: str
    resturl: str
    apikey: str = ""
    enabled: bool = True
    connect_timeout: float = 10.0
    timeout: float = 60.0
    compression: str = "gzip"
    verify_tls: bool = True
    request_deadline: float = 180.0  # a whole request, however slowly its reply trickles in
    max_reply: int = 64 * 1024 * 1024  # bytes of a reply, decompressed


@dataclass(frozen=True)
class Config:
    localurl: str
    path: Path | None = None
    pushlimit: int = 5000
    synctime: float = 60.0
    jitter: float = 0.2
    # Seconds this station's clock may differ from a server's before status and the log warn.
    clock_warning: float = 120.0
    # The node exporter textfile rewritten after every cycle (None: not written).
    metrics_file: str | None = None
    backoff_min: float = 5.0
    backoff_max: float = 900.0
    logfile: str | None = None
    loglevel: str = "INFO"
    pidfile: str = "var/restpusher.pid"
    lockfile: str = "var/restpusher.lock"
    remotes: tuple[RemoteConfig, ...] = field(default_factory=tuple)

    @property
    def enabled_remotes(self) -> tuple[RemoteConfig, ...]:
        return tuple(r for r in self.remotes if r.enabled)

    def remote(self, name: str) -> RemoteConfig:
        for r in self.remotes:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.remotes) or "none"
        raise ConfigError(f"no remote called {name!r}; configured remotes: {known}")


GENERAL_KEYS = {
    "localurl",
    "pushlimit",
    "synctime",
    "jitter",
    "clock_warning",
    "backoff_min",
    "backoff_max",
    "logfile",
    "metrics_file",
    "loglevel",
    "pidfile",
    "lockfile",
}
REMOTE_KEYS = {
    "resturl", "apikey", "connect_timeout", "timeout", "compression", "verify_tls",
    "request_deadline", "max_reply",
}


def original_config_paths() -> list[Path]:
    """Where Cogent-house installed its pusher's configuration: ``<prefix>/etc/cogent-house/
    push-script/`` (``/etc/...`` for a system-wide install, whose prefix is ``/usr``)."""
    tail = Path("etc", "cogent-house", "push-script", DEFAULT_CONFIG_NAME)
    prefixes = ["/" if sys.prefix == "/usr" else sys.prefix, "/"]
    return list(dict.fromkeys(Path(p) / tail for p in prefixes))


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``-c PATH``, else ``$COGENT_CONFIG``, else ``./synchronise.conf``, else the file an
    original Cogent-house install left (:func:`original_config_paths`)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    here = Path(DEFAULT_CONFIG_NAME)
    if not here.is_file():
        for original in original_config_paths():
            if original.is_file():
                return original
    return here


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and return the configuration at ``path`` (see :func:`find_config_path`)."""
    p = find_config_path(path)
    if not p.is_file():
        raise ConfigError(
            f"configuration file {str(p)!r} not found; copy the sample synchronise.conf "
            f"from the cogent-sync checkout and edit it, or pass -c PATH"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(p)!r}: {exc}") from exc
    return parse_config(text, base_dir=state_dir(p), path=p)


def state_dir(config_path: Path) -> Path:
    """Where relative paths of the configuration at ``config_path`` point to."""
    env = os.environ.get(STATE_DIR_ENV, "").strip()
    if env:
        where = Path(os.path.expanduser(env))
        if not where.is_absolute():
            raise ConfigError(f"{STATE_DIR_ENV}={env!r} must be an absolute path")
        return where
    return config_path.resolve().parent


def parse_config(text: str, *, base_dir: Path | None = None, path: Path | None = None) -> Config:
    """Validate configuration text; relative paths are taken from ``base_dir``."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=str(path or "<config>"))
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse configuration: {exc}") from exc
    base = base_dir or Path.cwd()

    if not parser.has_section("general"):
        raise ConfigError("missing section [general] (it holds localurl, pushlimit, synctime)")
    general = parser["general"]
    _reject_unknown("general", general.keys(), GENERAL_KEYS)

    def get(key: str, conv: Callable[[str, str], T], default: T) -> T:
        raw = general.get(key)
        if raw is None or raw.strip() == "":
            return default
        return conv(key, raw.strip())

    localurl = general.get("localurl", "").strip()
    if not localurl:
        raise ConfigError(
            "is required, e.g. sqlite:///var/cogent.db", section="general", key="localurl"
        )
    localurl = _resolve_db_url("general", "localurl", localurl, base)

    synctime = get("synctime", _duration("general", 1, 86_400), 60.0)
    backoff_min = get("backoff_min", _number("general", 0.1, 86_400), 5.0)
    backoff_max = get("backoff_max", _number("general", 1, 7 * 86_400), 900.0)
    if backoff_max < backoff_min:
        raise ConfigError(
            f"= {backoff_max:g} is below backoff_min = {backoff_min:g}; raise it",
            section="general",
            key="backoff_max",
        )
    logfile_raw = general.get("logfile", "var/restpusher.log").strip()
    config = Config(
        localurl=localurl,
        path=path,
        pushlimit=get("pushlimit", _integer("general", 1, 1_000_000), 5000),
        synctime=synctime,
        jitter=get("jitter", _number("general", 0, 1), 0.2),
        clock_warning=get("clock_warning", _duration("general", 1, 86_400), 120.0),
        backoff_min=backoff_min,
        backoff_max=backoff_max,
        logfile=str(_resolve_path(logfile_raw, base)) if logfile_raw else None,
        loglevel=get("loglevel", _choice("general", LOG_LEVELS, upper=True), "INFO"),
        metrics_file=_metrics_file(general.get("metrics_file", "").strip(), base),
        pidfile=str(_resolve_path(general.get("pidfile", "var/restpusher.pid"), base)),
        lockfile=str(_resolve_path(general.get("lockfile", "var/restpusher.lock"), base)),
        remotes=_parse_remotes(parser),
    )
    return config


def _metrics_file(raw: str, base: Path) -> str | None:
    if not raw:
        return None
    if not raw.endswith(".prom"):
        raise ConfigError(f"= {raw!r}: the node exporter reads only files ending in .prom",
                          section="general", key="metrics_file")
    return str(_resolve_path(raw, base))


def _parse_remotes(parser: configparser.ConfigParser) -> tuple[RemoteConfig, ...]:
    if not parser.has_section("locations"):
        return ()
    remotes = []
    for name, raw in parser["locations"].items():
        if not _REMOTE_NAME.match(name):
            raise ConfigError(
                f"remote name {name!r} may use only letters, digits, '_', '-' and '.'",
                section="locations",
                key=name,
            )
        enabled = _boolean("locations")(name, raw.strip())
        if not parser.has_section(name):
            if not enabled:
                continue
            raise ConfigError(
                f"remote {name!r} is enabled but has no [{name}] section with its resturl",
                section="locations",
                key=name,
            )
        sec = parser[name]
        _reject_unknown(name, sec.keys(), REMOTE_KEYS)
        resturl = sec.get("resturl", "").strip()
        if not resturl:
            raise ConfigError(
                "is required, e.g. https://server.example/rest/", section=name, key="resturl"
            )
        parts = urlsplit(resturl)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"= {resturl!r} is not an http(s) URL", section=name, key="resturl")
        if not resturl.endswith("/"):
            resturl += "/"

        def opt(key: str, conv: Callable[[str, str], T], default: T, _sec: Any = sec) -> T:
            raw_value = _sec.get(key)
            if raw_value is None or raw_value.strip() == "":
                return default
            return conv(key, raw_value.strip())

        remotes.append(
            RemoteConfig(
                name=name,
                resturl=resturl,
                apikey=sec.get("apikey", "").strip(),
                enabled=enabled,
                connect_timeout=opt("connect_timeout", _number(name, 0.1, 600), 10.0),
                timeout=opt("timeout", _number(name, 0.1, 3600), 60.0),
                compression=opt("compression", _choice(name, COMPRESSIONS), "gzip"),
                verify_tls=opt("verify_tls", _boolean(name), True),
                request_deadline=opt("request_deadline", _number(name, 1, 86_400), 180.0),
                max_reply=opt("max_reply", _integer(name, 65_536, 1 << 40), 64 * 1024 * 1024),
            )
        )
    return tuple(remotes)


def _reject_unknown(section: str, keys: Any, valid: set[str]) -> None:
    for key in keys:
        if key not in valid:
            raise ConfigError(
                f"unknown key {key!r}; valid keys are: {', '.join(sorted(valid))}",
                section=section,
                key=key,
            )


def _resolve_path(raw: str, base: Path) -> Path:
    p = Path(os.path.expanduser(raw.strip()))
    return p if p.is_absolute() else base / p


def _resolve_db_url(section: str, key: str, raw: str, base: Path) -> str:
    try:
        url = make_url(raw)
    except Exception:
        raise ConfigError(
            f"= {raw!r} is not a database URL; e.g. sqlite:///var/cogent.db or "
            f"mysql://user:password@localhost/cogent",
            section=section,
            key=key,
        ) from None
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb", "postgresql", "postgres"):
        raise ConfigError(
            f"= {raw!r}: unsupported database {url.get_backend_name()!r}; "
            f"use sqlite, mysql/mariadb or postgresql",
            section=section,
            key=key,
        )
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        if not db.is_absolute():
            url = url.set(database=str(base / db))
    return url.render_as_string(hide_password=False)
