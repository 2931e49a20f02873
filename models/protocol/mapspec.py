"""The metadata map (``POST /rest/sync/map/``) as one table both sides read.

The pusher builds its request rows from it (push/metadata.py), the server matches and
creates rows by it (rest/mapping.py), and the OpenAPI document describes the request from it
(rest/openapi.py). A type's wire fields are its columns' names; references travel as the
client's keys under their own names ("deployment") and fill a column ("deploymentId").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table

from models import (
    Deployment,
    House,
    Location,
    Node,
    NodeType,
    Room,
    RoomType,
    Sensor,
    SensorType,
)
from models.base import table_of

# How a field is written in JSON: "str", "optstr" (string or null), "num", "int", "time"
# (ISO 8601 or null).
JsonKind = str


@dataclass(frozen=True)
class MapField:
    name: str  # wire name = column name
    json: JsonKind


@dataclass(frozen=True)
class MapRef:
    wire: str  # field name in the request ("deployment")
    column: str  # column it fills ("deploymentId")
    target: str  # type whose keys it names
    required: bool  # part of the natural key: a row without it cannot be matched


@dataclass(frozen=True)
class MapType:
    name: str
    model: Any
    natural: tuple[str, ...]  # columns matched on ("id" = the row's key)
    fields: tuple[MapField, ...] = ()
    refs: tuple[MapRef, ...] = ()
    mutable: tuple[str, ...] = ()  # columns the server updates when they differ
    required: tuple[str, ...] = ()  # plain fields every row must carry
    create_needs: tuple[str, ...] = ()  # plain fields needed only to create the row

    @property
    def table(self) -> Table:
        return table_of(self.model)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def needed(self) -> tuple[str, ...]:
        """Wire fields without which the server can neither match nor create a row."""
        return (*self.required, *self.create_needs,
                *(r.wire for r in self.refs if r.required))


def _f(json: JsonKind, *names: str) -> tuple[MapField, ...]:
    return tuple(MapField(n, json) for n in names)


# Parents before children: the order of the request's lists, and the order rows are resolved.
MAP_TYPES: tuple[MapType, ...] = (
    MapType("sensortype", SensorType, ("id",),
            _f("str", "name", "code", "units") + _f("num", "c0", "c1", "c2", "c3"),
            create_needs=("name", "code", "units")),
    MapType("nodetype", NodeType, ("id",),
            _f("str", "name") + _f("int", "period") + _f("optstr", "configured"),
            create_needs=("name",)),
    MapType("roomtype", RoomType, ("name",), _f("str", "name"), required=("name",)),
    MapType("room", Room, ("name",), _f("str", "name"),
            refs=(MapRef("roomType", "roomTypeId", "roomtype", False),),
            mutable=("roomTypeId",), required=("name",)),
    MapType("deployment", Deployment, ("name",),
            _f("str", "name") + _f("optstr", "description") + _f("time", "startDate", "endDate"),
            mutable=("description", "startDate", "endDate"), required=("name",)),
    MapType("house", House, ("deploymentId", "address"),
            _f("str", "address") + _f("time", "startDate", "endDate"),
            refs=(MapRef("deployment", "deploymentId", "deployment", True),),
            mutable=("startDate", "endDate"), required=("address",)),
    MapType("location", Location, ("houseId", "roomId"),
            refs=(MapRef("house", "houseId", "house", True),
                  MapRef("room", "roomId", "room", True))),
    MapType("node", Node, ("id",),
            refs=(MapRef("location", "locationId", "location", False),
                  MapRef("nodeType", "nodeTypeId", "nodetype", False)),
            mutable=("locationId", "nodeTypeId")),
    MapType("sensor", Sensor, ("nodeId", "sensorTypeId"),
            _f("num", "calibrationSlope", "calibrationOffset"),
            refs=(MapRef("node", "nodeId", "node", True),
                  MapRef("sensorType", "sensorTypeId", "sensortype", True)),
            mutable=("calibrationSlope", "calibrationOffset")),
)
BY_NAME: dict[str, MapType] = {t.name: t for t in MAP_TYPES}
