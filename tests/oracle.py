"""The one oracle of the suite: local against remote, row for row.

:func:`compare_replica` checks two independent things:

* the per-day checksums of ``models.summary`` (count, valueSum, timeSum, seqSum), run
  on both databases, with each location translated to its natural key
  (deployment, address, room) because local and remote ids differ;
* the sets of rows by natural key (reading: node, type, time → value and location;
  node state: node, time, seq → parent, rssi, localtime), node by node, so memory stays
  bounded on a million rows, counting rows lost, rows extra, rows different and rows
  duplicated.

Rows the pusher set aside for the remote (``SyncRejected``) are left out of the local
side: they are expected *not* to be on the remote. :func:`assert_same` is the strict
form: nothing set aside, everything there.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, func, select

from base.db import make_engine
from models import Deployment, House, Location, NodeState, Reading, Room, SyncRejected
from models.base import table_of
from models.summary import iter_summary, nodestate_summary, reading_summary


@dataclass
class Comparison:
    readings: int = 0  # local rows compared (set-aside rows left out)
    node_states: int = 0
    set_aside: int = 0
    lost: int = 0  # local rows missing on the remote
    extra: int = 0  # remote rows that are not local
    different: int = 0  # same natural key, other value/location/parent/…
    duplicated: int = 0  # natural key present more than once on the remote
    summary_groups: int = 0
    summary_mismatches: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.readings + self.node_states

    @property
    def same(self) -> bool:
        return not (self.lost or self.extra or self.different or self.duplicated
                    or self.summary_mismatches)

    def describe(self) -> str:
        return (f"{self.rows} rows compared ({self.readings} readings, {self.node_states} node "
                f"states, {self.set_aside} set aside): lost {self.lost}, extra {self.extra}, "
                f"different {self.different}, duplicated {self.duplicated}; "
                f"{len(self.summary_mismatches)} of {self.summary_groups} checksum groups differ"
                + "".join(f"\n  {e}" for e in [*self.summary_mismatches[:10], *self.examples[:10]]))


def _location_keys(engine: Engine) -> dict[int | None, tuple]:
    stmt = (
        select(Location.id, Deployment.name, House.address, Room.name)
        .join(House, House.id == Location.houseId)
        .join(Deployment, Deployment.id == House.deploymentId)
        .outerjoin(Room, Room.id == Location.roomId)
    )
    with engine.connect() as conn:
        out: dict[int | None, tuple] = {r[0]: tuple(r[1:]) for r in conn.execute(stmt)}
    out[None] = (None,)
    return out


def _set_aside_ids(table: str, remote: str) -> Any:
    return select(SyncRejected.localId).where(
        and_(SyncRejected.remote == remote, SyncRejected.tableName == table)
    )


def _summaries(engine: Engine, locations: dict, remote: str | None) -> dict[tuple, tuple]:
    out: dict[tuple, tuple] = {}
    r_stmt = reading_summary()
    s_stmt = nodestate_summary()
    if remote is not None:
        r_stmt = r_stmt.where(Reading.id.not_in(_set_aside_ids("Reading", remote)))
        s_stmt = s_stmt.where(NodeState.id.not_in(_set_aside_ids("NodeState", remote)))
    with engine.connect() as conn:
        for g in iter_summary(conn, r_stmt):
            key = ("reading", locations.get(g["locationId"], ("?", g["locationId"])),
                   g["nodeId"], g["type"], g["day"])
            out[key] = (g["count"], g["valueSum"], g["timeSum"])
        for g in iter_summary(conn, s_stmt):
            out[("nodestate", g["nodeId"], g["day"])] = (g["count"], g["timeSum"], g["seqSum"])
    return out


def _groups(engine: Engine) -> set[tuple]:
    with engine.connect() as conn:
        r = {("r", n, t) for n, t in conn.execute(select(Reading.nodeId, Reading.type).distinct())}
        s = {("s", n, None) for (n,) in conn.execute(select(NodeState.nodeId).distinct())}
    return r | s


def _rows(engine: Engine, group: tuple, locations: dict, remote: str | None) -> list[tuple]:
    kind, node, sensor_type = group
    if kind == "r":
        stmt = select(Reading.time, Reading.value, Reading.locationId).where(
            Reading.nodeId == node, Reading.type == sensor_type)
        if remote is not None:
            stmt = stmt.where(Reading.id.not_in(_set_aside_ids("Reading", remote)))
        with engine.connect() as conn:
            return [(t, ("value", v), locations.get(loc, ("?", loc)))
                    for t, v, loc in conn.execute(stmt)]
    t = table_of(NodeState)
    stmt = select(t.c.time, t.c.seq_num, t.c.parent, t.c.rssi, t.c.localtime).where(
        t.c.nodeId == node)
    if remote is not None:
        stmt = stmt.where(t.c.id.not_in(_set_aside_ids("NodeState", remote)))
    with engine.connect() as conn:
        return [((r[0], r[1]), tuple(r[2:])) for r in conn.execute(stmt)]


def _node(key: tuple) -> int:
    return int(key[2] if key[0] == "reading" else key[1])


def compare_replica(local_url: str, remote_url: str, remote: str = "central",
                    shared: bool = False) -> Comparison:
    """Local (minus the rows set aside for ``remote``) against the remote, row for row.
    ``shared``: the remote also holds other stations' nodes (a fleet), so only this
    station's nodes are compared; whether the fleet's rows add up is the caller's check."""
    local, far = make_engine(local_url), make_engine(remote_url)
    out = Comparison()
    try:
        with local.connect() as conn:
            out.set_aside = int(conn.execute(
                select(func.count()).select_from(table_of(SyncRejected))
                .where(SyncRejected.remote == remote)).scalar_one())
        l_locs, r_locs = _location_keys(local), _location_keys(far)
        ls, rs = _summaries(local, l_locs, remote), _summaries(far, r_locs, None)
        l_groups, r_groups = _groups(local), _groups(far)
        if shared:
            mine = {g[1] for g in l_groups}
            rs = {k: v for k, v in rs.items() if _node(k) in mine}
            r_groups = {g for g in r_groups if g[1] in mine}
        out.summary_groups = len(ls.keys() | rs.keys())
        for key in sorted(ls.keys() | rs.keys(), key=repr):
            if ls.get(key) != rs.get(key):
                out.summary_mismatches.append(f"{key}: local {ls.get(key)} remote {rs.get(key)}")
        for group in sorted(l_groups | r_groups, key=repr):
            mine = _rows(local, group, l_locs, remote)
            theirs = _rows(far, group, r_locs, None)
            if group[0] == "r":
                out.readings += len(mine)
            else:
                out.node_states += len(mine)
            counted = collections.Counter(r[0] for r in theirs)
            out.duplicated += sum(n - 1 for n in counted.values() if n > 1)
            l_map = {r[0]: r[1:] for r in mine}
            r_map = {r[0]: r[1:] for r in theirs}
            for k in l_map.keys() - r_map.keys():
                out.lost += 1
                if len(out.examples) < 10:
                    out.examples.append(f"lost {group} {k} {l_map[k]}")
            for k in r_map.keys() - l_map.keys():
                out.extra += 1
                if len(out.examples) < 10:
                    out.examples.append(f"extra {group} {k} {r_map[k]}")
            for k in l_map.keys() & r_map.keys():
                if l_map[k] != r_map[k]:
                    out.different += 1
                    if len(out.examples) < 10:
                        out.examples.append(f"differs {group} {k}: {l_map[k]} vs {r_map[k]}")
    finally:
        local.dispose()
        far.dispose()
    return out


def assert_replica(local_url: str, remote_url: str, remote: str = "central") -> Comparison:
    result = compare_replica(local_url, remote_url, remote)
    assert result.same, result.describe()
    assert result.rows > 0, "nothing was compared"
    return result


def assert_same(local_url: str, remote_url: str, remote: str = "central",
                shared: bool = False) -> Comparison:
    """Every local row is on the remote, identical, once; nothing was set aside."""
    result = compare_replica(local_url, remote_url, remote, shared)
    assert result.same, result.describe()
    assert result.set_aside == 0, f"{result.set_aside} rows were set aside"
    return result
