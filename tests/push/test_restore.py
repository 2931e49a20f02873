"""Download, verify and repair: restoring a house after a card failure, and finding what differs."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, insert, select

from base.db import make_engine
from models import Location, Reading, SyncCursor
from models.base import table_of
from push.client import RemoteClient
from push.cycle import RemoteSync
from push.download import Downloader
from push.status import format_status, remote_status
from push.verify import Verifier
from tests.pushkit import T0, assert_same, push_once, seed_cogent_house, write_config


def download(pair, local_url: str, address: str = "1 Mill Lane", page: int = 500, progress=None):
    config = write_config(
        pair.dir / "restore.conf", local_url, {"central": (pair.server.url, pair.key)}
    )
    engine = make_engine(local_url)
    client = RemoteClient(config.remote("central"))
    try:
        d = Downloader(engine, client, progress=progress, page=page)
        return d.run(d.remote_houses(address=address))
    finally:
        client.close()
        engine.dispose()


def verify(pair, local_url: str | None = None):
    config = (
        pair.config()
        if local_url is None
        else write_config(
            pair.dir / "verify.conf", local_url, {"central": (pair.server.url, pair.key)}
        )
    )
    engine = make_engine(config.localurl)
    client = RemoteClient(config.remote("central"))
    try:
        return Verifier(engine, client), engine, client, config
    except Exception:
        client.close()
        engine.dispose()
        raise


def test_a_wiped_base_station_gets_its_house_back_and_then_pushes_nothing(pair, make_db):
    seed_cogent_house(pair.local, days=2)
    push_once(pair.config())
    fresh = make_db("fresh")  # the new SD card
    report = download(pair, fresh, address="1 Mill Lane")
    assert report.readings > 0 and report.node_states > 0
    for address in ("2 Mill Lane",):
        download(pair, fresh, address=address)
    assert_same(fresh, pair.remote)
    restored = write_config(
        pair.dir / "after.conf", fresh, {"central": (pair.server.url, pair.key)}
    )
    [cycle] = push_once(restored)
    assert cycle.ok, cycle.error
    assert cycle.sent == 0  # restored rows are not pushed back
    engine = make_engine(fresh)  # and a new local reading is pushed as usual
    with engine.begin() as conn:
        loc = conn.execute(select(func.min(Location.id))).scalar_one()
        conn.execute(
            insert(table_of(Reading)).values(
                nodeId=101, type=0, time=T0 + timedelta(days=9), locationId=loc, value=19.5
            )
        )
    engine.dispose()
    [cycle] = push_once(restored)
    assert cycle.ok and cycle.sent == 1


def test_an_interrupted_download_run_again_gives_the_same_rows_without_duplicates(pair, make_db):
    seed_cogent_house(pair.local, days=2)
    push_once(pair.config())
    fresh = make_db("fresh")
    pages = []

    def pull_the_plug(what, done, total):
        pages.append(done)
        if len(pages) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(pair, fresh, address="1 Mill Lane", page=400, progress=pull_the_plug)
    engine = make_engine(fresh)
    with engine.connect() as conn:
        partial = conn.execute(select(func.count()).select_from(Reading)).scalar_one()
        assert partial > 0
        assert conn.execute(select(func.count()).select_from(SyncCursor)).scalar_one() > 0
    download(pair, fresh, address="1 Mill Lane", page=400)
    download(pair, fresh, address="2 Mill Lane", page=400)
    again = download(pair, fresh, address="1 Mill Lane", page=400)
    assert again.readings == 0  # idempotent
    engine.dispose()
    assert_same(fresh, pair.remote)


def test_verify_names_a_day_deleted_on_the_remote_and_repair_restores_it(pair):
    seed_cogent_house(pair.local, days=3)
    push_once(pair.config())
    verifier, engine, client, _ = verify(pair)
    try:
        assert all(c.same for c in verifier.compare())
        remote = make_engine(pair.remote)
        day = T0 + timedelta(days=1)
        with remote.begin() as conn:  # behind the pusher's back
            gone = conn.execute(
                delete(table_of(Reading)).where(
                    Reading.nodeId == 101,
                    Reading.type == 0,
                    Reading.time >= day,
                    Reading.time < day + timedelta(days=1),
                )
            ).rowcount
        remote.dispose()
        assert gone > 200
        comparisons = Verifier(engine, client).compare()
        diffs = [d for c in comparisons for d in c.differences]
        assert len(diffs) == 1
        [diff] = diffs
        assert diff.day == day.date().isoformat() and diff.node_id == 101 and diff.type_id == 0
        assert f"{gone} readings missing on the remote" in diff.describe()
        assert "Living Room A" in diff.describe() and "Temperature" in diff.describe()
        sync = RemoteSync(pair.config(), pair.config().remote("central"), engine, client=client)
        taken, aside = Verifier(engine, client).repair(comparisons, sync, batch=100)
        assert (taken, aside) == (diff.local_count, 0)
        assert all(c.same for c in Verifier(engine, client).compare())
        assert_same(pair.local, pair.remote)
    finally:
        client.close()
        engine.dispose()


def test_status_shows_per_house_that_local_and_remote_are_the_same(pair):
    seed_cogent_house(pair.local, days=1)
    push_once(pair.config())
    config = pair.config()
    engine = make_engine(pair.local)
    shown = format_status(remote_status(config, config.remote("central"), engine))
    assert shown.count("Local and remote are the same") == 2
    assert "backlog: none" in shown
    with engine.begin() as conn:
        loc = conn.execute(select(func.min(Location.id))).scalar_one()
        conn.execute(
            insert(table_of(Reading)).values(
                nodeId=101, type=0, time=T0 + timedelta(days=5), locationId=loc, value=19.5
            )
        )
    shown = format_status(remote_status(config, config.remote("central"), engine))
    assert "1 reading missing on the remote (1 range differs" in shown, shown
    assert "backlog: 1 rows" in shown
    engine.dispose()


def test_verify_memory_does_not_grow_with_the_number_of_rows(pair, backend):
    if backend != "sqlite":
        pytest.skip("one backend is enough for a memory profile")
    seed_cogent_house(pair.local, days=2)
    push_once(pair.config())

    def peak() -> int:
        verifier, engine, client, _ = verify(pair)
        try:
            tracemalloc.start()
            verifier.compare()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            client.close()
            engine.dispose()

    small = peak()
    engine = make_engine(pair.local)
    with engine.begin() as conn:  # ten times the rows in the same days and series
        rows = [
            {"nodeId": 101, "type": 0, "locationId": loc, "time": t, "value": 20.0}
            for loc in [conn.execute(select(func.min(Location.id))).scalar_one()]
            for t in (T0 + timedelta(seconds=17 + 29 * i) for i in range(50_000))
        ]
        conn.execute(insert(table_of(Reading)), rows)
    engine.dispose()
    push_once(pair.config())
    large = peak()
    assert large < small * 1.5 + 200_000, (small, large)


@pytest.mark.torture
def test_verify_of_millions_of_readings_keeps_memory_flat(pair, backend):
    """`make torture`: verify over ~2M readings peaks at about the RSS it has over 10x fewer."""
    import resource
    import subprocess
    import sys

    if backend != "sqlite":
        pytest.skip("one backend is enough for a memory profile")
    repo = __import__("pathlib").Path(__file__).resolve().parents[2]

    def verify_rss_kb() -> int:
        config = pair.config(pushlimit=10_000, timeout=120)
        [report] = push_once(config)
        assert report.ok, report.error
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run(
            [sys.executable, "RestPusher.py", "-c", str(config.path), "verify"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Local and remote are the same" in done.stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return max(after, before)  # ru_maxrss of children is the max over all of them

    seed_cogent_house(pair.local, days=20)  # ~46k readings
    small = verify_rss_kb()
    engine = make_engine(pair.local)
    with engine.begin() as conn:
        loc = conn.execute(select(func.min(Location.id))).scalar_one()
        for chunk in range(40):
            conn.execute(
                insert(table_of(Reading)),
                [
                    {
                        "nodeId": 101,
                        "type": 0,
                        "locationId": loc,
                        "value": 20.0 + (i % 100) / 100,
                        "time": T0 + timedelta(seconds=17 + 0.5 * (chunk * 50_000 + i)),
                    }
                    for i in range(50_000)
                ],
            )
    engine.dispose()
    large = verify_rss_kb()
    print(f"verify peak RSS: {small} kB with ~46k readings, {large} kB with ~2.05M readings")
    assert large < small * 1.25, (small, large)


def test_the_commands_restore_verify_and_report_through_the_cli(pair, make_db):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]

    def cli(conf, *args):
        done = subprocess.run(
            [sys.executable, "RestPusher.py", "-c", str(conf), *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.returncode, done.stdout + done.stderr

    seed_cogent_house(pair.local, days=1)
    config = pair.config()
    code, out = cli(config.path, "once")
    assert code == 0, out
    code, out = cli(config.path, "verify")
    assert code == 0 and out.count("Local and remote are the same") == 2, out
    code, out = cli(config.path, "status")
    assert code == 0 and "backlog: none" in out, out
    engine = make_engine(pair.local)  # a reading not yet pushed: status says so, exit 1
    with engine.begin() as conn:
        loc = conn.execute(select(func.min(Location.id))).scalar_one()
        conn.execute(
            insert(table_of(Reading)).values(
                nodeId=101, type=0, time=T0 + timedelta(days=6), locationId=loc, value=19.5
            )
        )
    engine.dispose()
    code, out = cli(config.path, "status")
    assert code == 1 and "backlog: 1 rows" in out and "1 reading missing on the" in out, out
    fresh = make_db("fresh")
    restore = write_config(pair.dir / "fresh.conf", fresh, {"central": (pair.server.url, pair.key)})
    code, out = cli(restore.path, "download", "--house", "2 Mill Lane")
    assert code == 0 and "restored 1 house(s)" in out, out
    code, out = cli(restore.path, "download", "--house", "No Such Street")
    assert code == 2 and "no house 'No Such Street' is visible" in out, out
    code, out = cli(restore.path, "verify", "--house", "2 Mill Lane")
    assert code == 0 and "Local and remote are the same" in out, out


def test_null_values_come_back_as_null_on_restore_and_verify_finds_no_difference(pair, make_db):
    data = seed_cogent_house(pair.local, days=1)
    engine = make_engine(pair.local)
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)).values(
            nodeId=101, type=0, time=T0 + timedelta(days=2), locationId=data.locations[101],
            value=None))
    engine.dispose()
    [report] = push_once(pair.config())
    assert report.ok, report.error
    fresh = make_db("fresh")
    download(pair, fresh, address="1 Mill Lane")
    restored = make_engine(fresh)
    with restored.connect() as conn:
        nulls = conn.execute(select(func.count()).select_from(table_of(Reading))
                             .where(Reading.value.is_(None))).scalar_one()
    restored.dispose()
    assert nulls == 1
    verifier, engine, client, _ = verify(pair)
    try:
        assert all(c.same for c in verifier.compare())
    finally:
        client.close()
        engine.dispose()
