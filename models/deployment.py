"""Where sensors live: deployments, houses, rooms and locations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, key_text


class Deployment(Base):
    __tablename__ = "Deployment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(key_text(255), unique=True)  # NULL: adopted
    description: Mapped[str | None] = mapped_column(Text, default=None)
    startDate: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    endDate: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class House(Base):
    __tablename__ = "House"
    __table_args__ = (UniqueConstraint("deploymentId", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL only in rows adopted from Cogent-house, which the pusher sets aside.
    deploymentId: Mapped[int | None] = mapped_column(ForeignKey("Deployment.id"))
    address: Mapped[str | None] = mapped_column(key_text(255))
    startDate: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    endDate: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Owner on a central server (the site whose key created it); NULL on a base station.
    siteId: Mapped[int | None] = mapped_column(ForeignKey("Site.id"), default=None, index=True)


class Room(Base):
    __tablename__ = "Room"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(key_text(255), unique=True)  # NULL: adopted
    roomTypeId: Mapped[int | None] = mapped_column(
        ForeignKey("RoomType.id"), default=None, index=True
    )


class Location(Base):
    __tablename__ = "Location"
    __table_args__ = (UniqueConstraint("houseId", "roomId"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    houseId: Mapped[int | None] = mapped_column(ForeignKey("House.id"))  # NULL: adopted
    roomId: Mapped[int | None] = mapped_column(ForeignKey("Room.id"), index=True)
