"""The browsable resources: one per table in ``models.DATA_TABLES``, named lower-case.

Each resource knows its columns and its kind, which decides who may touch it:
``catalogue`` (sensortype, nodetype, roomtype: anyone reads, admins write),
``shared`` (room, deployment: any key reads, writers create and update), and
``owned`` (everything that hangs off a house: a site key sees only its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import BigInteger, Column, DateTime, Float, Integer, String, Table

from models import DATA_TABLES
from rest.errors import not_found

Kind = Literal["catalogue", "shared", "owned"]
ColumnKind = Literal["int", "float", "str", "time"]

_KINDS: dict[str, Kind] = {
    "sensortype": "catalogue",
    "nodetype": "catalogue",
    "roomtype": "catalogue",
    "room": "shared",
    "deployment": "shared",
}


# A Text column without a length (descriptions): MariaDB's TEXT holds 65,535 bytes, which
# utf8mb4 fills with 16,383 characters of four bytes each; the same bound on every backend.
TEXT_MAX_CHARS = 16_383


@dataclass(frozen=True)
class Field:
    name: str
    kind: ColumnKind
    nullable: bool
    required: bool
    bits: int = 0
    max_length: int | None = None


@dataclass(frozen=True)
class Resource:
    name: str
    table: Table
    kind: Kind
    fields: dict[str, Field]
    server_ids: bool  # True: the server assigns ids; False: the client gives them (node, catalogue)

    @property
    def id(self) -> Column[int]:
        col: Column[int] = self.table.c.id
        return col

    def column(self, name: str) -> Column[object]:
        col: Column[object] = self.table.c[name]
        return col


# Natural-key columns that hold NULL only in rows adopted from Cogent-house (revision 0005):
# what is written through the API must still name them.
KEY_COLUMNS = {
    ("Deployment", "name"), ("House", "deploymentId"), ("House", "address"), ("Room", "name"),
    ("Location", "houseId"), ("Location", "roomId"),
}


def _field(col: Column[object], server_ids: bool) -> Field:
    t = col.type
    if isinstance(t, BigInteger):
        kind: ColumnKind = "int"
        bits = 64
    elif isinstance(t, Integer):
        kind, bits = "int", 32
    elif isinstance(t, Float):
        kind, bits = "float", 0
    elif isinstance(t, DateTime):
        kind, bits = "time", 0
    elif isinstance(t, String):
        kind, bits = "str", 0
    else:  # Text and anything else textual
        kind, bits = "str", 0
    has_default = col.default is not None or col.server_default is not None
    nullable = bool(col.nullable) and (col.table.name, col.name) not in KEY_COLUMNS
    required = not server_ids if col.primary_key else not nullable and not has_default
    max_length = (getattr(t, "length", None) or TEXT_MAX_CHARS) if kind == "str" else None
    return Field(col.name, kind, nullable, required, bits, max_length)


def _build() -> dict[str, Resource]:
    out = {}
    for model in DATA_TABLES:
        table: Table = model.__table__  # type: ignore[assignment]
        name = table.name.lower()
        server_ids = table.c.id.autoincrement is not False
        fields = {c.name: _field(c, server_ids) for c in table.columns}
        out[name] = Resource(name, table, _KINDS.get(name, "owned"), fields, server_ids)
    return out


RESOURCES: dict[str, Resource] = _build()


def get_resource(name: str) -> Resource:
    res = RESOURCES.get(name.lower())
    if res is None:
        raise not_found(
            f"unknown type {name!r}; the types are the lower-cased table names: "
            + ", ".join(RESOURCES),
            valid=RESOURCES,
        )
    return res
