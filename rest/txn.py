"""Write transactions that survive the deadlocks concurrent clients cause.

Two base stations creating the same rows at the same moment can deadlock on
MySQL/MariaDB and PostgreSQL; the database aborts one of them, and running it
again is the documented cure. Reads need none of this.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from base.db import write_engine

T = TypeVar("T")
log = logging.getLogger("cogent.rest.txn")

_MYSQL_RETRY = {1205, 1213}  # lock wait timeout, deadlock
_PG_RETRY = {"40001", "40P01"}  # serialization failure, deadlock


def is_retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None)
    if code in _PG_RETRY:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return len(args) > 0 and args[0] in _MYSQL_RETRY


def run_write(engine: Engine, work: Callable[[Connection], T], attempts: int = 6) -> T:
    """Run ``work`` in one write transaction, again from scratch after a deadlock."""
    eng = write_engine(engine)
    for attempt in range(1, attempts + 1):
        try:
            with eng.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            log.info("transaction aborted by the database (%s); retry %d", exc.orig, attempt)
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")
