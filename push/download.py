"""Restoring houses from a remote into the local database (after an SD card died).

Metadata first, matched by natural key and entered into the id map so the
pusher knows these rows are already on the remote; then readings and node
states, page by page (keyset on the remote id), each page inserted in one
local transaction together with the download cursor. An interrupted download
resumes from its cursors, and a repeated one skips rows whose natural key is
already present. Restored rows get ``syncSeq = 0``, so they are never pushed
back; rows logged afterwards are pushed as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from base.db import write_engine
from base.errors import ConfigError
from models import (
    RESTORED_SEQ,
    Deployment,
    House,
    Location,
    Node,
    NodeState,
    Reading,
    Room,
    RoomType,
    Sensor,
    SyncCursor,
)
from models.base import table_of
from models.sql import get_or_create, insert_ignoring_duplicates, upsert, utcnow
from push.client import RemoteClient
from push.ledger import LocalStore, MappedRow
from push.metadata import TABLE_NAMES, digest, request_row

log = logging.getLogger(__name__)

PAGE = 5000


class NothingToDownload(ConfigError):
    """The remote has no house matching what was asked for (or the key may not see it):
    the option names nothing, a usage error (exit 2)."""


def _time(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    value = datetime.fromisoformat(raw)
    return value.replace(tzinfo=None) if value.tzinfo else value


@dataclass
class DownloadReport:
    """What a download did. Rows of pages fetched by an earlier, interrupted run are not
    fetched again: they count as already here, as do rows fetched and found present."""

    houses: list[str] = field(default_factory=list)  # started (every one when complete)
    wanted: int = 0  # houses asked for
    readings: int = 0  # inserted by this run
    node_states: int = 0
    remote_readings: int = 0  # on the remote, in the houses started
    remote_states: int = 0
    complete_before: int = 0  # houses this run found with nothing left to insert

    @property
    def already_readings(self) -> int:
        return max(0, self.remote_readings - self.readings)

    @property
    def already_states(self) -> int:
        return max(0, self.remote_states - self.node_states)

    @property
    def skipped(self) -> int:
        return self.already_readings + self.already_states

    def describe(self, remote: str, complete: bool = True) -> str:
        new = f"{self.readings} readings and {self.node_states} node states"
        if not complete:
            return (
                f"{new} restored from {remote} so far, in {len(self.houses)} of "
                f"{self.wanted} house(s)"
            )
        text = f"restored {len(self.houses)} house(s) from {remote}: {new} new"
        if self.skipped:
            text += (
                f"; {self.already_readings} readings and {self.already_states} node states "
                f"were already here"
            )
            if self.complete_before:
                text += f" ({self.complete_before} house(s) already complete)"
        else:
            text += " (0 were already here)"
        return text


Progress = Callable[[str, int, int], None]  # (what, done, total), after every page


class Downloader:
    def __init__(
        self,
        engine: Engine,
        client: RemoteClient,
        progress: Progress | None = None,
        page: int = PAGE,
    ):
        self.engine = engine
        self.writer = write_engine(engine)
        self.client = client
        self.remote = client.remote.name
        self.store = LocalStore(engine)
        self.progress = progress
        self.page = page
        self._done = self._total = 0  # rows of the houses being downloaded, for progress

    # -- which houses --------------------------------------------------------------------------
    def remote_houses(
        self, *, address: str | None = None, deployment: str | None = None, everything: bool = False
    ) -> list[dict[str, Any]]:
        if deployment is not None:
            deps = self.client.get("deployment/", {"name": deployment})
            if not deps:
                raise NothingToDownload(
                    f"{self.remote}: no deployment named {deployment!r} is visible to this key"
                )
            houses = [h for d in deps for h in self._all("house/", {"deploymentId": d["id"]})]
        elif address is not None:
            houses = list(self._all("house/", {"address": address}))
        elif everything:
            houses = list(self._all("house/", {}))
        else:
            raise NothingToDownload("say which: --house ADDRESS, --deployment NAME or --all")
        if not houses:
            what = f"house {address!r}" if address else "house"
            raise NothingToDownload(
                f"{self.remote}: no {what} is visible to this key; check the address "
                f"(it must match exactly) and that the key belongs to the house's site"
            )
        return houses

    def _all(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = self.client.get(path, {**params, "_after": after, "_limit": self.page}) or []
            yield from page
            if len(page) < self.page:
                return
            after = page[-1]["id"]

    # -- the whole job -------------------------------------------------------------------------
    def run(
        self, houses: list[dict[str, Any]], report: DownloadReport | None = None
    ) -> DownloadReport:
        """Download ``houses``, filling ``report`` as it goes (so that an interrupted run
        still says what it did)."""
        report = report if report is not None else DownloadReport()
        report.wanted = len(houses)
        totals = [self._totals(h["id"]) for h in houses]
        self._total = sum(r + s for r, s in totals)
        self._done = 0
        for house, (readings, states) in zip(houses, totals, strict=True):
            locations, nodes = self._metadata(house)
            report.houses.append(house["address"])
            report.remote_readings += readings
            report.remote_states += states
            inserted = report.readings + report.node_states
            for remote_loc, local_loc in locations.items():
                self._stream(
                    report,
                    "Reading",
                    f"location:{remote_loc}",
                    {"locationId": remote_loc},
                    {"locationId": local_loc},
                    house["address"],
                )
            for node_id in nodes:
                self._stream(
                    report,
                    "NodeState",
                    f"node:{node_id}",
                    {"nodeId": node_id},
                    {},
                    house["address"],
                )
            if report.readings + report.node_states == inserted:
                report.complete_before += 1
            # Pages an earlier run fetched are not fetched again: count them as done.
            self._done = sum(r + s for r, s in totals[: len(report.houses)])
            self._show(house["address"])
        return report

    def _show(self, house: str) -> None:
        if self.progress:
            self.progress(house, self._done, self._total)

    def _totals(self, remote_house: int) -> tuple[int, int]:
        readings = self.client.get("summary/reading/", {"houseId": remote_house}) or []
        states = self.client.get("summary/nodestate/", {"houseId": remote_house}) or []
        return sum(r["count"] for r in readings), sum(r["count"] for r in states)

    # -- metadata ------------------------------------------------------------------------------
    def _metadata(self, house: dict[str, Any]) -> tuple[dict[int, int], list[int]]:
        """Create the house and what hangs off it locally; return location map and node ids."""
        dep = self.client.get(f"deployment/{house['deploymentId']}")
        locations = list(self._all("location/", {"houseId": house["id"]}))
        rooms = {loc["roomId"]: self.client.get(f"room/{loc['roomId']}") for loc in locations}
        room_types = {
            r["roomTypeId"]: self.client.get(f"roomtype/{r['roomTypeId']}")
            for r in rooms.values()
            if r.get("roomTypeId") is not None
        }
        nodes = [n for loc in locations for n in self._all("node/", {"locationId": loc["id"]})]
        sensors = [s for n in nodes for s in self._all("sensor/", {"nodeId": n["id"]})]
        mapped: list[MappedRow] = []
        loc_map: dict[int, int] = {}
        with self.writer.begin() as conn:
            rt_map = {
                rid: get_or_create(conn, table_of(RoomType), {"name": rt["name"]}, {})
                for rid, rt in room_types.items()
            }
            room_map = {
                rid: get_or_create(
                    conn,
                    table_of(Room),
                    {"name": r["name"]},
                    {"roomTypeId": rt_map.get(r.get("roomTypeId"))},
                )
                for rid, r in rooms.items()
            }
            dep_id = get_or_create(
                conn,
                table_of(Deployment),
                {"name": dep["name"]},
                {
                    "description": dep.get("description"),
                    "startDate": _time(dep.get("startDate")),
                    "endDate": _time(dep.get("endDate")),
                },
            )
            house_id = get_or_create(
                conn,
                table_of(House),
                {"deploymentId": dep_id, "address": house["address"]},
                {
                    "startDate": _time(house.get("startDate")),
                    "endDate": _time(house.get("endDate")),
                },
            )
            for loc in locations:
                loc_map[loc["id"]] = get_or_create(
                    conn,
                    table_of(Location),
                    {"houseId": house_id, "roomId": room_map[loc["roomId"]]},
                    {},
                )
            for n in nodes:
                local_loc = loc_map.get(n["locationId"]) if n.get("locationId") else None
                existing = conn.execute(select(Node.id).where(Node.id == n["id"])).first()
                if existing is None:
                    conn.execute(
                        insert(table_of(Node)).values(
                            id=n["id"], locationId=local_loc, nodeTypeId=n.get("nodeTypeId")
                        )
                    )
            for s in sensors:
                get_or_create(
                    conn,
                    table_of(Sensor),
                    {"nodeId": s["nodeId"], "sensorTypeId": s["sensorTypeId"]},
                    {
                        "calibrationSlope": s.get("calibrationSlope", 1.0),
                        "calibrationOffset": s.get("calibrationOffset", 0.0),
                    },
                )
            pairs: list[tuple[str, Any, dict[int, int]]] = [
                ("roomtype", RoomType, rt_map),
                ("room", Room, room_map),
                ("deployment", Deployment, {dep["id"]: dep_id}),
                ("house", House, {house["id"]: house_id}),
                ("location", Location, loc_map),
                ("node", Node, {n["id"]: n["id"] for n in nodes}),
            ]
            for kind, model, ids in pairs:
                for remote_id, local_id in ids.items():
                    obj = conn.execute(select(model).where(model.id == local_id)).first()
                    if obj is not None:
                        d = digest(request_row(kind, obj))
                        mapped.append(MappedRow(TABLE_NAMES[kind], local_id, remote_id, d))
        self.store.save_mappings(self.remote, mapped)
        log.info(
            "%s: house %r: %d locations, %d nodes, %d sensors restored",
            self.remote,
            house["address"],
            len(locations),
            len(nodes),
            len(sensors),
        )
        return loc_map, [n["id"] for n in nodes]

    # -- readings and node states --------------------------------------------------------------
    def _stream(
        self,
        report: DownloadReport,
        table_name: str,
        scope: str,
        params: dict[str, Any],
        overrides: dict[str, Any],
        house: str,
    ) -> None:
        stream = f"download:{table_name}:{scope}"
        after = self.store.cursor(self.remote, stream)
        path = "reading/" if table_name == "Reading" else "nodestate/"
        table = table_of(Reading if table_name == "Reading" else NodeState)
        while True:
            page = (
                self.client.get(
                    path, {**params, "_sort": "id", "_after": after, "_limit": self.page}
                )
                or []
            )
            if not page:
                return
            rows = [self._local_row(table_name, r, overrides) for r in page]
            after = int(page[-1]["id"])
            with self.writer.begin() as conn:
                inserted = insert_ignoring_duplicates(conn, table, rows)
                self._move_cursor(conn, stream, after)
            if table_name == "Reading":
                report.readings += inserted
            else:
                report.node_states += inserted
            self._done += len(rows)
            self._show(house)
            if len(page) < self.page:
                return

    @staticmethod
    def _local_row(table_name: str, row: dict[str, Any], overrides: dict[str, Any]) -> dict:
        out = {k: v for k, v in row.items() if k not in ("id", "syncSeq")}
        out["time"] = _time(out["time"])
        out["syncSeq"] = RESTORED_SEQ
        out.update(overrides)
        return out

    def _move_cursor(self, conn: Connection, stream: str, position: int) -> None:
        conn.execute(
            upsert(
                conn.dialect, table_of(SyncCursor), ["remote", "stream"], ["position", "updated"]
            ),
            [{"remote": self.remote, "stream": stream, "position": position, "updated": utcnow()}],
        )
