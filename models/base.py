"""Declarative base and the column types every table shares.

Types are chosen to be portable across SQLite, MySQL/MariaDB and PostgreSQL:
times are naive UTC with microseconds (MySQL needs ``DATETIME(6)`` for that),
surrogate ids are 64-bit except on SQLite, where only ``INTEGER PRIMARY KEY``
aliases the rowid and so autoincrements.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, DateTime, Double, Integer, MetaData, String, Table
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UTCDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""Naive datetime, always UTC, microsecond precision on every backend."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""Surrogate key for large tables: BIGINT, but INTEGER on SQLite so it aliases the rowid."""


def key_text(length: int) -> TypeEngine[str]:
    """Text that is (part of) a natural key: compared byte for byte on every backend.

    MySQL's default collations are case- and trailing-space-insensitive, so "Kitchen" and
    "kitchen" would be one room there and two on SQLite or PostgreSQL; the two sides of a
    replica must agree on what is the same row. (utf8mb4_bin still ignores trailing
    spaces, a PAD SPACE rule MySQL and MariaDB share; names should not end in spaces.)
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb"
    )


Float64: TypeEngine[float] = Double().with_variant(
    mysql.DOUBLE(asdecimal=False), "mysql", "mariadb"
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class (typed, unlike ``Model.__table__``)."""
    return cast(Table, model.__table__)
