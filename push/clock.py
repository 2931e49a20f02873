"""This station's clock against a server's: a Raspberry Pi has no battery-backed clock, and
a reading is stamped with whatever the clock said. The offset is measured from the Date
header of every reply (push/client.py); status and the log say it in words."""

from __future__ import annotations

from datetime import datetime

from models.sql import to_micros

# Readings stamped before this were made by a clock that was never set (a Pi boots in 1970).
EARLIEST = datetime(2000, 1, 1)
EARLIEST_US = to_micros(EARLIEST)
BEFORE_2000 = ("time is before 2000: the station's clock was not set when it was logged; "
               "correct the rows' time, then 'RestPusher.py retry'")


def _span(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min {s % 60} s"
    if s < 2 * 86_400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86_400} days"


def skewed(offset: float | None, warn_after: float) -> bool:
    return offset is not None and abs(offset) > warn_after


def describe_offset(offset: float | None, warn_after: float, remote: str) -> str:
    """``offset`` (this station minus the server, seconds) in words, with a warning past
    ``warn_after``."""
    if offset is None:
        return f"not measured ({remote} sent no Date header)"
    if abs(offset) < 1.5:
        return f"in step with {remote} (within a second)"
    text = f"{_span(abs(offset))} {'ahead of' if offset > 0 else 'behind'} {remote}"
    if skewed(offset, warn_after):
        text += (" — WARNING: set this station's clock (NTP); readings are stamped with it, "
                 "and the server refuses times more than a day ahead")
    return text
