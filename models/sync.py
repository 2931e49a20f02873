"""Replication bookkeeping kept in the base station's own database.

Everything the pusher needs to resume after a crash lives here, per remote:
how far each stream has been acknowledged, which local rows map to which
remote ids, and which rows were set aside because the remote can never accept
them. Keeping it in the same database as the data means one backup, one
transaction, and no state file to lose.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime


class SyncSequence(Base):
    """The last replication sequence value handed out, per stamped table."""

    __tablename__ = "SyncSequence"

    tableName: Mapped[str] = mapped_column(String(64), primary_key=True)
    lastSeq: Mapped[int] = mapped_column(BigInteger, default=0)


class SyncCursor(Base):
    """Highest sequence value a remote has acknowledged for a stream.

    A stream is a table name for pushing (``Reading``) or a named download
    (``download:house:7:Reading``), whose position is then a remote id.
    """

    __tablename__ = "SyncCursor"

    remote: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class SyncIdMap(Base):
    """Local id → remote id of a metadata row, with a digest of what was last sent."""

    __tablename__ = "SyncIdMap"

    remote: Mapped[str] = mapped_column(String(64), primary_key=True)
    tableName: Mapped[str] = mapped_column(String(64), primary_key=True)
    localId: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    remoteId: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    updated: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class SyncRejected(Base):
    """A row a remote can never accept, set aside so the rest keeps flowing."""

    __tablename__ = "SyncRejected"
    __table_args__ = (
        UniqueConstraint("remote", "tableName", "localId"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    remote: Mapped[str] = mapped_column(String(64))
    tableName: Mapped[str] = mapped_column(String(64))
    localId: Mapped[int] = mapped_column(BigInteger)
    syncSeq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reason: Mapped[str] = mapped_column(Text)
    firstSeen: Mapped[datetime] = mapped_column(UTCDateTime)
    lastSeen: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class SyncRemote(Base):
    """What ``status`` shows per remote: when it last worked and why it last failed."""

    __tablename__ = "SyncRemote"

    remote: Mapped[str] = mapped_column(String(64), primary_key=True)
    lastAttempt: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lastSuccess: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lastError: Mapped[str | None] = mapped_column(Text, default=None)
    lastErrorAt: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    remoteRevision: Mapped[str | None] = mapped_column(String(64), default=None)
    lastMetadataSync: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
