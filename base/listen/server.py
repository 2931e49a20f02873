"""The listener: reads lines from TCP clients or a stream, commits them in batches and
acknowledges each connection's progress (``OK <n>`` / ``ERR <line> <reason>``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import Engine

from base.errors import ConfigError
from base.listen.lines import BadLine, LineParser, Record
from base.listen.recorder import Recorder
from base.listen.settings import ListenConfig

log = logging.getLogger("cogent.listen")

MAX_LINE = 4096
ACK_BUFFER_LIMIT = 1 << 20


@dataclass
class ListenStats:
    lines: int = 0
    bad: int = 0
    readings: int = 0
    commits: int = 0


class _Source:
    """One connection or stdin: counts its lines and receives its acknowledgements."""

    def __init__(self, name: str, send: Callable[[str], None] | None):
        self.name = name
        self.send = send
        self.lineno = 0
        self.acked = 0
        self.partial = b""
        self.skipping = False

    def reply(self, text: str) -> None:
        if self.send is not None:
            try:
                self.send(text + "\n")
            except Exception as exc:  # a client that went away must not stop the others
                log.debug("%s: cannot reply: %s", self.name, exc)
                self.send = None

    def split(self, data: bytes) -> list[bytes | None]:
        """Complete lines in ``data`` (None for a line that was too long)."""
        out: list[bytes | None] = []
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        for chunk in chunks:
            if self.skipping:
                self.skipping = False
                out.append(None)
            else:
                out.append(chunk if len(chunk) <= MAX_LINE else None)
        if len(self.partial) > MAX_LINE:
            self.partial = b""
            self.skipping = True
        return out

    def tail(self) -> list[bytes | None]:
        """What is left at EOF: a last line without a newline."""
        if self.skipping:
            return [None]
        last, self.partial = self.partial, b""
        return [last] if last.strip() else []


@dataclass
class _Item:
    source: _Source
    lineno: int
    records: list[Record]


class Listener:
    """Reads lines from TCP clients or a stream, commits them in batches, acknowledges."""

    def __init__(self, engine: Engine, config: ListenConfig | None = None):
        self.config = config or ListenConfig()
        self.recorder = Recorder(engine, self.config.unknown_nodes)
        self.parser = LineParser(self.recorder.catalogue(), self.config.mapping, self.config.format)
        self.stats = ListenStats()
        self._items: list[_Item] = []
        self._oldest = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._closing = False
        self._flush_now = False
        self._last_report = 0.0
        self.failed = False

    @property
    def max_pending(self) -> int:
        return max(50 * self.config.batch_lines, 1000)

    # ---- called from any thread
    def stop(self) -> None:
        """Finish: stop reading, commit what has been read, acknowledge, return."""
        loop = self._loop
        if loop is not None and self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)

    # ---- inside the event loop
    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._stopping.set)

    def _stop_signals(self) -> None:
        if self._loop is not None and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.remove_signal_handler(sig)

    async def _line(self, source: _Source, raw: bytes | None) -> None:
        source.lineno += 1
        self.stats.lines += 1
        records: list[Record] = []
        try:
            if raw is None:
                raise BadLine(f"line longer than {MAX_LINE} bytes")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadLine("not UTF-8 text") from None
            records = self.parser.parse(text)
        except BadLine as exc:
            self.stats.bad += 1
            shown = "<too long>" if raw is None else raw[:200].decode("utf-8", "replace").strip()
            log.warning("%s line %d skipped: %s: %r", source.name, source.lineno, exc, shown)
            source.reply(f"ERR {source.lineno} {exc}")
        assert self._loop is not None and self._wake is not None and self._room is not None
        if not self._items:
            self._oldest = self._loop.time()
        self._items.append(_Item(source, source.lineno, records))
        if len(self._items) == 1 or len(self._items) >= self.config.batch_lines:
            self._wake.set()  # the first line starts the batch clock; a full batch goes now
        if len(self._items) >= self.max_pending:
            # The database is not keeping up (or is down): stop reading until it does.
            self._room.clear()
            await self._room.wait()

    async def _writer(self) -> None:
        assert self._loop is not None and self._wake is not None and self._room is not None
        backoff = 0.5
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            age = self._loop.time() - self._oldest
            full = len(self._items) >= self.config.batch_lines
            if not (full or self._closing or self._flush_now) and age < self.config.batch_seconds:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.batch_seconds - age)
                continue
            batch, self._items = self._items, []
            self._flush_now = False
            try:
                await self._commit(batch)
                backoff = 0.5
            except Exception as exc:
                self._items = batch + self._items
                self._oldest = self._loop.time()
                if self._closing and backoff > 8:
                    self.failed = True
                    log.error(
                        "giving up at shutdown: %d lines were not stored and not acknowledged "
                        "(%s); their senders must send them again",
                        len(self._items),
                        exc,
                    )
                    self._items = []
                    return
                log.error("cannot store readings (will retry in %.1f s): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._room.set()

    async def _commit(self, batch: list[_Item]) -> None:
        records: list[Record] = []
        owners: list[_Item] = []
        for item in batch:
            records.extend(item.records)
            owners.extend([item] * len(item.records))
        refused = await asyncio.to_thread(self.recorder.write_isolating, records)
        refused_lines: dict[tuple[int, int], str] = {}
        for i, reason in refused.items():
            item = owners[i]
            refused_lines.setdefault((id(item.source), item.lineno), reason)
        stored = len(records) - len(refused)
        self.stats.readings += stored
        self.stats.commits += 1
        self.stats.bad += len(refused_lines)
        done: dict[int, tuple[_Source, int]] = {}
        for item in batch:
            why = refused_lines.pop((id(item.source), item.lineno), "")
            if why:
                log.warning("%s line %d refused: %s", item.source.name, item.lineno, why)
                item.source.reply(f"ERR {item.lineno} {why}")
            done[id(item.source)] = (item.source, item.lineno)
        for source, lineno in done.values():
            source.acked = max(source.acked, lineno)
            source.reply(f"OK {source.acked}")
        log.debug("committed %d readings from %d lines", stored, len(batch))
        assert self._loop is not None
        if self._loop.time() - self._last_report >= 60:
            self._last_report = self._loop.time()
            self._report("so far")

    def _report(self, when: str) -> None:
        s = self.stats
        log.info(
            "%s: %d lines, %d readings stored, %d lines skipped, %d commits",
            when,
            s.lines,
            s.readings,
            s.bad,
            s.commits,
        )

    async def _feed(self, source: _Source, read: Callable[[], Awaitable[bytes]]) -> None:
        """Read chunks with ``read`` until EOF; handle each line."""
        while True:
            data = await read()
            if not data:
                break
            for line in source.split(data):
                await self._line(source, line)
        for line in source.tail():
            await self._line(source, line)

    async def _finish(self, writer_task: asyncio.Task[None]) -> None:
        assert self._wake is not None
        self._closing = True
        self._wake.set()
        await writer_task
        self._report("stopped")

    # ---- public entry points (coroutines)
    async def serve_tcp(
        self,
        host: str | None = None,
        port: int | None = None,
        ready: Callable[[str, int], None] | None = None,
    ) -> ListenStats:
        """Accept clients on ``host:port`` until :meth:`stop` or SIGTERM/SIGINT."""
        self._start()
        stopping = self._stopping
        assert stopping is not None
        host = host or self.config.host
        port = self.config.port if port is None else port
        readers: set[asyncio.Task[None]] = set()
        sources: dict[asyncio.StreamWriter, _Source] = {}

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "client"

            def send(text: str) -> None:
                if writer.is_closing():
                    return
                if writer.transport.get_write_buffer_size() < ACK_BUFFER_LIMIT:
                    writer.write(text.encode())

            source = _Source(name, None if writer.is_closing() else send)
            sources[writer] = source
            task = asyncio.current_task()
            assert task is not None
            readers.add(task)
            log.debug("%s connected", name)
            try:
                await self._feed(source, lambda: reader.read(65536))
                # EOF: commit now so the client's last lines are acknowledged before we close.
                await self._drain_source(source)
            except asyncio.CancelledError:
                pass
            except ConnectionError as exc:
                log.debug("%s: %s", name, exc)
            finally:
                readers.discard(task)
                # When stopping, keep it open: the final commit's OK still has to reach it.
                if not stopping.is_set():
                    writer.close()
                    sources.pop(writer, None)

        writer_task = asyncio.create_task(self._writer())
        try:
            server = await asyncio.start_server(client, host, port)
        except OSError as exc:
            writer_task.cancel()
            self._stop_signals()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        sock = server.sockets[0].getsockname()
        log.info("listening on %s:%d", sock[0], sock[1])
        if ready is not None:
            ready(str(sock[0]), int(sock[1]))
        try:
            await stopping.wait()
        finally:
            server.close()
            for task in list(readers):
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await self._finish(writer_task)
            for writer in list(sources):
                writer.close()
            # Let the final OKs leave before the event loop goes away.
            closing = [w.wait_closed() for w in sources]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
            await server.wait_closed()
            self._stop_signals()
        return self.stats

    async def _drain_source(self, source: _Source) -> None:
        """Wait until every line read from ``source`` is committed (and acknowledged)."""
        assert self._wake is not None
        while source.acked < source.lineno and not self._closing:
            self._flush_now = True
            self._wake.set()
            await asyncio.sleep(0.01)

    async def serve_stream(self, stream: BinaryIO, out: BinaryIO | None = None) -> ListenStats:
        """Read lines from ``stream`` (stdin) until EOF or :meth:`stop`; acks go to ``out``."""
        self._start()
        assert self._stopping is not None

        def send(text: str) -> None:
            assert out is not None
            out.write(text.encode())
            out.flush()

        source = _Source("stdin", send if out is not None else None)
        writer_task = asyncio.create_task(self._writer())
        loop = asyncio.get_running_loop()
        read: Callable[[], Awaitable[bytes]]
        transport: asyncio.BaseTransport | None = None
        mode = os.fstat(stream.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stream.isatty()):
            # Files (and /dev/null) cannot be polled; reading them never blocks for long.
            async def read_file() -> bytes:
                return stream.read(65536) or b""

            read = read_file
        else:
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), stream
            )
            read = lambda: reader.read(65536)  # noqa: E731
        feeding = asyncio.create_task(self._feed(source, read))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({feeding, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            feeding.cancel()
            stopping.cancel()
            await asyncio.gather(feeding, stopping, return_exceptions=True)
            await self._finish(writer_task)
            if transport is not None:
                transport.close()
            self._stop_signals()
        return self.stats
