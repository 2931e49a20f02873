"""Comparing local and remote, house by house, and re-sending what differs.

Both sides compute the same per-day groups (``models.summary``): per
(location, node, type, day) for readings and per (node, day) for node states,
each with a count and checksums. The base station streams its own groups and
fetches the remote's with one request per house and kind, so memory grows with
the number of groups (days times series), never with the number of rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from models import House, Location, Node, NodeState, Reading, Room, SensorType, SyncRejected
from models.summary import iter_summary, nodestate_summary, reading_summary
from push.client import RemoteClient
from push.cycle import RemoteSync
from push.ledger import LocalStore
from push.metadata import MetadataMapper
from push.progress import Progress
from push.streams import NODE_STATES, READINGS, Stream

log = logging.getLogger(__name__)

Sums = tuple[int, int, int]  # count and two checksums


@dataclass(frozen=True)
class Difference:
    kind: str  # "reading" | "nodestate"
    day: str
    node_id: int
    type_id: int | None
    location_id: int | None  # local id
    label: str
    local: Sums | None
    remote: Sums | None

    @property
    def local_count(self) -> int:
        return self.local[0] if self.local else 0

    @property
    def remote_count(self) -> int:
        return self.remote[0] if self.remote else 0

    def describe(self) -> str:
        what = "readings" if self.kind == "reading" else "node states"
        lc, rc = self.local_count, self.remote_count
        if lc == rc:
            how = f"{lc} {what} on both sides but their values or times differ"
        elif lc > rc:
            how = f"local {lc}, remote {rc}: {lc - rc} {what} missing on the remote"
        else:
            how = f"local {lc}, remote {rc}: the remote has {rc - lc} {what} more"
        return f"{self.day} {self.label}: {how}"


@dataclass
class HouseComparison:
    """One house on both sides. Rows set aside for the remote are counted locally but left
    out of the comparison: they are known not to be there."""

    house_id: int
    address: str
    remote_id: int | None
    local_readings: int = 0  # every local reading of the house, set aside or not
    remote_readings: int = 0
    local_states: int = 0
    remote_states: int = 0
    aside_readings: int = 0  # of the local ones, set aside for this remote
    aside_states: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.remote_id is not None and not self.differences

    @property
    def compared_readings(self) -> int:
        return self.local_readings - self.aside_readings

    @property
    def compared_states(self) -> int:
        return self.local_states - self.aside_states

    def verdict(self) -> str:
        if self.remote_id is None:
            if self.aside_readings + self.aside_states and not (
                self.compared_readings or self.compared_states
            ):
                return "not on the remote: every row of it was set aside (see 'rows set aside')"
            return "not on the remote yet (the pusher has not mapped this house)"
        if self.same:
            return "Local and remote are the same"
        parts = []
        for what, here, there in (
            ("reading", self.compared_readings, self.remote_readings),
            ("node state", self.compared_states, self.remote_states),
        ):
            if here > there:
                parts.append(f"{_rows(here - there, what)} missing on the remote")
            elif there > here:
                parts.append(f"the remote has {_rows(there - here, what)} more")
        if not parts:
            parts.append("same counts, but rows, values or times differ")
        n = len(self.differences)
        ranges = f"{n} range{'' if n == 1 else 's'} differ{'s' if n == 1 else ''}"
        return f"{'; '.join(parts)} ({ranges}: 'RestPusher.py verify' lists them)"

    def summary_line(self) -> str:
        aside = ""
        if (self.aside_readings, self.aside_states) == (self.local_readings, self.local_states):
            aside = " (all set aside)" if self.local_readings + self.local_states else ""
        elif self.aside_readings or self.aside_states:
            aside = (
                f" ({self.aside_readings} readings / {self.aside_states} node states of them "
                f"set aside)"
            )
        remote = (
            f"remote {self.remote_readings} / {self.remote_states}"
            if self.remote_id is not None
            else "remote -"
        )
        return (
            f"house {self.address!r}: local {self.local_readings} readings / "
            f"{self.local_states} node states{aside}, {remote}: {self.verdict()}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "on_remote": self.remote_id is not None,
            "same": self.same,
            "local": {"readings": self.local_readings, "node_states": self.local_states},
            "set_aside": {"readings": self.aside_readings, "node_states": self.aside_states},
            "remote": {"readings": self.remote_readings, "node_states": self.remote_states},
            "ranges_differ": len(self.differences),
            "verdict": self.verdict(),
        }


class Verifier:
    def __init__(self, engine: Engine, client: RemoteClient):
        self.engine = engine
        self.client = client
        self.store = LocalStore(engine)
        self.mapper = MetadataMapper(engine, self.store, client)
        self._labels: dict[int, str] = {}
        self._types: dict[int, str] = {}

    def houses(self, only: Iterable[int] | None = None) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            stmt = select(House.id, House.address).order_by(House.id)
            if only is not None:
                stmt = stmt.where(House.id.in_(list(only)))
            rows = [(int(r.id), str(r.address)) for r in conn.execute(stmt)]
            self._labels = {
                int(r.id): str(r.name)
                for r in conn.execute(
                    select(Location.id, Room.name).join(Room, Room.id == Location.roomId)
                )
            }
            self._types = {
                int(r.id): str(r.name) for r in conn.execute(select(SensorType.id, SensorType.name))
            }
        return rows

    def compare(
        self, only: Iterable[int] | None = None, progress: Progress | None = None
    ) -> list[HouseComparison]:
        houses = self.houses(only)
        if progress is not None:
            progress.total = len(houses)
        out = []
        for hid, address in houses:
            out.append(self.compare_house(hid, address))
            if progress is not None:
                progress.advance(1)
        return out

    def compare_house(self, house_id: int, address: str) -> HouseComparison:
        remote_house = self.mapper.remote_id("house", house_id)
        result = HouseComparison(house_id, address, remote_house)
        # Rows set aside for this remote are known not to be there; leave them out.
        local_r = self._local(
            reading_summary(house_id=house_id).where(Reading.id.not_in(self._aside("Reading"))),
            "reading",
        )
        local_s = self._local(
            nodestate_summary(house_id=house_id).where(
                NodeState.id.not_in(self._aside("NodeState"))
            ),
            "nodestate",
        )
        result.aside_readings, result.aside_states = self._aside_in_house(house_id)
        result.local_readings = sum(v[0] for v in local_r.values()) + result.aside_readings
        result.local_states = sum(v[0] for v in local_s.values()) + result.aside_states
        if remote_house is None:
            return result
        remote_r = self._remote("summary/reading/", remote_house, "reading")
        remote_s = self._remote("summary/nodestate/", remote_house, "nodestate")
        result.remote_readings = sum(v[0] for v in remote_r.values())
        result.remote_states = sum(v[0] for v in remote_s.values())
        for kind, local, remote in (
            ("reading", local_r, remote_r),
            ("nodestate", local_s, remote_s),
        ):
            for key in sorted(set(local) | set(remote), key=repr):
                if local.get(key) != remote.get(key):
                    result.differences.append(
                        self._difference(kind, key, local.get(key), remote.get(key))
                    )
        return result

    def _aside_in_house(self, house_id: int) -> tuple[int, int]:
        """Readings and node states of the house set aside for this remote (houses as the
        summaries see them: readings by their location, node states by their node's)."""
        locations = select(Location.id).where(Location.houseId == house_id)
        nodes = select(Node.id).where(Node.locationId.in_(locations))
        readings = (
            select(func.count())
            .select_from(Reading)
            .where(Reading.id.in_(self._aside("Reading")), Reading.locationId.in_(locations))
        )
        states = (
            select(func.count())
            .select_from(NodeState)
            .where(NodeState.id.in_(self._aside("NodeState")), NodeState.nodeId.in_(nodes))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(readings).scalar_one()), int(conn.execute(states).scalar_one())

    def _aside(self, table: str) -> Any:
        return select(SyncRejected.localId).where(
            SyncRejected.remote == self.client.remote.name, SyncRejected.tableName == table
        )

    def _local(self, stmt: Any, kind: str) -> dict[tuple[Any, ...], Sums]:
        with self.engine.connect() as conn:
            return {_key(kind, row): _sums(kind, row) for row in iter_summary(conn, stmt)}

    def _remote(self, path: str, remote_house: int, kind: str) -> dict[tuple[Any, ...], Sums]:
        rows = self.client.get(path, params={"houseId": remote_house}) or []
        inverse = {rid: lid for lid, (rid, _) in self.mapper.maps()["location"].items()}
        out = {}
        for row in rows:
            if kind == "reading":
                loc = row.get("locationId")
                # A remote location this base station never mapped stays recognisable.
                row = {**row, "locationId": inverse.get(loc, -loc if loc else None)}
            out[_key(kind, row)] = _sums(kind, row)
        return out

    def _difference(
        self, kind: str, key: tuple[Any, ...], local: Sums | None, remote: Sums | None
    ) -> Difference:
        if kind == "reading":
            loc, node, type_id, day = key
            room = self._labels.get(
                loc, f"remote location {-loc}" if loc and loc < 0 else f"location {loc}"
            )
            label = f"{room}, node {node}, {self._types.get(type_id, f'type {type_id}')}"
            return Difference(kind, day, node, type_id, loc, label, local, remote)
        node, day = key
        return Difference(kind, day, node, None, None, f"node {node} states", local, remote)

    # -- repair --------------------------------------------------------------------------------
    def repair(
        self,
        comparisons: list[HouseComparison],
        sync: RemoteSync,
        batch: int,
        progress: Progress | None = None,
    ) -> tuple[int, int]:
        """Re-send the local rows of every range that differs, through the cycle's own send
        path (retries, remapping, set-aside); (rows the remote took, rows set aside)."""
        todo = [d for c in comparisons for d in c.differences if d.local_count]
        if progress is not None:
            progress.total = sum(d.local_count for d in todo)
        delivered = aside = 0
        for diff in todo:  # ranges with no local rows: only a download can restore them
            rows = self._rows(diff)
            stream: Stream = READINGS if diff.kind == "reading" else NODE_STATES
            for i in range(0, len(rows), batch):
                sent = sync.send_rows(stream, rows[i : i + batch], self.mapper)
                sync.store.set_aside(sync.remote.name, sent.set_aside)
                delivered += sent.stored + sent.unchanged
                aside += len(sent.set_aside)
            log.info("re-sent %d rows for %s", len(rows), diff.describe())
            if progress is not None:
                progress.advance(len(rows))
        return delivered, aside

    def _rows(self, diff: Difference) -> list[Any]:
        start = datetime.combine(date.fromisoformat(diff.day), datetime.min.time())
        end = start + timedelta(days=1)
        if diff.kind == "reading":
            t = Reading.__table__
            stmt = select(t).where(
                t.c.locationId == diff.location_id,
                t.c.nodeId == diff.node_id,
                t.c.type == diff.type_id,
                t.c.time >= start,
                t.c.time < end,
            )
        else:
            t = NodeState.__table__
            stmt = select(t).where(t.c.nodeId == diff.node_id, t.c.time >= start, t.c.time < end)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt))  # one series-day: a few hundred rows


def _key(kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "reading":
        return (row["locationId"], row["nodeId"], row["type"], row["day"])
    return (row["nodeId"], row["day"])


def _sums(kind: str, row: dict[str, Any]) -> Sums:
    if kind == "reading":
        return (int(row["count"]), int(row["valueSum"]), int(row["timeSum"]))
    return (int(row["count"]), int(row["timeSum"]), int(row["seqSum"]))


def _rows(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"
