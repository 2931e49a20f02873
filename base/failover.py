"""One engine over the nodes of a multi-primary cluster (MariaDB Galera), failing over
between them.

Every new connection goes to the node in use (the first of the list at start). When that
node cannot be reached, or answers but is not a synced member of the cluster's primary
component (``wsrep_ready`` OFF: it is joining, or cut off from the majority), the next
node of the list is tried, and the first that works becomes the node in use. Connections
stay on one node at a time rather than spread over all: writes of one server through one
node never conflict with each other in Galera's certification, only with other servers'.

Connections already open to a node that dies fail with the request they serve (the
server answers 503 + Retry-After, which a pusher retries); SQLAlchemy then empties the
pool, and the next connections are made here, on a live node.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import URL, Engine, event
from sqlalchemy.engine import ExceptionContext

from base.db import make_engine, normalise_url, redact
from base.errors import ConfigError

log = logging.getLogger("cogent.db")

# "WSREP has not yet prepared node for application use": a Galera node outside the primary
# component. Not a broken connection to MySQL's eyes, so the pool would keep it for ever.
MYSQL_NODE_NOT_READY = 1047


class NodeChooser:
    """Which node new connections go to; moves on when that node fails."""

    def __init__(self, names: Sequence[str], open_node: Callable[[int], Any],
                 not_ready: Callable[[Any], str | None], dbapi: Any):
        self.names = list(names)
        self.open_node = open_node
        self.not_ready = not_ready
        self.dbapi = dbapi  # the driver's module: its Error and OperationalError classes
        self.current = 0
        self._lock = threading.Lock()

    def connect(self) -> Any:
        """A DBAPI connection to the node in use, else to the next one that works."""
        start = self.current
        failures: list[str] = []
        last: Exception | None = None
        for step in range(len(self.names)):
            i = (start + step) % len(self.names)
            try:
                conn = self.open_node(i)
            except self.dbapi.Error as exc:
                last = exc
                failures.append(f"{self.names[i]}: {exc}")
                continue
            try:
                why = self.not_ready(conn)
            except self.dbapi.Error as exc:  # it died while being asked
                last, why = exc, str(exc)
            if why is not None:
                with contextlib.suppress(self.dbapi.Error):
                    conn.close()
                failures.append(f"{self.names[i]}: {why}")
                continue
            if i != start:
                with self._lock:
                    moved = self.current != i
                    self.current = i
                if moved:
                    log.warning("database node %s unusable (%s); new connections go to %s",
                                self.names[start], "; ".join(failures), self.names[i])
            return conn
        message = "no database node is usable: " + "; ".join(failures)
        code = getattr(last, "args", (MYSQL_NODE_NOT_READY,))[:1]
        if code and isinstance(code[0], int):  # MySQL drivers: (errno, message)
            raise self.dbapi.OperationalError(code[0], message)
        raise self.dbapi.OperationalError(message)


def galera_not_ready(conn: Any) -> str | None:
    """Why a MariaDB/MySQL connection's node must not be used, or None. A server without
    Galera (``wsrep_on`` OFF) is always usable."""
    cur = conn.cursor()
    try:
        cur.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        row = cur.fetchone()
        if row is None or str(row[1]).upper() != "ON":
            return None
        cur.execute("SHOW STATUS LIKE 'wsrep_local_state_comment'")
        state = cur.fetchone()
        cur.execute("SHOW STATUS LIKE 'wsrep_ready'")
        ready = cur.fetchone()
    finally:
        cur.close()
    if ready is not None and str(ready[1]).upper() == "ON":
        return None
    return f"Galera node not ready ({state[1] if state else 'state unknown'})"


def make_cluster_engine(urls: Sequence[str | URL], **kwargs: Any) -> Engine:
    """An engine for ``urls``: the nodes of one cluster, same database and credentials
    (one URL: an ordinary engine). Keywords as for :func:`base.db.make_engine`."""
    if not urls:
        raise ConfigError("no database URL given")
    if len(urls) == 1:
        return make_engine(urls[0], **kwargs)
    nodes = [normalise_url(u) for u in urls]
    backends = {u.get_backend_name() for u in nodes}
    if len(backends) != 1 or "sqlite" in backends:
        raise ConfigError(
            "several database URLs must be nodes of one MariaDB/MySQL or PostgreSQL cluster "
            f"(same backend, not SQLite); got {', '.join(redact(u) for u in nodes)}")
    if len({u.database for u in nodes}) != 1:
        raise ConfigError("the nodes' URLs name different databases: "
                          + ", ".join(redact(u) for u in nodes))
    engine = make_engine(nodes[0], **kwargs)
    dialect = engine.dialect
    per_node = [dialect.create_connect_args(u) for u in nodes]
    first_params = per_node[0][1]
    extras: dict[str, Any] = {}
    is_mysql = dialect.name in ("mysql", "mariadb")

    def open_node(i: int) -> Any:
        cargs, cparams = per_node[i]
        return dialect.connect(*cargs, **{**cparams, **extras})

    chooser = NodeChooser(
        [f"{u.host}:{u.port}" if u.port else str(u.host) for u in nodes], open_node,
        galera_not_ready if is_mysql else (lambda _conn: None), dialect.loaded_dbapi)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> Any:
        # What the engine adds to the first URL's parameters (connect_args such as the
        # session time zone) goes to every node.
        extras.update({k: v for k, v in cparams.items() if first_params.get(k) != v})
        return chooser.connect()

    if is_mysql:
        @event.listens_for(engine, "handle_error")
        def _not_ready_is_gone(context: ExceptionContext) -> None:
            code = getattr(context.original_exception, "args", (None,))[:1]
            if code == (MYSQL_NODE_NOT_READY,):
                context.is_disconnect = True

    return engine
