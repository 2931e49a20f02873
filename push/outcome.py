"""Exit codes of ``RestPusher.py``: what a run achieved, as one number a script can act on.

The table in docs/OPERATIONS.md is this module in prose. When several things went
wrong (two remotes, two different failures) the code is the one that comes first in
:data:`PRECEDENCE`: what a person must fix before what fixes itself, and anything
before "rows were set aside".
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from sqlalchemy.exc import DBAPIError

from base.errors import (
    AlreadyRunning,
    AuthError,
    ConfigError,
    DatabaseUnavailable,
    RemoteUnavailable,
    SchemaMismatch,
)


class Exit(IntEnum):
    OK = 0
    FAILED = 1  # once: another failure; status: behind (backlog) or a house differs
    USAGE = 2  # configuration or command-line error
    SET_ASIDE = 3  # once: rows newly set aside this run; status: rows are set aside
    UNREACHABLE = 4  # network, timeout, the server answered 5xx
    KEY_REFUSED = 5  # the server refused the key (missing, wrong, revoked, not allowed)
    SCHEMA = 6  # the two schema revisions differ (either side), or the local one is not head
    LOCAL_DATABASE = 7  # the local database cannot be opened or used
    ALREADY_RUNNING = 8  # another pusher holds the lock on this database
    INTERRUPTED = 130  # Ctrl-C / SIGINT / SIGTERM before the work was done

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS = {
    Exit.OK: "every enabled remote was reached, took the key and took everything",
    Exit.FAILED: "a remote failed for another reason (see the message)",
    Exit.USAGE: "configuration or usage error",
    Exit.SET_ASIDE: "rows were set aside ('RestPusher.py status' lists them)",
    Exit.UNREACHABLE: "a remote could not be reached",
    Exit.KEY_REFUSED: "a remote refused the key",
    Exit.SCHEMA: "schema revisions differ",
    Exit.LOCAL_DATABASE: "the local database cannot be used",
    Exit.ALREADY_RUNNING: "another pusher is working on this database",
    Exit.INTERRUPTED: "interrupted",
}

PRECEDENCE = (
    Exit.INTERRUPTED,
    Exit.USAGE,
    Exit.LOCAL_DATABASE,
    Exit.ALREADY_RUNNING,
    Exit.SCHEMA,
    Exit.KEY_REFUSED,
    Exit.UNREACHABLE,
    Exit.FAILED,
    Exit.SET_ASIDE,
    Exit.OK,
)


def for_failure(kind: type[BaseException] | None) -> Exit:
    """The exit code of a failure of this exception class (None: unknown, a bug)."""
    if kind is None:
        return Exit.FAILED
    for cls, code in (
        (ConfigError, Exit.USAGE),
        (DatabaseUnavailable, Exit.LOCAL_DATABASE),
        (DBAPIError, Exit.LOCAL_DATABASE),  # the pusher talks to no other database
        (AlreadyRunning, Exit.ALREADY_RUNNING),
        (SchemaMismatch, Exit.SCHEMA),
        (AuthError, Exit.KEY_REFUSED),
        (RemoteUnavailable, Exit.UNREACHABLE),
        (KeyboardInterrupt, Exit.INTERRUPTED),
    ):
        if issubclass(kind, cls):
            return code
    return Exit.FAILED


def worst(codes: Iterable[Exit]) -> Exit:
    """The code that comes first in :data:`PRECEDENCE`; OK for none."""
    found = set(codes)
    for code in PRECEDENCE:
        if code in found:
            return code
    return Exit.OK
