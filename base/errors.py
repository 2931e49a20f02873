"""The one exception hierarchy of cogent-sync.

Every failure is either *transient* (retry with backoff: the network, a
remote that is down, a locked database) or *permanent* (retrying the same
thing cannot help: bad configuration, a schema mismatch, a rejected key).
Messages are written for the person who has to act on them and say what to
do next; the CLIs print them without a traceback.
"""

from __future__ import annotations


class CogentError(Exception):
    """Base class of every error this project raises on purpose."""


class TransientError(CogentError):
    """Worth retrying later: the same call may well succeed."""


class PermanentError(CogentError):
    """Retrying the same thing cannot succeed; a person has to change something."""


class ConfigError(PermanentError):
    """The configuration file or an option is missing, malformed or out of range."""

    def __init__(self, message: str, *, section: str | None = None, key: str | None = None):
        where = ""
        if section and key:
            where = f"[{section}] {key}: "
        elif section:
            where = f"[{section}]: "
        super().__init__(where + message)
        self.reason = message
        self.section = section
        self.key = key


class DatabaseUnavailable(TransientError):
    """The database could not be reached or was locked for too long."""


class RemoteUnavailable(TransientError):
    """A remote server did not answer, timed out, or answered 5xx/429."""


class RemoteBusy(RemoteUnavailable):
    """The remote said it is busy (429 or 503 with Retry-After): wait that long, then again."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class RemoteRejected(PermanentError):
    """A remote refused the request itself (4xx other than 408/429)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BadReply(RemoteRejected):
    """The remote answered, but not as a cogent-sync server does: a redirect, an HTML page,
    a reply too large, or an acknowledgement that does not account for what was sent."""


class AuthError(RemoteRejected):
    """The key was missing, wrong, revoked, or not allowed to do this."""


class SchemaMismatch(PermanentError):
    """The two sides' schema revisions differ; one side needs ``alembic upgrade head``."""


class AlreadyRunning(PermanentError):
    """Another pusher already holds the lock for this database."""
