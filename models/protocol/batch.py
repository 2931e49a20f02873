"""The batch formats' constants and errors, shared by the encoder
(:mod:`models.protocol.encode`, the pusher's) and the decoder (:mod:`models.protocol.decode`,
the server's). docs/PROTOCOL.md describes the bytes."""

from __future__ import annotations

import lzma
from collections.abc import Iterable
from typing import Final

FORMAT: Final = "cogent-batch/1"  # columnar JSON
FORMAT_V2: Final = "cogent-batch/2"  # binary integer columns, compressed
MAGIC_V2: Final = b"cogent-batch/2\n"
CONTENT_TYPE_V2: Final = "application/vnd.cogent-batch"

# Codecs of the format 2 envelope.
CODEC_NONE: Final = 0
CODEC_ZLIB: Final = 1
CODEC_LZMA2: Final = 2
LZMA2_DICT: Final = 1 << 20  # the decoder's dictionary; the encoder must not use a larger one
LZMA2_FILTERS: Final = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": LZMA2_DICT}]

# Column modes.
PLAIN: Final = 0xFF  # integer column: each value as a zigzag varint
IEEE: Final = 0xFF  # value column: raw IEEE-754 doubles in 8 byte planes
WITH_NULLS: Final = 0xFE  # value column: a bitmap of the non-NULL values, then their column
MAX_SCALE: Final = 9  # largest decimal scale of a value column

# Rows in one batch, whatever its format: the pusher sends `pushlimit` (default 5,000) at a
# time; a million is far past any real batch and bounds the memory and CPU of one request.
MAX_BATCH_ROWS: Final = 1_000_000


class MalformedBatch(ValueError):
    """The body is not a well-formed batch; the message says where (``valid``: the names
    that would have been accepted, when a name was wrong)."""

    def __init__(self, message: str, valid: Iterable[str] | None = None):
        super().__init__(message)
        self.valid = sorted(valid) if valid is not None else None


class BatchTooLarge(ValueError):
    """The body would expand past what the receiver accepts."""

    def __init__(self, limit: int | None, message: str | None = None):
        super().__init__(
            message
            or f"request body, once decompressed, is larger than this server's limit of "
            f"{limit} bytes; send smaller batches (the server's --max-body sets the limit)")
        self.limit = limit
