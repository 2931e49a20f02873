"""The line listener: good lines are stored exactly once, bad ones skipped with a reason,
and nothing acknowledged is ever lost, even under kill -9."""

from __future__ import annotations

import asyncio
import configparser
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from base.db import make_engine
from base.errors import ConfigError
from base.listen import (
    BadLine,
    LineParser,
    ListenConfig,
    Listener,
    parse_listen_section,
    parse_time,
)
from models import Node, Reading
from models.sql import utcnow

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1)
EPOCH0 = int((T0 - datetime(1970, 1, 1)).total_seconds())
CATALOGUE = {0: "T", 2: "RH", 6: "BAT", 8: "CO2", 11: "POW", 21: "dB"}
NOW = datetime(2026, 6, 1, 12, 0, 0, 500)


def readings(engine) -> set[tuple]:
    with engine.connect() as conn:
        return {
            tuple(r)
            for r in conn.execute(select(Reading.nodeId, Reading.type, Reading.time, Reading.value))
        }


def config_from(text: str) -> ListenConfig:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parse_listen_section(parser)


def run_stream(
    engine, lines: list[str], config: ListenConfig | None = None, tmp_path=None, listener=None
):
    """Feed ``lines`` through the stdin path from a file; return (stats, replies)."""
    path = tmp_path / "input.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = io.BytesIO()
    listener = listener or Listener(engine, config)
    with path.open("rb") as stream:
        stats = asyncio.run(listener.serve_stream(stream, out))
    return stats, out.getvalue().decode().splitlines()


# --------------------------------------------------------------------- storing a stream


MIXED = [
    "101 T 21.5 2026-01-01T00:00:00Z",  # 1 good, ISO with Z
    "101 2 55.5 2026-01-01T00:00:00.250000",  # 2 good, type by id, microseconds
    "this is not a reading",  # 3 bad node id
    "102 T 19.25 1767225900",  # 4 good, epoch seconds
    "102 T nan 1767225900",  # 5 bad value
    "",  # 6 blank
    "# a comment",  # 7 comment
    "103 XX 1 1767225900",  # 8 bad type
    "103 co2 612 2026-01-01 00:10:00",  # 9 good, code in any case, ISO with a space
    "103 CO2 612",  # 10 good, stamped with the time it arrived
    "104 T 20 2026-01-01T01:00:00+01:00",  # 11 good, offset converted to UTC
    "104 T 20 9999999999",  # 12 bad: far future
    "105 T",  # 13 bad: too few fields
    "105 T 1 2 3 4 5",  # 14 bad: too many fields
    "-5 T 1",  # 15 bad: negative node
    "101 T 21.5 2026-01-01T00:00:00Z",  # 16 duplicate of line 1: skipped by natural key
]
MIXED_BAD = {3, 5, 8, 12, 13, 14, 15}


def test_a_mixed_stream_stores_exactly_the_good_lines(engine, tmp_path):
    before = utcnow()
    stats, replies = run_stream(engine, MIXED, tmp_path=tmp_path)
    after = utcnow()
    got = readings(engine)
    now_rows = {r for r in got if r[2] >= before - timedelta(seconds=1)}
    assert len(now_rows) == 1
    (now_row,) = now_rows
    assert now_row[:2] == (103, 8) and now_row[3] == 612 and before <= now_row[2] <= after
    assert got - now_rows == {
        (101, 0, T0, 21.5),
        (101, 2, T0 + timedelta(microseconds=250_000), 55.5),
        (102, 0, T0 + timedelta(minutes=5), 19.25),
        (103, 8, T0 + timedelta(minutes=10), 612.0),
        (104, 0, T0, 20.0),
    }
    errs = {int(line.split()[1]) for line in replies if line.startswith("ERR")}
    assert errs == MIXED_BAD
    assert replies[-1] == f"OK {len(MIXED)}"
    assert stats.lines == len(MIXED) and stats.bad == len(MIXED_BAD)


def test_a_line_the_database_refuses_is_set_aside_and_the_batch_still_stored(engine, tmp_path):
    listener = Listener(engine)
    # A type the parser accepts but the database lacks: the insert itself fails (foreign key).
    listener.parser.catalogue[9999] = "ZZ"
    lines = ["101 T 20 1767225600", "101 ZZ 1 1767225600", "101 T 21 1767225900"]
    _, replies = run_stream(engine, lines, tmp_path=tmp_path, listener=listener)
    assert replies[0].startswith("ERR 2 the database refused it:")
    assert replies[1:] == ["OK 3"]
    assert {v for *_, v in readings(engine)} == {20.0, 21.0}


def test_nodes_never_seen_are_created_without_a_location(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    run_stream(engine, ["42 T 20.5 1767225600", "42 RH 50 1767225600"], tmp_path=tmp_path)
    with engine.connect() as conn:
        node = conn.execute(select(Node).where(Node.id == 42)).one()
        locs = set(conn.execute(select(Reading.locationId)).scalars())
    assert node.locationId is None and node.nodeTypeId is None
    assert locs == {None}
    engine.dispose()


def test_unknown_nodes_are_refused_when_configured_to(sqlite_url, tmp_path):
    from tests.factories import place_node

    engine = make_engine(sqlite_url)
    loc = place_node(engine, 101, room_type=3)
    cfg = ListenConfig(unknown_nodes="reject")
    lines = ["101 T 20.5 1767225600", "42 T 20.5 1767225600", "101 T 20.6 1767225900"]
    _, replies = run_stream(engine, lines, cfg, tmp_path)
    assert replies == ["ERR 2 unknown node 42 ([listen] unknown_nodes = reject)", "OK 3"]
    got = readings(engine)
    assert {(n, v) for n, _, _, v in got} == {(101, 20.5), (101, 20.6)}
    with engine.connect() as conn:
        assert set(conn.execute(select(Reading.locationId)).scalars()) == {loc.location}
        assert conn.execute(select(Node.id).where(Node.id == 42)).first() is None
    engine.dispose()


def test_emonhub_frames_are_mapped_through_the_listen_section(engine, tmp_path):
    cfg = config_from(
        """
[listen]
format = auto
node.10 = T*0.01, RH, -, BAT*0.001   # temperature in centidegrees, a value ignored
node.11 = POW
"""
    )
    lines = ["10 2150 55.5 99 3012", "11 250", "10 1 2", "101 T 20 1767225600", "11 x"]
    stats, replies = run_stream(engine, lines, cfg, tmp_path)
    assert [r.split()[:2] for r in replies[:-1]] == [["ERR", "3"], ["ERR", "5"]]
    assert "node 10 is mapped to 4 values, got 2" in replies[0]
    got = {(n, t, v) for n, t, _, v in readings(engine)}
    assert got == {(10, 0, 21.5), (10, 2, 55.5), (10, 6, 3.012), (11, 11, 250.0), (101, 0, 20.0)}
    assert stats.readings == 5


# --------------------------------------------------------------------- parsing lines


@pytest.mark.parametrize(
    "line, reason",
    [
        ("x T 1", "node id 'x' is not a whole number"),
        ("99999999999 T 1", "node id 99999999999 is too large"),
        ("1 T", "expected 'NODE TYPE VALUE [TIME]', got 2 fields"),
        ("1 Q 1", "unknown sensor type 'Q'"),
        ("1 77 1", "unknown sensor type id 77"),
        ("1 T abc", "value 'abc' is not a number"),
        ("1 T inf", "value 'inf' is not a finite number"),
        ("1 T 1 yesterday", "time 'yesterday' is neither ISO-8601"),
        ("1 T 1 2026-13-01T00:00:00", "is neither ISO-8601"),
        ("1 T 1 1767225600000", "time '1767225600000' is"),  # milliseconds, not seconds
        ("1 T 1 2026-06-03T00:00:00", "more than a day in the future"),
        ("1 T 1 0001-01-01T00:00:00", "is before 1970"),
    ],
)
def test_a_bad_line_is_refused_with_its_reason(line, reason):
    parser = LineParser(CATALOGUE, clock=lambda: NOW)
    with pytest.raises(BadLine) as exc:
        parser.parse(line)
    assert reason in str(exc.value)


def test_native_lines_accept_ids_codes_iso_and_epoch_times():
    parser = LineParser(CATALOGUE, clock=lambda: NOW)
    (r,) = parser.parse("  7 db 35.5  ")
    assert (r.node, r.type, r.value, r.time) == (7, 21, 35.5, NOW)
    (r,) = parser.parse(f"7 0 -3.25 {EPOCH0}.5")
    assert r.time == T0 + timedelta(milliseconds=500) and r.value == -3.25
    (r,) = parser.parse("7 RH 40 2026-01-01T02:00:00+02:00")
    assert r.time == T0
    assert parser.parse("# 1 T 1") == [] and parser.parse("   ") == []
    assert parse_time("2026-01-01T00:00:00.000001Z", NOW) == T0 + timedelta(microseconds=1)


def test_forced_formats_and_mapping_errors():
    mapping = {10: (("T", 1.0), ("RH", 1.0))}
    native = LineParser(CATALOGUE, mapping, fmt="native", clock=lambda: NOW)
    (r,) = native.parse("10 T 20")
    assert r.type == 0
    emon = LineParser(CATALOGUE, mapping, fmt="emonhub", clock=lambda: NOW)
    with pytest.raises(BadLine, match=r"node 11 has no node\.11 mapping"):
        emon.parse("11 20 50")
    scaled = LineParser(CATALOGUE, {12: (("T", 0.1),)}, clock=lambda: NOW)
    assert scaled.parse("12 3")[0].value == 0.3  # not 0.30000000000000004
    with pytest.raises(ConfigError, match=r"\[listen\] node.10: unknown sensor type 'ZZ'"):
        LineParser(CATALOGUE, {10: (("ZZ", 1.0),)})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[listen]\nport = 99999", "[listen] port: = 99999 is out of range"),
        ("[listen]\nformat = xml", "[listen] format: = 'xml' is not one of"),
        ("[listen]\nunknown_nodes = maybe", "[listen] unknown_nodes"),
        ("[listen]\nnode.10 = T*x", "[listen] node.10: = 'T*x': scale 'x' is not a number"),
        ("[listen]\nnode.10 = -,-", "maps no value"),
        ("[listen]\nnodes.10 = T", "[listen] nodes.10: unknown key"),
        ("[listen]\nbatch_lines = 0", "[listen] batch_lines"),
    ],
)
def test_listen_section_errors_name_the_key(text, message):
    with pytest.raises(ConfigError) as exc:
        config_from(text)
    assert message in str(exc.value)


def test_listen_section_defaults_and_values():
    assert config_from("[general]\nlocalurl = sqlite://\n") == ListenConfig()
    cfg = config_from(
        "[listen]\nhost = 0.0.0.0\nport = 7000\nbatch_lines = 10\nbatch_seconds = 0.5\n"
        "node.5 = T,RH\n"
    )
    assert (cfg.host, cfg.port, cfg.batch_lines, cfg.batch_seconds) == ("0.0.0.0", 7000, 10, 0.5)
    assert cfg.mapping == {5: (("T", 1.0), ("RH", 1.0))}


@pytest.mark.parametrize(
    "key, raw",
    [("port", "70000"), ("batch_lines", "0"), ("batch_seconds", "nan"), ("format", "xml")],
)
def test_a_bad_value_is_refused_in_the_same_words_from_the_file_and_the_command_line(key, raw):
    with pytest.raises(ConfigError) as in_file:
        config_from(f"[listen]\n{key} = {raw}")
    parser = configparser.ConfigParser()
    with pytest.raises(ConfigError) as on_command_line:
        parse_listen_section(parser, {key: raw})
    assert str(on_command_line.value) == f"--{key.replace('_', '-')}: {in_file.value.reason}"


def test_command_line_options_override_the_file():
    parser = configparser.ConfigParser()
    parser.read_string("[listen]\nport = 7000\nbatch_lines = 10\n")
    cfg = parse_listen_section(parser, {"port": "0"})
    assert (cfg.port, cfg.batch_lines) == (0, 10)


# --------------------------------------------------------------------- TCP, in process


@contextmanager
def tcp_listener(engine, config: ListenConfig | None = None):
    listener = Listener(engine, config)
    ready = threading.Event()
    port: list[int] = []
    result: list = []

    def run():
        def on_ready(_host, p):
            port.append(p)
            ready.set()

        result.append(asyncio.run(listener.serve_tcp(port=0, ready=on_ready)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield listener, port[0]
    finally:
        listener.stop()
        thread.join(10)
        assert not thread.is_alive()


def send_all(port: int, lines: list[str]) -> list[str]:
    """Send ``lines``, half-close, and return every reply until the listener closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\n".join(lines) + "\n").encode())
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode().splitlines()


def test_tcp_client_gets_err_for_bad_lines_and_ok_after_commit(sqlite_url):
    engine = make_engine(sqlite_url)
    with tcp_listener(engine) as (_, port):
        replies = send_all(port, MIXED)
        assert {int(r.split()[1]) for r in replies if r.startswith("ERR")} == MIXED_BAD
        assert replies[-1] == f"OK {len(MIXED)}"
        assert len(readings(engine)) == 6
        # Re-sending everything (as a client that lost the OK would) stores nothing twice.
        again = send_all(port, MIXED[:2] + MIXED[3:4])
        assert again == ["OK 3"]
        assert len(readings(engine)) == 6
    engine.dispose()


def test_lines_commit_after_batch_seconds_without_waiting_for_more(sqlite_url):
    engine = make_engine(sqlite_url)
    with (
        tcp_listener(engine, ListenConfig(batch_seconds=0.2, batch_lines=1000)) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
    ):
        sock.sendall(b"101 T 20 1767225600\n")
        started = time.monotonic()
        assert sock.recv(100) == b"OK 1\n"
        assert time.monotonic() - started < 2
        assert len(readings(engine)) == 1
        many = "".join(f"101 T {i} {EPOCH0 + i}\n" for i in range(1, 1001)).encode()
        sock.sendall(many)
        replies = b""
        while not replies.endswith(b"OK 1001\n"):
            replies += sock.recv(1000)
    assert len(readings(engine)) == 1001
    engine.dispose()


def test_an_over_long_or_binary_line_is_skipped_and_the_next_one_kept(sqlite_url):
    engine = make_engine(sqlite_url)
    with tcp_listener(engine) as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"1 T " + b"9" * 10_000 + b"\n\xff\xfe T 1\n101 T 20 1767225600\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    replies = data.decode().splitlines()
    assert replies[0] == "ERR 1 line longer than 4096 bytes"
    assert replies[1] == "ERR 2 not UTF-8 text"
    assert replies[-1] == "OK 3"
    assert len(readings(engine)) == 1
    engine.dispose()


# --------------------------------------------------------------------- as a process


def start_listener(url: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int, Path]:
    log = tmp_path / "listener.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "base.cli", "listen", "--db", url, "--port", "0", *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if m:
            return proc, int(m.group(1)), log
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"listener did not start: {log.read_text()}")


@pytest.mark.slow  # starts a subprocess
def test_kill_9_mid_stream_loses_no_acknowledged_line(sqlite_url, tmp_path):
    proc, port, log = start_listener(sqlite_url, tmp_path)
    total = 20_000
    lines = [
        f"bad line {i}" if i % 97 == 0 else f"{500 + i % 5} T {i} {EPOCH0 + i}"
        for i in range(1, total + 1)
    ]
    acked = [0]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def sender():
        try:
            for i in range(0, total, 50):
                sock.sendall(("\n".join(lines[i : i + 50]) + "\n").encode())
                time.sleep(0.002)
        except OSError:
            pass  # the listener was killed

    def reader():
        buf = b""
        try:
            while chunk := sock.recv(65536):
                buf += chunk
                *done, buf = buf.split(b"\n")
                for reply in done:
                    if reply.startswith(b"OK "):
                        acked[0] = int(reply.split()[1])
        except OSError:
            pass

    threads = [threading.Thread(target=sender), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while acked[0] < 1000 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for t in threads:
        t.join(10)
    sock.close()
    last_ok = acked[0]
    assert 1000 <= last_ok < total, "the listener must be killed mid-stream"

    engine = make_engine(sqlite_url)
    stored = {int(v) for _, _, _, v in readings(engine)}
    engine.dispose()
    acknowledged = {i for i in range(1, last_ok + 1) if i % 97}
    assert acknowledged <= stored  # nothing acknowledged is lost
    assert all(i % 97 and i <= total for i in stored)  # nothing stored that was not sent
    assert "Traceback" not in log.read_text()


@pytest.mark.slow  # starts a subprocess
def test_sigterm_commits_and_acknowledges_what_was_read(sqlite_url, tmp_path):
    proc, port, log = start_listener(
        sqlite_url, tmp_path, "--batch-lines", "100000", "--batch-seconds", "60"
    )
    lines = [f"{600 + i % 3} RH {i} {EPOCH0 + i}" for i in range(1, 50)] + ["the end"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\n".join(lines) + "\n").encode())
        deadline = time.monotonic() + 10
        while "line 50 skipped" not in log.read_text():  # it has read everything
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        assert sock.recv(100).startswith(b"ERR 50 ")
        proc.send_signal(signal.SIGTERM)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.decode().splitlines() == ["OK 50"]
    assert proc.wait(10) == 0
    engine = make_engine(sqlite_url)
    assert len(readings(engine)) == 49
    engine.dispose()


def cogent_base() -> list[str]:
    script = Path(sys.executable).parent / "cogent-base"
    return [str(script)] if script.exists() else [sys.executable, "-m", "base.cli"]


@pytest.mark.slow  # starts a subprocess
def test_stdin_mode_records_lines_until_eof_and_acks_on_stdout(sqlite_url, tmp_path):
    conf = tmp_path / "synchronise.conf"
    conf.write_text(f"[general]\nlocalurl = {sqlite_url}\n\n[listen]\nnode.20 = T,RH\n")
    stdin = "20 21.5 40\nnonsense\n101 T 20 1767225600\n"
    proc = subprocess.run(
        [*cogent_base(), "listen", "-c", str(conf), "--stdin", "--ack"],
        input=stdin.encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().splitlines()
    assert out == ["ERR 2 node id 'nonsense' is not a whole number", "OK 3"]
    assert "line 2 skipped: node id 'nonsense'" in proc.stderr.decode()
    assert f"database {sqlite_url}: recording lines" in proc.stderr.decode().splitlines()[0]
    engine = make_engine(sqlite_url)
    assert {(n, t, v) for n, t, _, v in readings(engine)} == {
        (20, 0, 21.5),
        (20, 2, 40.0),
        (101, 0, 20.0),
    }
    engine.dispose()


@pytest.mark.slow  # starts a subprocess
def test_listen_cli_errors_are_one_line(sqlite_url, tmp_path, capsys):
    from base.cli import main

    bad = tmp_path / "bad.conf"
    bad.write_text("[listen]\nformat = xml\n")
    proc = subprocess.run(
        [sys.executable, "-m", "base.cli", "listen", "--db", sqlite_url, "-c", str(bad)],
        capture_output=True,
        cwd=ROOT,
        timeout=30,
        env={**os.environ},
    )
    assert proc.returncode == 2
    err = proc.stderr.decode().strip().splitlines()
    assert err == [
        "cogent-base: error: [listen] format: = 'xml' is not one of auto, native, emonhub"
    ]
    assert main(["listen", "--db", sqlite_url, "--map", "x=T"]) == 2
    assert main(["listen", "--db", f"sqlite:///{tmp_path / 'new.db'}", "--stdin"]) == 2
    assert "has no cogent-sync schema yet" in capsys.readouterr().err
