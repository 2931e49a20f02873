"""Admission control: at most N batches applied at once in one worker; beyond that the server
answers ``429`` with ``Retry-After`` at once instead of queueing without bound (the pusher
waits as asked, with jitter, and counts it as "server busy").

The count is per worker process (``--workers N`` admits up to N times ``--max-batches``); every
other piece of server state lives in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rest.errors import ApiError

RETRY_AFTER_SECONDS = 2


class Admission:
    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0  # changed only on the event loop's thread: no lock needed

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold one of the ``limit`` places while a batch is applied, or raise 429."""
        if self.active >= self.limit:
            raise ApiError(
                429,
                f"server busy: {self.active} batches are being applied (at most {self.limit} "
                f"at once); send this one again in {RETRY_AFTER_SECONDS} s",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
