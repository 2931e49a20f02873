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

from base.convert import Converter, choice, integer, number, text
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


# Every plain key of the section, its converter, and the command-line option of the same name.
KEYS: dict[str, Converter] = {
    "host": text(DEFAULT_HOST),
    "port": integer(SECTION, 0, 65535),
    "format": choice(SECTION, FORMATS),
    "unknown_nodes": choice(SECTION, UNKNOWN_NODES),
    "batch_lines": integer(SECTION, 1, 100_000),
    "batch_seconds": number(SECTION, 0.01, 3600),
}


def parse_listen_section(
    parser: configparser.ConfigParser, overrides: Mapping[str, str] | None = None
) -> ListenConfig:
    """Validate the ``[listen]`` section of an already-read configuration (defaults if absent),
    then ``overrides`` (raw text by key, from the command line) through the same converters."""
    raw: dict[str, str] = {}
    mapping: dict[int, tuple[FieldSpec, ...]] = {}
    items = parser[SECTION].items() if parser.has_section(SECTION) else ()
    for key, value in items:
        m = _NODE_KEY.match(key)
        if m:
            node = int(m.group(1))
            if node > MAX_NODE_ID:
                raise ConfigError(f"node id {node} is too large", section=SECTION, key=key)
            mapping[node] = parse_mapping_value(key, value.strip())
        elif key in KEYS:
            raw[key] = value.strip()
        else:
            raise ConfigError(
                f"unknown key {key!r}; valid keys are: {', '.join(sorted([*KEYS, 'node.<id>']))}",
                section=SECTION,
                key=key,
            )
    values = {key: KEYS[key](key, value) for key, value in raw.items()}
    for key, value in (overrides or {}).items():
        try:
            values[key] = KEYS[key](key, value)
        except ConfigError as exc:
            raise ConfigError(f"--{key.replace('_', '-')}: {exc.reason}") from None
    return replace(ListenConfig(), mapping=mapping, **values)  # type: ignore[arg-type]


def load_listen_config(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, str] | None = None
) -> ListenConfig:
    """The ``[listen]`` section of ``path`` (usually synchronise.conf; defaults if absent or
    ``None``), then the command line's ``overrides``."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    if path is None:
        return parse_listen_section(parser, overrides)
    try:
        parser.read_string(Path(path).read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from exc
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse configuration: {exc}") from exc
    return parse_listen_section(parser, overrides)
