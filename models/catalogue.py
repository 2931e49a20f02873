"""Reference catalogues: sensor types, node types and room types.

Sensor and node type ids are a fixed catalogue shared by every base station and
server (they are the natural key); the rows are seeded by a data migration.
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Float64, key_text


class SensorType(Base):
    __tablename__ = "SensorType"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(50))
    units: Mapped[str] = mapped_column(String(20))
    c0: Mapped[float] = mapped_column(Float64, default=0.0)
    c1: Mapped[float] = mapped_column(Float64, default=1.0)
    c2: Mapped[float] = mapped_column(Float64, default=0.0)
    c3: Mapped[float] = mapped_column(Float64, default=0.0)


class NodeType(Base):
    __tablename__ = "NodeType"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    period: Mapped[int] = mapped_column(Integer, default=300, doc="sampling period, seconds")
    configured: Mapped[str | None] = mapped_column(String(64), default=None)


class RoomType(Base):
    __tablename__ = "RoomType"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(key_text(255), unique=True)
