"""What each base station last said about itself, one row per (site, host name).

Written on every check-in: the native pusher's ``POST /rest/sync/hello/`` and the
original Cogent-house pusher's ``POST /rest/pushstatus/``. The fleet page, the
metrics and ``GET /rest/pushstatus/`` read it. The clock offset is the station's
clock minus the server's at the moment the check-in arrived (positive = station ahead).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, key_text

DIALECT_NATIVE = "native"
DIALECT_LEGACY = "legacy"


class StationStatus(Base):
    __tablename__ = "StationStatus"
    __table_args__ = (UniqueConstraint("siteId", "hostname"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    siteId: Mapped[int] = mapped_column(ForeignKey("Site.id"))
    hostname: Mapped[str] = mapped_column(key_text(255))
    dialect: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    stationClock: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lastContact: Mapped[datetime] = mapped_column(UTCDateTime)
    clockOffset: Mapped[float | None] = mapped_column(Float, default=None, doc="seconds")
    backlog: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="rows")
    schemaRevision: Mapped[str | None] = mapped_column(String(32), default=None)
    setAside: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="rows")
