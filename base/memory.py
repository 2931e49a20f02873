"""Keeping a long-running daemon's memory small on a small base station."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas before any thread starts; True if it was done.

    glibc gives threads that allocate at the same time arenas of their own (up to eight
    per core); the pusher's sender and read-ahead threads then spread the same few
    megabytes of batches over several arenas, each keeping its high-water mark — about
    6 MiB more peak memory on a catch-up (docs/BENCHMARKS.md). Elsewhere (musl, macOS),
    or when ``MALLOC_ARENA_MAX`` is set by the operator, nothing is changed.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
