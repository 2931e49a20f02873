"""Turning query-string and JSON values into column values, with messages that say why not."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rest.resources import Field
from rest.times import parse_time


class BadValue(ValueError):
    """A value that does not fit its column; the message names the column."""


def _check_int(field: Field, value: int) -> int:
    bound = 1 << (field.bits - 1) if field.bits else 1 << 63
    if not -bound <= value < bound:
        raise BadValue(f"{field.name}: {value} is out of range for a {field.bits}-bit integer")
    return value


def _check_float(field: Field, value: float) -> float:
    if not math.isfinite(value):
        raise BadValue(f"{field.name}: {value} is not a finite number")
    return value


def _check_time(field: Field, value: datetime) -> datetime:
    # MySQL's DATETIME range; other backends would take more, but the schema is shared.
    if not 1000 <= value.year <= 9999:
        raise BadValue(f"{field.name}: {value.isoformat()} is out of range (years 1000 to 9999)")
    return value


def _check_text(field: Field, value: str) -> str:
    if "\x00" in value:
        raise BadValue(f"{field.name}: text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadValue(f"{field.name}: text is not valid Unicode (a lone surrogate?)") from None
    return value


def from_query(field: Field, raw: str) -> Any:
    """A query-string value for ``field``."""
    try:
        if field.kind == "int":
            return _check_int(field, int(raw))
        if field.kind == "float":
            return _check_float(field, float(raw))
        if field.kind == "time":
            return _check_time(field, parse_time(raw))
    except BadValue:
        raise
    except (ValueError, OverflowError) as exc:
        what = {"int": "an integer", "float": "a number", "time": "a time"}[field.kind]
        detail = str(exc) if field.kind == "time" else f"{raw!r} is not {what}"
        raise BadValue(f"{field.name}: {detail}") from None
    return _check_text(field, raw)


def from_json(field: Field, value: Any) -> Any:
    """A JSON body value for ``field`` (None allowed only for nullable columns)."""
    if value is None:
        if not field.nullable:
            raise BadValue(f"{field.name}: may not be null")
        return None
    if field.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(f"{field.name}: {value!r} is not an integer")
        return _check_int(field, value)
    if field.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadValue(f"{field.name}: {value!r} is not a number")
        try:
            return _check_float(field, float(value))
        except OverflowError:
            raise BadValue(f"{field.name}: {value} is out of range") from None
    if field.kind == "time":
        if not isinstance(value, str):
            raise BadValue(f"{field.name}: {value!r} is not an ISO-8601 time string")
        try:
            return _check_time(field, parse_time(value))
        except ValueError as exc:
            raise BadValue(f"{field.name}: {exc}") from None
    if not isinstance(value, str):
        raise BadValue(f"{field.name}: {value!r} is not a string")
    if field.max_length is not None and len(value) > field.max_length:
        raise BadValue(f"{field.name}: longer than {field.max_length} characters")
    return _check_text(field, value)
