"""The oracle of every reliability scenario must itself be able to fail: a remote that lost
a row, holds a changed value, an extra row, or a row under another location is caught
by both the checksums and the natural-key sets."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select, update

from base.db import make_engine
from models import Location, NodeState, Reading
from models.base import table_of
from push.daemon import Pusher
from tests.oracle import compare_replica
from tests.pushkit import T0, seed_cogent_house


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_comparison_catches_lost_changed_extra_and_moved_rows(pair):
    seed_cogent_house(pair.local, days=1)
    pusher = Pusher(pair.config())
    try:
        [report] = pusher.run_once()
    finally:
        pusher.close()
    assert report.ok, report.error
    assert compare_replica(pair.local, pair.remote).same

    remote = make_engine(pair.remote)
    try:
        with remote.begin() as conn:
            ids = list(conn.execute(select(Reading.id).order_by(Reading.id).limit(3)).scalars())
            conn.execute(delete(table_of(Reading)).where(Reading.id == ids[0]))
            conn.execute(update(table_of(Reading)).where(Reading.id == ids[1]).values(value=-1.0))
            other = conn.execute(select(Location.id).order_by(Location.id.desc())).first()[0]
            conn.execute(update(table_of(Reading)).where(Reading.id == ids[2])
                         .values(locationId=other))
            conn.execute(insert(table_of(NodeState)).values(
                nodeId=101, time=T0.replace(year=2025), seq_num=1))
    finally:
        remote.dispose()
    result = compare_replica(pair.local, pair.remote)
    assert not result.same
    assert (result.lost, result.different, result.extra) == (1, 2, 1), result.describe()
    assert len(result.summary_mismatches) >= 3, result.describe()
