"""Motes and the sensors on them."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Float64


class Node(Base):
    """A mote. Its id is burnt into the hardware, so it is the natural key on every side."""

    __tablename__ = "Node"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    locationId: Mapped[int | None] = mapped_column(
        ForeignKey("Location.id"), default=None, index=True
    )
    nodeTypeId: Mapped[int | None] = mapped_column(
        ForeignKey("NodeType.id"), default=None, index=True
    )


class Sensor(Base):
    __tablename__ = "Sensor"
    __table_args__ = (UniqueConstraint("nodeId", "sensorTypeId"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sensorTypeId: Mapped[int] = mapped_column(ForeignKey("SensorType.id"), index=True)
    nodeId: Mapped[int] = mapped_column(ForeignKey("Node.id"))
    # NULL only in rows adopted from Cogent-house, which the pusher sets aside.
    calibrationSlope: Mapped[float | None] = mapped_column(Float64, default=1.0)
    calibrationOffset: Mapped[float | None] = mapped_column(Float64, default=0.0)
