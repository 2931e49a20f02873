"""The pusher trusts nothing that comes back (issue 11, items 7 and 8).

A real server behind a scripted proxy (tests/faultproxy.py) answers some requests as a
broken, hostile or impostor server would. The cursor moves only on an acknowledgement
that accounts for exactly the rows sent, for this batch; every request ends within its
deadline and size cap; one hung remote never holds back another.
"""

from __future__ import annotations

import gzip
import hashlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from base.db import make_engine
from base.errors import AuthError, BadReply
from models import Reading
from push.daemon import Pusher
from push.ledger import LocalStore
from push.outcome import Exit, for_failure
from tests.faultproxy import FaultProxy, http_reply
from tests.live_server import REPO
from tests.pushkit import assert_same, count, push_once, seed_cogent_house, write_config

pytestmark = pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])


@pytest.fixture
def proxy(pair) -> Iterator[FaultProxy]:
    p = FaultProxy(pair.server.url)
    yield p
    p.close()


def reading_cursor(local_url: str, remote: str = "central") -> int:
    engine = make_engine(local_url)
    try:
        return LocalStore(engine).cursor(remote, "Reading")
    finally:
        engine.dispose()


def remote_readings(pair) -> int:
    engine = make_engine(pair.remote)
    try:
        return count(engine, Reading)
    finally:
        engine.dispose()


def tampered(change: Callable[[dict[str, Any]], None]) -> Callable[..., bytes]:
    """A responder that forwards the batch (the server stores it) and alters its reply."""

    def respond(request: bytes, forward: Callable[[], bytes | None]) -> bytes:
        real = forward()
        assert real is not None
        doc = orjson.loads(real.partition(b"\r\n\r\n")[2])
        change(doc)
        return http_reply(200, orjson.dumps(doc))

    return respond


def fixed(body: bytes, status: int = 200, **kw: Any) -> Callable[..., bytes]:
    return lambda request, forward: http_reply(status, body, **kw)


def set_field(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.__setitem__(name, value)


def more_stored(doc: dict[str, Any]) -> None:
    doc["stored"] += 1000


HOSTILE_ACKS = {
    "all zero, no digest": fixed(b'{"stored":0,"unchanged":0,"rejected":[]}'),
    "stored as a string": tampered(set_field("stored", "7")),
    "unchanged as true": tampered(set_field("unchanged", True)),
    "rejected as null": tampered(set_field("rejected", None)),
    "more rows stored than sent": tampered(more_stored),
    "another batch's digest": tampered(set_field("batch", hashlib.sha256(b"x").hexdigest())),
    "a rejection outside the batch": tampered(set_field(
        "rejected", [{"kind": "reading", "index": 10**6, "count": 1, "code": "bad_value",
                      "reason": "?"}])),
}


@pytest.mark.parametrize("reply", list(HOSTILE_ACKS))
def test_an_acknowledgement_that_does_not_account_for_the_batch_fails_and_keeps_the_cursor(
    pair, proxy, reply
):
    seed_cogent_house(pair.local, days=1)
    proxy.on("/sync/batch/", HOSTILE_ACKS[reply], times=0)
    [report] = push_once(pair.config(url=proxy.url))
    assert not report.ok and report.failure is BadReply, report
    assert for_failure(report.failure) == Exit.FAILED  # never "ok", never a warning
    assert "does not acknowledge the batch sent" in (report.error or "")
    assert reading_cursor(pair.local) == 0
    proxy.clear_scripts()
    [report] = push_once(pair.config(url=proxy.url))  # an honest reply: everything arrives
    assert report.ok, report.error
    assert_same(pair.local, pair.remote)


def test_a_redirect_to_a_page_is_not_taken_as_the_acknowledgement(pair, proxy):
    seed_cogent_house(pair.local, days=1)
    proxy.on("/sync/batch/", fixed(b"", 302, headers={"Location": pair.server.url + "version/"}),
             times=0)
    [report] = push_once(pair.config(url=proxy.url))
    assert not report.ok and report.failure is BadReply
    assert "redirect" in (report.error or "") and "version/" in (report.error or "")
    assert reading_cursor(pair.local) == 0 and remote_readings(pair) == 0


def test_a_redirect_to_another_host_does_not_send_the_batch_there(pair, proxy):
    seed_cogent_house(pair.local, days=1)
    elsewhere = FaultProxy(pair.server.url)
    try:
        proxy.on("/sync/batch/", fixed(b"", 307, headers={"Location": elsewhere.url
                                                          + "sync/batch/"}), times=0)
        [report] = push_once(pair.config(url=proxy.url))
        assert not report.ok and report.failure is BadReply
        assert elsewhere.requests == 0 and remote_readings(pair) == 0
    finally:
        elsewhere.close()


def test_another_web_server_answering_is_one_line_that_says_check_resturl(pair, proxy):
    proxy.on("/sync/hello/", fixed(b"<html><body>It works!</body></html>" * 50,
                                   content_type="text/html; charset=utf-8"))
    [report] = push_once(pair.config(url=proxy.url))
    assert not report.ok and report.failure is BadReply
    error = report.error or ""
    assert "answered with an HTML page, not cogent-sync — check resturl" in error
    assert "\n" not in error and "It works" not in error


def test_a_map_reply_that_is_a_list_or_has_non_integer_ids_fails_without_a_traceback(
    pair, proxy
):
    seed_cogent_house(pair.local, days=1)
    for body in (b"[1, 2]", b'{"house": {"1": "seven"}, "errors": []}'):
        proxy.on("/sync/map/", fixed(body))
        [report] = push_once(pair.config(url=proxy.url))
        assert not report.ok and report.failure is BadReply, report
        assert "metadata map reply" in (report.error or "")
    assert reading_cursor(pair.local) == 0


def test_a_reply_that_trickles_in_ends_at_the_request_deadline(pair):
    seed_cogent_house(pair.local, days=1)
    slow = FaultProxy(pair.server.url, drip_seconds=0.5, default_fault="drip")
    try:
        config = pair.config(url=slow.url, remote_options={"request_deadline": 2})
        t0 = time.monotonic()
        [report] = push_once(config)
        took = time.monotonic() - t0
    finally:
        slow.close()
    assert not report.ok and "request_deadline" in (report.error or "")
    assert took < 3 * (2 + 2 + 1), f"three tries of a 2 s deadline took {took:.0f} s"


@pytest.mark.parametrize("kind", ["plain", "gzip bomb"])
def test_a_reply_larger_than_max_reply_is_refused_before_it_fills_memory(pair, proxy, kind):
    big = b" " * (40 << 20)
    if kind == "plain":
        responder = fixed(big)
    else:
        bomb = gzip.compress(big, 9)
        assert len(bomb) < 100_000
        responder = fixed(bomb, headers={"Content-Encoding": "gzip"})
    proxy.on("/sync/hello/", responder)
    config = pair.config(url=proxy.url, remote_options={"max_reply": 1 << 20})
    [report] = push_once(config)
    assert not report.ok and report.failure is BadReply
    assert "larger than max_reply" in (report.error or "")


def test_a_hung_remote_does_not_hold_back_the_healthy_one(pair):
    data = seed_cogent_house(pair.local, days=2)
    hung = FaultProxy(pair.server.url, drip_seconds=1, default_fault="drip")
    stop = threading.Event()
    config = write_config(
        pair.dir / "two.conf", pair.local,
        {"central": (pair.server.url, pair.key), "hung": (hung.url, pair.key)},
        pushlimit=1000, timeout=30, remote_options={"request_deadline": 600},
    )
    pusher = Pusher(config, stop)
    done = threading.Thread(target=pusher.run_once)
    try:
        done.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and remote_readings(pair) < data.readings:
            time.sleep(0.2)
        assert remote_readings(pair) == data.readings  # the healthy remote got everything
        assert done.is_alive()  # while the hung one is still inside its first request
        stopped = time.monotonic()
        stop.set()
        done.join(20)
        assert not done.is_alive()
        assert time.monotonic() - stopped < 15  # STOP_GRACE (10 s) and a little
    finally:
        stop.set()
        hung.close()
        pusher.close()


@pytest.mark.slow  # starts a subprocess
def test_the_first_sigterm_ends_a_daemon_stuck_in_a_hung_request_within_its_grace(pair):
    seed_cogent_house(pair.local, days=1)
    hung = FaultProxy(pair.server.url, drip_seconds=1, default_fault="drip")
    config = pair.config(url=hung.url, remote_options={"request_deadline": 600})
    daemon = subprocess.Popen(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config.path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and hung.requests == 0:
            time.sleep(0.1)
        assert hung.requests > 0
        time.sleep(1)  # inside the dripping reply now
        t0 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
        assert time.monotonic() - t0 < 15
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        hung.close()


def test_a_busy_server_is_waited_for_as_it_asks_and_is_not_an_error(pair, proxy):
    seed_cogent_house(pair.local, days=1)
    proxy.on("/sync/batch/", fixed(b'{"error": "busy", "status": 429}', 429,
                                   headers={"Retry-After": "1"}))
    t0 = time.monotonic()
    [report] = push_once(pair.config(url=proxy.url))
    assert report.ok, report.error
    assert report.busy == 1 and time.monotonic() - t0 >= 1
    assert_same(pair.local, pair.remote)


def test_an_idle_cycle_with_a_wrong_key_fails_with_the_refused_key_exit_code(pair):
    config = write_config(pair.dir / "bad.conf", pair.local,
                          {"central": (pair.server.url, "cgk_" + "A" * 43)})
    [report] = push_once(config)  # nothing to send
    assert not report.ok and report.failure is AuthError
    assert for_failure(report.failure) == Exit.KEY_REFUSED
