"""Converters from configuration text to typed values, with their bounds.

One set for every place a setting can come from — a configuration file's key or a
command-line option — so a value means the same and is refused in the same words
wherever it was written. Each converter takes ``(key, raw)`` and raises
:class:`~base.errors.ConfigError` naming the section, the key and the bad value.
"""

from __future__ import annotations

from collections.abc import Callable

from base.errors import ConfigError

Converter = Callable[[str, str], object]


def integer(section: str, lo: int, hi: int) -> Callable[[str, str], int]:
    def conv(key: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"= {raw!r} is not a whole number", section=section, key=key
            ) from None
        if not lo <= value <= hi:
            raise ConfigError(
                f"= {value} is out of range; use {lo}..{hi}", section=section, key=key
            )
        return value

    return conv


def number(section: str, lo: float, hi: float) -> Callable[[str, str], float]:
    def conv(key: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"= {raw!r} is not a number", section=section, key=key) from None
        if not lo <= value <= hi:  # also rejects nan
            raise ConfigError(
                f"= {raw} is out of range; use {lo:g}..{hi:g}", section=section, key=key
            )
        return value

    return conv


_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(section: str, lo: float, hi: float) -> Callable[[str, str], float]:
    """Seconds, from ``300``, ``300s``, ``5m``, ``1.5h`` or ``1d`` (a bare number is seconds)."""

    def conv(key: str, raw: str) -> float:
        text = raw.strip().lower().replace(" ", "")
        unit = text[-1:] if text[-1:] in "smhd" and text[-1:] else ""
        try:
            value = float(text[: len(text) - len(unit)]) * _UNIT_SECONDS[unit]
        except ValueError:
            raise ConfigError(
                f"= {raw!r} is not a duration; write seconds (300) or with a unit "
                f"(300s, 5m, 1h)", section=section, key=key) from None
        if not lo <= value <= hi:  # also rejects nan
            raise ConfigError(
                f"= {raw} is out of range; use {lo:g}..{hi:g} seconds (e.g. 5m)",
                section=section, key=key)
        return value

    return conv


def boolean(section: str) -> Callable[[str, str], bool]:
    def conv(key: str, raw: str) -> bool:
        low = raw.lower()
        if low in ("1", "yes", "true", "on"):
            return True
        if low in ("0", "no", "false", "off"):
            return False
        raise ConfigError(f"= {raw!r} is not a yes/no value; use 1 or 0", section=section, key=key)

    return conv


def choice(
    section: str, choices: tuple[str, ...], upper: bool = False
) -> Callable[[str, str], str]:
    def conv(key: str, raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise ConfigError(
                f"= {raw!r} is not one of {', '.join(choices)}", section=section, key=key
            )
        return value

    return conv


def text(default: str) -> Callable[[str, str], str]:
    """Free text; empty means the default."""

    def conv(key: str, raw: str) -> str:
        return raw or default

    return conv
