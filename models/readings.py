"""The time series: readings and node states.

Both tables carry ``syncSeq``, the local replication sequence. Writers never set
it (a radio gateway's logger inserts with plain SQL and leaves it NULL); the
pusher stamps committed rows with increasing values (see :mod:`models.sequence`)
and resumes from the highest value a remote acknowledged. Rows restored from a
remote get ``syncSeq = 0`` (:data:`RESTORED_SEQ`) so they are never pushed back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, Float64, UTCDateTime

RESTORED_SEQ = 0


class Reading(Base):
    __tablename__ = "Reading"
    __table_args__ = (
        UniqueConstraint("nodeId", "type", "time"),
        # (syncSeq, id): finds unstamped rows in id order and walks the sequence, on every backend.
        Index("ix_Reading_syncSeq_id", "syncSeq", "id"),
        Index("ix_Reading_time", "time"),
        # A location's readings over a time range: the house page, summaries, lastSync/.
        Index("ix_Reading_locationId_time", "locationId", "time"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    nodeId: Mapped[int] = mapped_column(ForeignKey("Node.id"))
    type: Mapped[int] = mapped_column(ForeignKey("SensorType.id"), index=True)
    locationId: Mapped[int | None] = mapped_column(ForeignKey("Location.id"), default=None)
    value: Mapped[float | None] = mapped_column(Float64)
    syncSeq: Mapped[int | None] = mapped_column(BigInteger, default=None)


class NodeState(Base):
    __tablename__ = "NodeState"
    __table_args__ = (
        UniqueConstraint("nodeId", "time", "seq_num"),
        Index("ix_NodeState_syncSeq_id", "syncSeq", "id"),
        Index("ix_NodeState_time", "time"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    nodeId: Mapped[int] = mapped_column(ForeignKey("Node.id"))
    parent: Mapped[int | None] = mapped_column(Integer, default=None)
    localtime: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seq_num: Mapped[int] = mapped_column(Integer, default=0)
    rssi: Mapped[int | None] = mapped_column(Integer, default=None)
    syncSeq: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ReadingDay(Base):
    """A cache of one location's daily reading averages, for the house page's long ranges
    (rest/daycache.py). ``type = -1`` marks a day as computed (a day may have no readings).
    Rows are dropped whenever a reading of their location and day is written through the
    server; delete them all to rebuild it."""

    __tablename__ = "ReadingDay"

    locationId: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    total: Mapped[float | None] = mapped_column(Float64, default=None)
    n: Mapped[int] = mapped_column(Integer, default=0)
