"""The ``[listen]`` section of synchronise.conf: where to listen, how to read lines, when to
commit, and the emonhub node mappings."""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from base.errors import ConfigError

SECTION = "listen"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6544
FORMATS = ("auto", "native", "emonhub")
UNKNOWN_NODES = ("create", "reject")
MAX_NODE_ID = 2**31 - 1
_NODE_KEY = re.compile(r"^node\.(\d+)$")

# One position of an emonhub frame: (sensor type, scale), or None to ignore the value.
FieldSpec = tuple[str, float] | None


@dataclass(frozen=True)
class ListenConfig:
    """The ``[listen]`` section: where to listen, how to read lines, when to commit."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    format: str = "auto"
    unknown_nodes: str = "create"
    batch_lines: int = 100
    batch_seconds: float = 1.0
    mapping: Mapping[int, tuple[FieldSpec, ...]] = field(default_factory=dict)


def parse_mapping_value(key: str, raw: str) -> tuple[FieldSpec, ...]:
    """``T,RH,-,BAT*0.001`` → ``(("T", 1.0), ("RH", 1.0), None, ("BAT", 0.001))``."""
    fields: list[FieldSpec] = []
    for token in raw.split(","):
        token = token.strip()
        if token in ("", "-"):
            fields.append(None)
            continue
        code, _, scale_raw = token.partition("*")
        scale = 1.0
        if scale_raw:
            try:
                scale = float(scale_raw)
            except ValueError:
                scale = math.nan
            if not math.isfinite(scale):
                raise ConfigError(
                    f"= {raw!r}: scale {scale_raw!r} is not a number (write e.g. T*0.01)",
                    section=SECTION,
                    key=key,
                )
        fields.append((code.strip(), scale))
    if all(f is None for f in fields):
        raise ConfigError(
            f"= {raw!r} maps no value; list sensor types, e.g. T,RH,BAT", section=SECTION, key=key
        )
    return tuple(fields)


def parse_listen_section(parser: configparser.ConfigParser) -> ListenConfig:
    """Validate the ``[listen]`` section of an already-read configuration (defaults if absent)."""
    if not parser.has_section(SECTION):
        return ListenConfig()
    sec = parser[SECTION]
    cfg = ListenConfig()
    mapping: dict[int, tuple[FieldSpec, ...]] = {}
    for key, raw in sec.items():
        value = raw.strip()
        m = _NODE_KEY.match(key)
        if m:
            node = int(m.group(1))
            if node > MAX_NODE_ID:
                raise ConfigError(f"node id {node} is too large", section=SECTION, key=key)
            mapping[node] = parse_mapping_value(key, value)
        elif key == "host":
            cfg = replace(cfg, host=value or DEFAULT_HOST)
        elif key == "port":
            cfg = replace(cfg, port=_int(key, value, 0, 65535))
        elif key == "format":
            cfg = replace(cfg, format=_choice(key, value, FORMATS))
        elif key == "unknown_nodes":
            cfg = replace(cfg, unknown_nodes=_choice(key, value, UNKNOWN_NODES))
        elif key == "batch_lines":
            cfg = replace(cfg, batch_lines=_int(key, value, 1, 100_000))
        elif key == "batch_seconds":
            cfg = replace(cfg, batch_seconds=_float(key, value, 0.01, 3600))
        else:
            raise ConfigError(
                f"unknown key {key!r}; valid keys are: batch_lines, batch_seconds, format, "
                f"host, node.<id>, port, unknown_nodes",
                section=SECTION,
                key=key,
            )
    return replace(cfg, mapping=mapping)


def load_listen_config(path: str | os.PathLike[str]) -> ListenConfig:
    """The ``[listen]`` section of ``path`` (usually synchronise.conf); defaults if absent."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = Path(path).read_text(encoding="utf-8")
        parser.read_string(text, source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from exc
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse configuration: {exc}") from exc
    return parse_listen_section(parser)


def _int(key: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"= {raw!r} is not a whole number", section=SECTION, key=key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"= {value} is out of range; use {lo}..{hi}", section=SECTION, key=key)
    return value


def _float(key: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"= {raw!r} is not a number", section=SECTION, key=key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"= {raw} is out of range; use {lo:g}..{hi:g}", section=SECTION, key=key)
    return value


def _choice(key: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw.lower() not in choices:
        raise ConfigError(f"= {raw!r} is not one of {', '.join(choices)}", section=SECTION, key=key)
    return raw.lower()
