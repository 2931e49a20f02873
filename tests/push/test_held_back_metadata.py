"""A metadata row that Cogent-house allowed to be NULL where the remote needs a value (a
house without deployment or address, a location without a room, a deployment without a
name) is held back with what depends on it; it never wedges the cycle, and every other
house's readings flow. A sensor without a calibration is sent as it is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from base.db import make_engine
from models import Deployment, House, Location, Node, Reading, Room, Sensor, SyncRejected
from models.base import table_of
from push.status import format_status, remote_status
from tests.pushkit import T0, count, push_once, seed_cogent_house


def _orphan_house(conn, *, house: dict, room: int | None, node: int) -> int:
    """A house with a location, a node and one reading, as an adopted database may hold."""
    house_id = conn.execute(insert(table_of(House)).values(**house)).inserted_primary_key[0]
    loc = conn.execute(insert(table_of(Location)).values(houseId=house_id, roomId=room)
                       ).inserted_primary_key[0]
    conn.execute(insert(table_of(Node)).values(id=node, locationId=loc, nodeTypeId=0))
    conn.execute(insert(table_of(Reading)).values(nodeId=node, type=0, time=T0, locationId=loc,
                                                  value=20.0))
    return house_id


@pytest.mark.parametrize("case, reason", [
    ("no deployment", "has no deployment"),
    ("no address", "has no address"),
    ("no room", "has no room"),
    ("unnamed deployment", "has no name"),
])
def test_a_row_missing_what_the_remote_needs_is_held_back_and_the_rest_flows(pair, case, reason):
    data = seed_cogent_house(pair.local, days=1)
    engine = make_engine(pair.local)
    with engine.begin() as conn:
        dep = conn.execute(select(Deployment.id)).scalars().first()
        room = conn.execute(select(Room.id)).scalars().first()
        if case == "no deployment":
            _orphan_house(conn, house={"deploymentId": None, "address": "9 Nowhere"},
                          room=room, node=901)
        elif case == "no address":
            _orphan_house(conn, house={"deploymentId": dep, "address": None}, room=room, node=901)
        elif case == "no room":
            _orphan_house(conn, house={"deploymentId": dep, "address": "9 Nowhere"}, room=None,
                          node=901)
        else:
            unnamed = conn.execute(insert(table_of(Deployment)).values(name=None)
                                   ).inserted_primary_key[0]
            _orphan_house(conn, house={"deploymentId": unnamed, "address": "9 Nowhere"},
                          room=room, node=901)
        # A sensor without calibration is data, not a problem.
        conn.execute(update(table_of(Sensor)).where(Sensor.nodeId == 101)
                     .values(calibrationSlope=None, calibrationOffset=None))
    [report] = push_once(pair.config())
    assert report.ok, report.error
    assert report.streams["Reading"].sent == data.readings
    assert report.streams["Reading"].set_aside == 1
    with engine.connect() as conn:
        [why] = conn.execute(select(SyncRejected.reason)).scalars().all()
    assert reason in why, why
    remote = make_engine(pair.remote)
    assert count(remote, Reading) == data.readings
    with remote.connect() as conn:
        slopes = set(conn.execute(select(Sensor.calibrationSlope)).scalars())
    assert None in slopes
    remote.dispose()
    config = pair.config()
    shown = format_status(remote_status(config, config.remote("central"), engine))
    assert reason in shown, shown
    # The next cycle is not wedged either, and new readings of the good houses flow.
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)).values(
            nodeId=101, type=0, time=T0 + timedelta(days=3), locationId=data.locations[101],
            value=19.0))
    [again] = push_once(pair.config())
    assert again.ok, again.error
    assert again.streams["Reading"].sent == 1
    engine.dispose()
