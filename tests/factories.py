"""The metadata chain every test needs, built one way: deployment → house → room →
location → node (→ sensors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models import Deployment, House, Location, Node, Room, Sensor
from models.base import Base

M = TypeVar("M", bound=Base)


@dataclass(frozen=True)
class Placed:
    """Ids of one located node's chain."""

    deployment: int
    house: int
    room: int
    location: int
    node: int


def place_node(
    target: Engine | Session,
    node: int,
    *,
    deployment: str = "Trial",
    description: str | None = None,
    address: str = "1 Test Street",
    room: str = "Kitchen",
    room_type: int | None = None,
    node_type: int | None = 0,
    sensor_types: tuple[int, ...] = (),
    start: datetime | None = None,
) -> Placed:
    """Create (or reuse, by natural key) the chain down to ``node`` and commit it."""
    if isinstance(target, Session):
        return _place(target, node, deployment, description, address, room, room_type,
                      node_type, sensor_types, start)
    with Session(target) as session:
        return _place(session, node, deployment, description, address, room, room_type,
                      node_type, sensor_types, start)


def _one(session: Session, model: type[M], **key: object) -> M | None:
    return session.query(model).filter_by(**key).one_or_none()


def _place(session: Session, node: int, deployment: str, description: str | None,
           address: str, room: str,
           room_type: int | None, node_type: int | None, sensor_types: tuple[int, ...],
           start: datetime | None) -> Placed:
    dep = _one(session, Deployment, name=deployment) or Deployment(
        name=deployment, description=description, startDate=start)
    rm = _one(session, Room, name=room) or Room(name=room, roomTypeId=room_type)
    session.add_all([dep, rm])
    session.flush()
    house = _one(session, House, deploymentId=dep.id, address=address) or House(
        deploymentId=dep.id, address=address, startDate=start)
    session.add(house)
    session.flush()
    loc = _one(session, Location, houseId=house.id, roomId=rm.id) or Location(
        houseId=house.id, roomId=rm.id)
    session.add(loc)
    session.flush()
    session.add(Node(id=node, locationId=loc.id, nodeTypeId=node_type))
    session.flush()
    session.add_all([Sensor(nodeId=node, sensorTypeId=t) for t in sensor_types])
    session.commit()
    return Placed(dep.id, house.id, rm.id, loc.id, node)
