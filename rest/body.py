"""Request bodies: size-limited, gzip decompressed incrementally, parsed with orjson.

Neither Content-Length nor the gzip trailer is trusted: the limit is counted on
the bytes actually received and on the bytes actually produced by decompression,
so a small compressed body cannot expand past the limit (a "gzip bomb").

A binary ``cogent-batch/2`` body (its Content-Type, or its magic first bytes) is
not JSON: :func:`read_json` hands it on as a :class:`BinaryBatch`, which
:func:`rest.batch.parse_batch` decodes (with the same limit on what it expands to).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from models.protocol.batch import CONTENT_TYPE_V2, MAGIC_V2
from rest.errors import ApiError, bad_request


@dataclass(frozen=True)
class BinaryBatch:
    """A ``cogent-batch/2`` body, still encoded; ``limit`` bounds what it may expand to."""

    data: bytes
    limit: int


DEFAULT_BODY_TIMEOUT = 60.0

# After refusing a body, read (and discard) up to this much more so that the client,
# still sending, gets the 413 instead of a reset connection.
DRAIN_LIMIT = 8 * 1024 * 1024


def too_large(limit: int, what: str = "body") -> ApiError:
    return ApiError(
        413,
        f"request {what} is larger than this server's limit of {limit} bytes; "
        f"send smaller batches (the server's --max-body sets the limit)",
    )


async def _drain(request: Request, received: int, limit: int) -> None:
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + DRAIN_LIMIT:
                return
    except Exception:  # the client went away: nothing left to be polite to
        return


# Concatenated gzip members are one gzip stream, but every member costs a decoder and a copy
# of what follows it: 30 MiB of empty members took seconds of CPU. Clients send one.
MAX_GZIP_MEMBERS = 1000


class _Gunzip:
    """Incremental gzip decoder with a hard cap on its output and on its members."""

    def __init__(self, limit: int):
        self.limit = limit
        self.out = bytearray()
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False
        self._members = 0

    def feed(self, data: bytes) -> bool:
        """Decode ``data``; False once the output would pass the limit."""
        while data:
            self._in_member = True
            room = self.limit - len(self.out) + 1
            try:
                piece = self._d.decompress(data, room)
            except zlib.error as exc:
                raise bad_request(f"body is not valid gzip ({exc})") from None
            self.out += piece
            if len(self.out) > self.limit:
                return False
            if self._d.eof:
                self._members += 1
                if self._members >= MAX_GZIP_MEMBERS and self._d.unused_data:
                    raise bad_request(f"gzip body of more than {MAX_GZIP_MEMBERS} members; "
                                      f"compress the body as one")
                data = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
            else:
                data = self._d.unconsumed_tail
        return True

    def finish(self) -> bytes:
        if self._in_member:
            raise bad_request("gzip body is truncated; send the whole compressed body")
        return bytes(self.out)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed; 413 past ``limit``, 415 for an unknown encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise ApiError(
            415,
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _drain(request, 0, int(declared))
        raise too_large(limit)
    gunzip = _Gunzip(limit) if encoding in ("gzip", "x-gzip") else None
    raw = bytearray()
    received = 0
    async for chunk in _within(request, _body_timeout(request)):
        received += len(chunk)
        if received > limit:
            await _drain(request, received, limit)
            raise too_large(limit)
        if gunzip is None:
            raw += chunk
        elif not gunzip.feed(chunk):
            await _drain(request, received, limit)
            raise too_large(limit, "body, once decompressed,")
    if gunzip is None:
        return bytes(raw)
    if received == 0:
        return b""
    return gunzip.finish()


def _body_timeout(request: Request) -> float:
    state = getattr(request.app.state, "cogent", None)
    return float(getattr(getattr(state, "settings", None), "body_timeout", DEFAULT_BODY_TIMEOUT))


async def _within(request: Request, seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks, all of them within ``seconds``: a client that sends its body a byte
    at a time cannot hold a connection (and a worker's attention) for long — 408."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408, f"the request body did not arrive within {seconds:g} s; send it at once "
                     f"(the server's --body-timeout sets the limit)") from None
        yield chunk


# Elements (counted by their commas, before parsing) a JSON body may hold: a batch of the
# largest size (a million node states of five values each) fits; 8 million zeros in a 15 KB
# gzip body, which made the parser allocate 240 MiB before the batch was refused, do not.
MAX_JSON_ELEMENTS = 6_000_000


def parse_json(data: bytes) -> Any:
    """Parse JSON; NaN and Infinity are accepted so that such values can be refused per row."""
    if not data.strip():
        raise bad_request("the request body is empty; send a JSON document")
    if data.count(b",") > MAX_JSON_ELEMENTS:
        raise ApiError(413, f"the body holds more than {MAX_JSON_ELEMENTS} JSON elements; "
                            f"send smaller batches (pushlimit)")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as first:
        try:
            # orjson refuses NaN/Infinity, which other JSON writers emit for bad sensor values.
            return json.loads(data)
        except (ValueError, RecursionError):
            raise bad_request(f"the body is not valid JSON: {first}") from None


def is_binary_batch(content_type: str | None, data: bytes) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == CONTENT_TYPE_V2 or data.startswith(MAGIC_V2)


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body, or a :class:`BinaryBatch` for a binary batch body."""
    data = await read_body(request, limit)
    if is_binary_batch(request.headers.get("content-type"), data):
        return BinaryBatch(data, limit)
    if len(data) < 4096:  # a thread hop costs more than parsing a small body
        return parse_json(data)
    return await run_in_threadpool(parse_json, data)
