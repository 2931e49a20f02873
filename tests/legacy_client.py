"""A client that talks as the original Cogent-house RestPusher does (github jbrusey/cogent-house
``cogent/push/RestPusher.py``), written here from its documented behaviour, not its code:
credentials only in its ``resturl`` (``http://SITE:KEY@host/rest/``, which makes ``requests``
send HTTP Basic), rows as dictionaries that name their ``__table__``, metadata matched with
``GET ?col=value`` then ``POST`` (``PUT node/?id=N`` when a node moved), readings resumed from
``lastSync/`` plus one second and sent as zlib-compressed JSON lists to ``bulk/``."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests


@dataclass
class LegacyHouse:
    """One house of an original base station, with local ids as the original keeps them."""

    deployment: str
    address: str
    rooms: dict[int, tuple[str, int]]  # local room id → (name, remote room type id)
    nodes: dict[int, int]  # node id → local room id
    readings: list[dict[str, Any]] = field(default_factory=list)  # time, nodeId, type, room, value
    states: list[dict[str, Any]] = field(default_factory=list)  # time, nodeId, seq_num, ...


class LegacyPusher:
    def __init__(self, resturl: str, pushlimit: int = 100):
        self.url = resturl
        self.pushlimit = pushlimit
        self.locations: dict[int, int] = {}  # local room id → remote location id

    def _get(self, path: str, **params: Any) -> Any:
        reply = requests.get(self.url + path, params=params, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def _post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.url + path, data=json.dumps(body), timeout=30)

    def _one(self, path: str, match: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """The original's uploadItem: the remote row matching, else the one it creates."""
        found = self._get(path, **match)
        if found == []:
            reply = self._post(path, row)
            reply.raise_for_status()
            found = reply.json()
        item = found[0] if isinstance(found, list) else found
        assert "__table__" in item, item  # what the original's clsFromJSON needs
        return item

    def check_connection(self) -> bool:
        return requests.get(self.url + "deployment/", timeout=30).status_code != 503

    def push_status(self, hostname: str) -> dict[str, Any]:
        reply = self._post("pushstatus/", {"hostname": hostname,
                                           "localtime": datetime.utcnow().isoformat(),
                                           "version": "cogent-house 0.4 (legacy test client)"})
        reply.raise_for_status()
        return dict(reply.json())

    def sync_house(self, house: LegacyHouse) -> int:
        """Metadata, then readings and node states from lastSync/ on; rows sent."""
        dep = self._one("deployment/", {"name": house.deployment},
                        {"__table__": "Deployment", "id": None, "name": house.deployment,
                         "description": None, "startDate": None, "endDate": None})
        rhouse = self._one("house/", {"address": house.address, "deploymentId": dep["id"]},
                           {"__table__": "House", "id": None, "deploymentId": dep["id"],
                            "address": house.address, "startDate": None, "endDate": None,
                            "serverid": None})
        for local_room, (name, room_type) in house.rooms.items():
            room = self._one("room/", {"name": name},
                             {"__table__": "Room", "id": None, "name": name,
                              "roomTypeId": room_type})
            loc = self._one("location/", {"houseId": rhouse["id"], "roomId": room["id"]},
                            {"__table__": "Location", "id": None, "houseId": rhouse["id"],
                             "roomId": room["id"]})
            self.locations[local_room] = loc["id"]
        for node, local_room in house.nodes.items():
            body = {"__table__": "Node", "id": node, "locationId": self.locations[local_room],
                    "nodeTypeId": 0}
            remote = self._get("node/", id=node)
            if remote == []:
                self._post("node/", body).raise_for_status()
            elif remote[0]["locationId"] != body["locationId"]:
                reply = requests.put(self.url + "node/", params={"id": node},
                                     data=json.dumps(body), timeout=30)
                reply.raise_for_status()
        last = self._get("lastSync/", house=house.address)
        since = None if last is None else datetime.fromisoformat(last) + timedelta(seconds=1)
        rows = [r for r in house.readings if since is None or r["time"] > since]
        rows.sort(key=lambda r: r["time"])
        states = [s for s in house.states if since is None or s["time"] > since]
        sent = 0
        for start in range(0, len(rows), self.pushlimit):
            chunk = [{"__table__": "Reading", "time": r["time"].isoformat(), "nodeId": r["nodeId"],
                      "type": r["type"], "locationId": self.locations[r["room"]],
                      "value": r["value"]} for r in rows[start:start + self.pushlimit]]
            self._bulk(chunk)
            sent += len(chunk)
        for start in range(0, len(states), self.pushlimit):
            chunk = [{"__table__": "NodeState", "id": None, "time": s["time"].isoformat(),
                      "nodeId": s["nodeId"], "parent": s["parent"], "localtime": s["localtime"],
                      "seq_num": s["seq_num"], "rssi": s["rssi"]}
                     for s in states[start:start + self.pushlimit]]
            self._bulk(chunk)
            sent += len(chunk)
        return sent

    def _bulk(self, rows: list[dict[str, Any]]) -> None:
        reply = requests.post(self.url + "bulk/", data=zlib.compress(json.dumps(rows).encode()),
                              timeout=60)
        if reply.status_code == 500:  # the only failure the original client notices
            raise RuntimeError("Upload Failed")
        assert reply.status_code == 201, reply.text
