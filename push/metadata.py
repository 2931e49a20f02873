"""Mapping local metadata rows to their remote ids, by natural key.

Each cycle the pusher gathers the active houses and everything they depend
on or hold (deployments, rooms, room types, locations, nodes, node types,
sensors, sensor types) and sends, in one request, only the rows that are new
or changed since they were last mapped — together with their ancestors, which
the request needs to resolve references. What the remote answers is stored in
the local id map; rows the remote refuses are remembered with their reason so
the readings that need them can be set aside with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, or_, select
from sqlalchemy.orm import Session

from models import Deployment, House, Location, Node, Sensor
from models.protocol.mapspec import BY_NAME
from models.protocol.mapspec import MAP_TYPES as MAP_SPEC
from push.client import RemoteClient
from push.ledger import LocalStore, MappedRow

log = logging.getLogger(__name__)

# Parents before children; the order of the map request's lists (models/protocol/mapspec.py).
MAP_TYPES = tuple(t.name for t in MAP_SPEC)
MODELS: dict[str, Any] = {t.name: t.model for t in MAP_SPEC}
# type → ((request field, model attribute, referenced type), ...)
REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    t.name: tuple((r.wire, r.column, r.target) for r in t.refs) for t in MAP_SPEC if t.refs
}
TABLE_NAMES = {t: MODELS[t].__tablename__ for t in MAP_TYPES}
# Fields (request names) without which the remote cannot match or create a row. Cogent-house
# allowed NULL in them, so an adopted database can hold such rows: each is held back, with
# what depends on it, instead of failing the whole map request.
REQUIRED: dict[str, tuple[str, ...]] = {t.name: t.needed for t in MAP_SPEC}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def request_row(kind: str, obj: Any) -> dict[str, Any]:
    """The map-request form of one local row; references are local keys."""
    row: dict[str, Any] = {"key": obj.id}
    for f in BY_NAME[kind].fields:
        value = getattr(obj, f.name)
        row[f.name] = iso(value) if f.json == "time" else value
    for field_name, attr, _ in REFERENCES.get(kind, ()):
        row[field_name] = getattr(obj, attr)
    return row


def held_back(closure: Closure) -> dict[tuple[str, int], str]:
    """Rows that cannot be sent — a field the remote needs is NULL, or a row they refer to
    is held back — with the reason, which the readings that need them are set aside with."""
    held: dict[tuple[str, int], str] = {}
    refs = {k: {f: parent for f, _, parent in REFERENCES.get(k, ())} for k in MAP_TYPES}
    for kind in MAP_TYPES:  # parents first: a child sees its parent's verdict
        for local_id, obj in closure.rows[kind].items():
            row = request_row(kind, obj)
            missing = [f for f in REQUIRED.get(kind, ()) if row.get(f) is None]
            noun = f"{TABLE_NAMES[kind]} {local_id}"
            if missing:
                held[(kind, local_id)] = (
                    f"{noun} has no {' or '.join(missing)}; set it in the local database and "
                    f"it is sent, with the rows that need it")
                continue
            for f, parent in refs[kind].items():
                why = held.get((parent, row[f])) if row[f] is not None else None
                if why:
                    held[(kind, local_id)] = f"{noun} is held back: {why}"
                    break
    return held


def digest(row: dict[str, Any]) -> str:
    return hashlib.sha1(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Closure:
    """Local metadata rows by type and local id, closed under references."""

    rows: dict[str, dict[int, Any]] = field(default_factory=lambda: {t: {} for t in MAP_TYPES})

    def __len__(self) -> int:
        return sum(len(v) for v in self.rows.values())


def _load(session: Session, kind: str, ids: Iterable[int]) -> list[Any]:
    model = MODELS[kind]
    out: list[Any] = []
    for chunk in _chunks(set(ids)):
        out.extend(session.execute(select(model).where(model.id.in_(chunk))).scalars())
    return out


def gather(
    conn: Connection,
    *,
    houses: Iterable[int] = (),
    locations: Iterable[int] = (),
    nodes: Iterable[int] = (),
    sensor_types: Iterable[int] = (),
    with_children: bool = True,
) -> Closure:
    """The given rows, what hangs off them (locations, nodes, sensors; unless not
    ``with_children``), and all their ancestors."""
    closure = Closure()
    with Session(bind=conn) as session:
        sconn = session.connection()
        house_ids = set(houses)
        location_ids = set(locations)
        node_ids = set(nodes)
        if house_ids and with_children:
            for chunk in _chunks(house_ids):
                location_ids.update(
                    sconn.execute(select(Location.id).where(Location.houseId.in_(chunk))).scalars()
                )
        if location_ids and with_children:
            for chunk in _chunks(location_ids):
                node_ids.update(
                    sconn.execute(select(Node.id).where(Node.locationId.in_(chunk))).scalars()
                )
        pending: dict[str, set[int]] = {t: set() for t in MAP_TYPES}
        pending["house"] |= house_ids
        pending["location"] |= location_ids
        pending["node"] |= node_ids
        pending["sensortype"] |= set(sensor_types)
        if node_ids and with_children:
            for chunk in _chunks(node_ids):
                pending["sensor"].update(
                    sconn.execute(select(Sensor.id).where(Sensor.nodeId.in_(chunk))).scalars()
                )
        # Walk children → parents; MAP_TYPES reversed visits every child before its parents.
        for kind in reversed(MAP_TYPES):
            wanted = pending[kind] - set(closure.rows[kind])
            for obj in _load(session, kind, wanted):
                session.expunge(obj)
                closure.rows[kind][obj.id] = obj
                for _, attr, parent in REFERENCES.get(kind, ()):
                    ref = getattr(obj, attr)
                    if ref is not None:
                        pending[parent].add(ref)
    return closure


def _chunks(ids: set[int], size: int = 500) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


def active_house_ids(conn: Connection, since: datetime | None) -> list[int]:
    """Houses whose house and deployment were active at or after ``since`` (all when None)."""
    stmt = select(House.id).join(Deployment, Deployment.id == House.deploymentId)
    if since is not None:
        stmt = stmt.where(
            or_(House.endDate.is_(None), House.endDate >= since),
            or_(Deployment.endDate.is_(None), Deployment.endDate >= since),
        )
    return list(conn.execute(stmt).scalars())


@dataclass
class MapResult:
    sent: int = 0
    mapped: int = 0
    errors: dict[tuple[str, int], str] = field(default_factory=dict)


class MetadataMapper:
    """Keeps one remote's id map in step with the local metadata."""

    def __init__(self, engine: Engine, store: LocalStore, client: RemoteClient):
        self.engine = engine
        self.store = store
        self.client = client
        self.remote = client.remote.name
        self.errors: dict[tuple[str, int], str] = {}
        self._maps: dict[str, dict[int, tuple[int, str | None]]] | None = None

    def maps(self) -> dict[str, dict[int, tuple[int, str | None]]]:
        if self._maps is None:
            self._maps = {t: self.store.id_map(self.remote, TABLE_NAMES[t]) for t in MAP_TYPES}
        return self._maps

    def remote_id(self, kind: str, local_id: int) -> int | None:
        entry = self.maps()[kind].get(local_id)
        return entry[0] if entry else None

    def sync_active(self, since: datetime | None) -> MapResult:
        """Map the active houses' closure; also resend mapped houses that changed since (an
        ``endDate`` set after the fact must reach the remote even though the house is over)."""
        with self.engine.connect() as conn:
            mapped_houses = set(self.maps()["house"])
            closure = gather(conn, houses=active_house_ids(conn, since))
            ended = gather(
                conn, houses=mapped_houses - set(closure.rows["house"]), with_children=False
            )
        for kind in MAP_TYPES:
            for key, obj in ended.rows[kind].items():
                closure.rows[kind].setdefault(key, obj)
        return self.send(closure)

    def ensure(
        self,
        *,
        locations: Iterable[int] = (),
        nodes: Iterable[int] = (),
        sensor_types: Iterable[int] = (),
    ) -> MapResult:
        """Map rows that readings need but that are not mapped yet (not tried this cycle)."""
        maps = self.maps()
        want_loc = {
            i for i in locations if i not in maps["location"] and ("location", i) not in self.errors
        }
        want_node = {i for i in nodes if i not in maps["node"] and ("node", i) not in self.errors}
        want_types = {
            i
            for i in sensor_types
            if i not in maps["sensortype"] and ("sensortype", i) not in self.errors
        }
        if not (want_loc or want_node or want_types):
            return MapResult()
        with self.engine.connect() as conn:
            closure = gather(conn, locations=want_loc, nodes=want_node, sensor_types=want_types)
        result = self.send(closure, force=True)
        for kind, wanted in (
            ("location", want_loc),
            ("node", want_node),
            ("sensortype", want_types),
        ):
            for i in wanted:
                if i not in closure.rows[kind]:
                    self.errors[(kind, i)] = (
                        f"{TABLE_NAMES[kind]} {i} does not exist in the local database"
                    )
        return result

    def send(self, closure: Closure, force: bool = False) -> MapResult:
        """Send the new/changed rows of ``closure`` (all when ``force``), with ancestors."""
        maps = self.maps()
        requests: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in MAP_TYPES}
        digests: dict[tuple[str, int], str] = {}
        held = held_back(closure)
        for kind in MAP_TYPES:
            for local_id, obj in closure.rows[kind].items():
                if (kind, local_id) in held:
                    continue
                row = request_row(kind, obj)
                d = digest(row)
                digests[(kind, local_id)] = d
                known = maps[kind].get(local_id)
                if force or known is None or known[1] != d:
                    requests[kind][local_id] = row
        # Every sent row needs its ancestors in the same request.
        for kind in reversed(MAP_TYPES):
            for row in list(requests[kind].values()):
                for field_name, _, parent in REFERENCES.get(kind, ()):
                    ref = row[field_name]
                    if ref is not None and ref not in requests[parent]:
                        requests[parent][ref] = request_row(parent, closure.rows[parent][ref])
        result = MapResult()
        if held:
            result.errors.update(held)
            self.errors.update(held)
            for kind, key in held:
                maps[kind].pop(key, None)
            log.warning("%s: %d metadata rows held back: %s", self.remote, len(held),
                        "; ".join(list(held.values())[:3]))
        payload = {k: list(v.values()) for k, v in requests.items() if v}
        result.sent = sum(len(v) for v in payload.values())
        if not payload:
            return result
        reply = self.client.map_metadata(payload)
        mapped: list[MappedRow] = []
        for kind, rows in payload.items():
            answers = reply.get(kind) or {}
            for row in rows:
                remote_id = answers.get(str(row["key"]))
                if remote_id is None:
                    continue
                d = digests.get((kind, row["key"])) or digest(row)
                mapped.append(MappedRow(TABLE_NAMES[kind], row["key"], int(remote_id), d))
                maps[kind][row["key"]] = (int(remote_id), d)
                self.errors.pop((kind, row["key"]), None)
        for err in reply.get("errors") or []:
            try:
                refused = (str(err["type"]), int(err["key"]))
            except (KeyError, TypeError, ValueError):
                continue
            result.errors[refused] = str(err.get("reason", "refused by the remote"))
            if refused[0] in maps:
                maps[refused[0]].pop(refused[1], None)
        self.errors.update(result.errors)
        self.store.save_mappings(self.remote, mapped)
        result.mapped = len(mapped)
        log.info(
            "%s: metadata: sent %d rows, %d mapped, %d refused",
            self.remote,
            result.sent,
            result.mapped,
            len(result.errors),
        )
        for (kind, key), reason in result.errors.items():
            log.warning("%s: %s %s refused: %s", self.remote, kind, key, reason)
        return result

    def forget(self, stale: set[tuple[str, int]]) -> None:
        """Drop mappings the remote has lost, so that ``ensure`` maps them again."""
        maps = self.maps()
        for kind, local_id in stale:
            maps[kind].pop(local_id, None)
            self.errors.pop((kind, local_id), None)
        self.store.forget_rows(self.remote, [(TABLE_NAMES[k], i) for k, i in stale])

    def reason_unmapped(self, kind: str, local_id: int | None) -> str:
        if local_id is None:
            return f"the row has no {kind}; set its {kind} locally"
        return self.errors.get(
            (kind, local_id), f"{TABLE_NAMES[kind]} {local_id} could not be mapped to the remote"
        )
