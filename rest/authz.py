"""Who may write what: one rule for every write, checked on every row the write touches.

The one-row endpoints (rest/crud.py), the map (rest/mapping.py) and the batch
(rest/batch.py) all ask :class:`WriteRule`, and an endpoint added later asks it too.
A read-only key writes nothing (rest/auth.py refuses it before any of this); an admin
key may write any row. A site key:

- catalogue (sensortype, nodetype, roomtype): creates and changes none; an admin adds them;
- shared rows (deployment, room): creates them, and changes one only while no other site
  uses it (another site's house in the deployment, another site's location in the room);
- house: only its own (``House.siteId``); location: only in its own houses;
- node: only one located in its own houses. Node ids are one hardware namespace (a
  mote's id is burnt in), so the first site to place an id in one of its locations
  claims it. A node is created only in one of the key's locations; an unlocated node
  is claimed by locating it, unless another site has readings of it;
- sensor, node state: only of its own nodes;
- reading: only of its own nodes, at its own locations, and never in place of a
  reading stored at a location that is not the key's.

No refusal names another site's rows. Where an answer could tell "another site's" from
"does not exist" the two are the same (``GET``/``PUT`` by id: both 404; a reference in a
body: both the same 403); where it cannot (a node id is taken), the reason says to ask
the server's operator, who can move or delete the row with an admin key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Integer, cast, exists, literal, null, or_, select, union_all

from models import House, Location, Node, Reading
from models.protocol import codes
from rest.errors import forbidden
from rest.keys import Principal
from rest.resources import Resource
from rest.scope import own_locations

log = logging.getLogger("cogent.rest.authz")

ASK_OPERATOR = "ask the server's operator"
IDS_PER_QUERY = 10_000
CATALOGUE_NOUN = {"sensortype": "sensor type", "nodetype": "node type", "roomtype": "room type"}
SHARED_NOUN = {"deployment": "deployment", "room": "room"}

# owned resource → the columns that tie a row to the key's site: (column, what it names)
_OWNED_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "house": (),  # House.siteId itself
    "location": (("houseId", "house"),),
    "node": (("locationId", "location"),),
    "sensor": (("nodeId", "node"),),
    "reading": (("nodeId", "node"), ("locationId", "location")),
    "nodestate": (("nodeId", "node"),),
}


def catalogue_missing(kind: str, what: str) -> str:
    """Why a site key's request for a catalogue row the server lacks is refused."""
    return (
        f"{what} is not in this server's catalogue, and only an admin key can add it "
        f"(POST /rest/{kind}/ with an admin key): {ASK_OPERATOR}"
    )


def node_not_yours(node: int) -> str:
    return (
        f"node {node} is claimed by another site on this server (a node id is unique across "
        f"sites: the first site to place it in one of its locations claims it); if this mote "
        f"is yours, {ASK_OPERATOR} to move node {node} to one of your locations"
    )


def node_unlocated(node: int) -> str:
    return (
        f"node {node} has no location on this server: a site key writes the rows of a node "
        f"only while it is located in one of the key's houses; give the node a location and "
        f"map it again"
    )


def location_not_yours(location: int) -> str:
    return f"location {location} is not a location of this key's site"


REPLACES_FOREIGN_READING = (
    "a reading of this node, type and time is already stored at a location that is not "
    f"this key's site's; it is not replaced: {ASK_OPERATOR}"
)


@dataclass(frozen=True)
class NodeFact:
    location: int | None  # where the node is located
    site: int | None  # the site of that location's house (None: unlocated or no site)


@dataclass
class Facts:
    """What the server knows of the nodes and locations a write names (unknown ones absent)."""

    nodes: dict[int, NodeFact] = field(default_factory=dict)
    locations: dict[int, int | None] = field(default_factory=dict)  # → site of its house


def refuse_catalogue_write(resource: Resource, principal: Principal) -> None:
    """403 for a site key's create/update of a catalogue row (before its body is read)."""
    if resource.kind == "catalogue" and not principal.is_admin:
        raise forbidden(
            f"{resource.name} is the shared catalogue: only an admin key may change it; "
            f"{ASK_OPERATOR}"
        )


class WriteRule:
    """The rule for one key within one transaction; what it looks up is kept until the end
    of the transaction (the rule object lives no longer than that)."""

    def __init__(self, conn: Connection, principal: Principal) -> None:
        self.conn = conn
        self.principal = principal
        self._own_locations: frozenset[int] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.principal.is_admin

    def owns_site(self, site_id: int | None) -> bool:
        return self.unrestricted or (site_id is not None and site_id == self.principal.site_id)

    def own_locations(self) -> frozenset[int]:
        if self._own_locations is None:
            ids = self.conn.execute(own_locations(self.principal.site_id)).scalars()
            self._own_locations = frozenset(ids)
        return self._own_locations

    # --- facts -----------------------------------------------------------------------------

    def lookup(self, nodes: set[int], locations: set[int]) -> Facts:
        """Existence and site of ``nodes`` and ``locations``: one round trip per
        :data:`IDS_PER_QUERY` ids (PostgreSQL takes at most 65,535 parameters a statement)."""
        facts = Facts()
        node_ids, location_ids = sorted(nodes), sorted(locations)
        for start in range(0, max(len(node_ids), len(location_ids)), IDS_PER_QUERY):
            self._lookup(node_ids[start : start + IDS_PER_QUERY],
                         location_ids[start : start + IDS_PER_QUERY], facts)
        return facts

    def _lookup(self, nodes: list[int], locations: list[int], facts: Facts) -> None:
        no_id = cast(null(), Integer)
        rows: Sequence[Any] = self.conn.execute(
            union_all(
                select(literal("n"), Node.id, Node.locationId, House.siteId)
                .select_from(Node)
                .outerjoin(Location, Location.id == Node.locationId)
                .outerjoin(House, House.id == Location.houseId)
                .where(Node.id.in_(nodes)),
                select(literal("l"), Location.id, no_id, House.siteId)
                .join(House, House.id == Location.houseId)
                .where(Location.id.in_(locations)),
            )
        ).all()
        for what, row_id, location, site in rows:
            if what == "n":
                facts.nodes[row_id] = NodeFact(location, site)
            else:
                facts.locations[row_id] = site

    def _node_fact(self, node: int) -> NodeFact | None:
        return self.lookup({node}, set()).nodes.get(node)

    def _location_site(self, location: int) -> tuple[bool, int | None]:
        sites = self.lookup(set(), {location}).locations
        return location in sites, sites.get(location)

    def _has_foreign_readings(self, node: int) -> bool:
        """Whether ``node`` has readings at a location that is not the key's (only asked of
        unlocated nodes, when one is claimed: it reads that node's readings)."""
        mine = own_locations(self.principal.site_id)
        return bool(
            self.conn.execute(
                select(exists().where(Reading.nodeId == node, Reading.locationId.not_in(mine)))
            ).scalar()
        )

    # --- decisions: a reason when refused, None when allowed --------------------------------

    def node_refusal(self, node: int, fact: NodeFact) -> tuple[str, str] | None:
        """Rows hanging off an existing node (readings, node states, sensors): (code, why)."""
        if self.owns_site(fact.site):
            return None
        if fact.location is None:
            return codes.NODE_UNLOCATED, node_unlocated(node)
        return codes.NOT_YOUR_SITE, node_not_yours(node)

    def reading_refusal(
        self, node: int, fact: NodeFact, location: int, location_site: int | None
    ) -> tuple[str, str] | None:
        """A reading of a known node at a known location: (code, why)."""
        if not self.owns_site(location_site):
            return codes.NOT_YOUR_SITE, location_not_yours(location)
        return self.node_refusal(node, fact)

    def may_replace_reading_at(self, location: int | None) -> bool:
        """Whether a stored reading at ``location`` may be replaced by this key's."""
        return self.unrestricted or location in self.own_locations()

    def node_create_refusal(self, node: int, location: int | None) -> str | None:
        if self.unrestricted:
            return None
        if location is None:
            return node_unlocated(node)
        known, site = self._location_site(location)
        if not known or not self.owns_site(site):
            return location_not_yours(location)
        return None

    def node_change_refusal(self, node: int, current_location: int | None) -> str | None:
        """Changing an existing node (its location, its type): it must be the key's, or be
        unlocated with no readings at another site's locations (then locating it claims it)."""
        if self.unrestricted:
            return None
        if current_location is not None:
            known, site = self._location_site(current_location)
            mine = known and self.owns_site(site)
        else:
            mine = not self._has_foreign_readings(node)
        if not mine:
            self._log_claim_conflict(node)
            return node_not_yours(node)
        return None

    def shared_change_refusal(self, kind: str, row_id: int) -> str | None:
        """Changing a deployment or a room: only while no other site uses it."""
        if self.unrestricted:
            return None
        site = self.principal.site_id
        foreign_house = or_(House.siteId.is_(None), House.siteId != site)
        if kind == "deployment":
            used = exists().where(House.deploymentId == row_id, foreign_house)
        elif kind == "room":
            used = exists().where(
                Location.roomId == row_id, Location.houseId == House.id, foreign_house
            )
        else:
            raise ValueError(f"{kind} is not a shared type")
        if self.conn.execute(select(used)).scalar():
            return (
                f"{SHARED_NOUN[kind]} {row_id} is also used by houses that are not this key's "
                f"site's: only an admin key can change it now; {ASK_OPERATOR}"
            )
        return None

    def _log_claim_conflict(self, node: int) -> None:
        # For the operator, who settles claims (the client is told nothing of the other site).
        log.warning(
            "key %s (site %s) was refused node %s, which another site has claimed",
            self.principal.key_id,
            self.principal.site_name,
            node,
        )

    # --- one row of a /rest/<type>/ endpoint ------------------------------------------------

    def check_row(self, resource: Resource, values: dict[str, Any], row_id: int | None) -> None:
        """Refuse (403) a create (``row_id`` None) or an update of one row, ``values`` being
        the whole row as it will be stored. A house's ``siteId`` is set here for site keys."""
        refuse_catalogue_write(resource, self.principal)
        if self.unrestricted:
            return
        if resource.kind == "shared":
            why = None if row_id is None else self.shared_change_refusal(resource.name, row_id)
            if why:
                raise forbidden(why)
            return
        if resource.name == "house":
            if values.get("siteId", self.principal.site_id) != self.principal.site_id:
                raise forbidden("a site key can only create and edit houses of its own site")
            values["siteId"] = self.principal.site_id
        for column, what in _OWNED_REFERENCES.get(resource.name, ()):
            ref = values.get(column)
            if ref is None:
                raise forbidden(f"a site key must give {column}: a {what} of one of its houses")
            if not self._owns(what, ref):
                raise forbidden(
                    f"{column} {ref} is not a {what} of this key's site; a site key writes "
                    f"only rows of its own houses"
                )

    def _owns(self, what: str, ref: int) -> bool:
        if what == "location":
            return ref in self.own_locations()
        if what == "node":
            fact = self._node_fact(ref)
            return fact is not None and fact.location in self.own_locations()
        if what == "house":
            site = self.conn.execute(select(House.siteId).where(House.id == ref)).first()
            return site is not None and self.owns_site(site[0])
        raise ValueError(what)
