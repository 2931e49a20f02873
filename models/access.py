"""Central-server access control: sites (base stations) and their API keys.

Only a SHA-256 of each key is stored: keys are long random tokens, so a fast
hash is enough and lookups stay a single indexed equality.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, key_text

ROLE_ADMIN = "admin"
ROLE_SITE = "site"
ROLE_READONLY = "readonly"
ROLES = (ROLE_ADMIN, ROLE_SITE, ROLE_READONLY)


class Site(Base):
    __tablename__ = "Site"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(key_text(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    lastSeen: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lastBatch: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ApiKey(Base):
    __tablename__ = "ApiKey"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    siteId: Mapped[int | None] = mapped_column(ForeignKey("Site.id"), default=None, index=True)
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), doc="first characters, to recognise a key")
    keyHash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lastUsed: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class UserAccount(Base):
    """A person or a base station that logs in with a password to obtain a key
    (``RestPusher.py login``). Only an Argon2 hash of the password is kept."""

    __tablename__ = "UserAccount"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(key_text(64), unique=True)
    passwordHash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    siteId: Mapped[int | None] = mapped_column(ForeignKey("Site.id"), default=None, index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failedLogins: Mapped[int] = mapped_column(Integer, default=0)
    lockedUntil: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    lastLogin: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
