"""Times on the wire: ISO-8601 UTC for people, integer microseconds for the bulk format.

Stored times are naive UTC everywhere (see :mod:`models.base`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1)
_SPACED_OFFSET = re.compile(r"(\d) (\d\d:?\d\d)$")


def parse_time(text: str) -> datetime:
    """ISO-8601 (``2026-01-01T12:00:00``, ``…Z``, ``…+01:00``, ``2026-01-01``) → naive UTC.

    Raises ValueError with a message that shows the accepted forms.
    """
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        # An unescaped '+' in a query string arrives as a space.
        fixed = _SPACED_OFFSET.sub(r"\1+\2", raw)
        try:
            value = datetime.fromisoformat(fixed)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO-8601 time; use e.g. 2026-01-01T12:00:00 "
                f"(UTC, optionally with Z or +00:00) or 2026-01-01"
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def format_time(value: datetime) -> str:
    """Naive UTC → ``2026-01-01T12:00:00`` (microseconds only when non-zero)."""
    return value.isoformat()


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_micros(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
