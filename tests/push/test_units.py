"""Pusher building blocks that need no server: lock, backoff, schema advice."""

from __future__ import annotations

import os
import random
import threading

import pytest

import push.backoff
from base.errors import AlreadyRunning, RemoteBusy, RemoteRejected, RemoteUnavailable
from base.migrate import head_revision, revision_order, schema_advice
from push.backoff import backoff_delay, retry
from push.lock import PushLock


def test_a_second_pusher_on_the_same_database_refuses_to_start(tmp_path):
    lock = tmp_path / "push.lock"
    with PushLock(lock), pytest.raises(AlreadyRunning, match=str(os.getpid())):
        PushLock(lock).acquire()
    PushLock(lock).acquire()  # released: free again


def test_backoff_grows_to_the_cap_and_never_past_it():
    rng = random.Random(3)
    delays = [backoff_delay(n, 5, 900, rng) for n in range(1, 30)]
    assert all(d <= 900 for d in delays)
    assert delays[0] <= 5
    assert min(delays[10:]) >= 450  # at the cap, jitter keeps at least half


def test_backoff_is_jittered_so_a_fleet_does_not_retry_in_step():
    rng = random.Random(4)
    assert len({round(backoff_delay(6, 5, 900, rng), 3) for _ in range(20)}) > 15


def test_retry_retries_transient_errors_then_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        raise RemoteUnavailable("down")

    with pytest.raises(RemoteUnavailable):
        retry(flaky, attempts=3, base=0.001, cap=0.002)
    assert len(calls) == 3


def test_retry_does_not_retry_permanent_errors():
    calls = []

    def refused():
        calls.append(1)
        raise RemoteRejected("400 bad", 400)

    with pytest.raises(RemoteRejected):
        retry(refused, attempts=5, base=0.001, cap=0.002)
    assert len(calls) == 1


def test_a_busy_server_is_waited_for_as_often_as_it_asks_within_a_time_budget(monkeypatch):
    """Regression: 20 waits were the limit, and stations of a 1,000-station fleet gave up on a
    server that was still working through the others."""
    answers = iter([RemoteBusy("busy", 0.001)] * 100)

    def busy_a_hundred_times() -> str:
        answer = next(answers, None)
        if answer is not None:
            raise answer
        return "stored"

    assert retry(busy_a_hundred_times, attempts=2, base=0.0001, cap=0.001) == "stored"
    monkeypatch.setattr(push.backoff, "MAX_BUSY_SECONDS", 0.05)
    waits = []
    with pytest.raises(RemoteBusy):
        retry(lambda: (_ for _ in ()).throw(RemoteBusy("busy", 0.01)), attempts=2, base=0.001,
              cap=0.01, busy_cap=0.01, on_busy=lambda d, e: waits.append(d))
    assert 3 <= len(waits) <= 5 and sum(waits) <= 0.05


def test_retry_stops_waiting_when_asked_to_stop():
    stop = threading.Event()
    stop.set()
    with pytest.raises(RemoteUnavailable):
        retry(
            lambda: (_ for _ in ()).throw(RemoteUnavailable("x")),
            attempts=10,
            base=60,
            cap=60,
            stop=stop,
        )


def test_schema_advice_names_the_side_to_upgrade():
    order = revision_order()
    assert order[-1] == head_revision()
    assert schema_advice(order[-1], order[-1]) is None
    if len(order) > 1:
        assert "upgrade the local side" in (schema_advice(order[0], order[-1]) or "")
        assert "server's operator" in (schema_advice(order[-1], order[0]) or "")
    assert "upgrade cogent-sync here" in (schema_advice(order[-1], "ffffffff") or "")
    assert "no schema" in (schema_advice(None, order[-1]) or "")


def test_a_session_idle_past_the_servers_keep_alive_starts_on_fresh_connections():
    """Regression: stations of a 1,000-station fleet sent their map request on pooled
    connections the server had closed while the station waited for the CPU: reset three times."""
    import requests

    from push.transport import IDLE_RECONNECT_SECONDS, forget_idle_connections

    session = requests.Session()
    pools = session.get_adapter("http://127.0.0.1/").poolmanager
    pools.connection_from_url("http://127.0.0.1:9/")  # a pool entry; nothing connects
    assert not forget_idle_connections(session, now=100.0)
    assert not forget_idle_connections(session, now=100.0 + IDLE_RECONNECT_SECONDS - 0.5)
    assert len(pools.pools) == 1
    assert forget_idle_connections(session, now=100.0 + 2 * IDLE_RECONNECT_SECONDS + 1)
    assert len(pools.pools) == 0
    session.close()
