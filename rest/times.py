"""Times on the wire: ISO-8601 UTC for people, integer microseconds for the bulk format.

Stored times are naive UTC everywhere (see :mod:`models.base`); the conversions to and
from microseconds and ``utcnow`` live in :mod:`models.sql` and are re-exported here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from models.sql import EPOCH as EPOCH
from models.sql import from_micros as from_micros
from models.sql import to_micros as to_micros
from models.sql import utcnow as utcnow

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
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(
                f"{text!r} is outside the years 1 to 9999 once converted to UTC"
            ) from None
    return value


def format_time(value: datetime) -> str:
    """Naive UTC → ``2026-01-01T12:00:00`` (microseconds only when non-zero)."""
    return value.isoformat()
