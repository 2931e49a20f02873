"""What a site key may see: its own houses and everything hanging off them.

House → Location (houseId) → Node (located there) → Sensor (on such a node);
Reading by its location, NodeState by its node. Admin and read-only keys see
everything; catalogue and shared tables are not scoped. What a key may *write*
is rest/authz.py.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, select

from models import House, Location, Node
from rest.keys import Principal
from rest.resources import Resource


def own_houses(site_id: int | None) -> Select[int]:
    return select(House.id).where(House.siteId == site_id)


def own_locations(site_id: int | None) -> Select[int]:
    return select(Location.id).where(Location.houseId.in_(own_houses(site_id)))


def own_nodes(site_id: int | None) -> Select[int]:
    return select(Node.id).where(Node.locationId.in_(own_locations(site_id)))


# resource → (the column that ties a row to a house, what it must be among, its name)
_OWNER_COLUMN = {
    "house": ("siteId", None, "site"),
    "location": ("houseId", own_houses, "house"),
    "node": ("locationId", own_locations, "location"),
    "sensor": ("nodeId", own_nodes, "node"),
    "reading": ("locationId", own_locations, "location"),
    "nodestate": ("nodeId", own_nodes, "node"),
}


def is_scoped(resource: Resource, principal: Principal | None) -> bool:
    return (
        principal is not None
        and principal.is_site
        and resource.kind == "owned"
        and resource.name in _OWNER_COLUMN
    )


def visible(resource: Resource, principal: Principal | None) -> ColumnElement[bool] | None:
    """The WHERE condition limiting ``resource`` to what ``principal`` may see, if any."""
    if principal is None or not is_scoped(resource, principal):
        return None
    column, among, _ = _OWNER_COLUMN[resource.name]
    col = resource.column(column)
    if among is None:
        return col == principal.site_id
    return col.in_(among(principal.site_id))
