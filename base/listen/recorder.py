"""Storing parsed readings: one transaction per batch, each node's location resolved."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine, Table, select
from sqlalchemy.exc import DataError, IntegrityError

from base.db import write_engine
from base.errors import ConfigError
from base.ingest import READING, sensor_type_ids
from base.listen.lines import Record
from base.listen.settings import SECTION, UNKNOWN_NODES
from models import Node
from models.sql import insert_ignoring_duplicates

log = logging.getLogger("cogent.listen")


class Recorder:
    """Writes readings in one transaction per batch, resolving each node's location.

    A node id the database has never seen is created with no location (as
    Cogent-house's logger did: an installer places it later) when
    ``unknown_nodes`` is ``create``; with ``reject`` its lines are refused.
    """

    def __init__(self, engine: Engine, unknown_nodes: str = "create"):
        if unknown_nodes not in UNKNOWN_NODES:
            raise ConfigError(f"unknown_nodes {unknown_nodes!r}: use create or reject")
        self.engine = engine
        self.unknown_nodes = unknown_nodes

    def catalogue(self) -> dict[int, str]:
        with self.engine.connect() as conn:
            return sensor_type_ids(conn)

    def write_isolating(self, records: Sequence[Record]) -> dict[int, str]:
        """Like :meth:`write`, but a record the database refuses is set aside, not retried.

        Such a record (a reference deleted meanwhile, a value the backend cannot
        hold) would otherwise fail its whole batch forever and wedge the
        listener; the rest are then written one by one so only it is lost.
        """
        try:
            return self.write(records)
        except (IntegrityError, DataError) as exc:
            log.warning("batch refused by the database (%s); storing its lines one by one", exc)
        refused: dict[int, str] = {}
        for i, record in enumerate(records):
            try:
                if self.write([record]):
                    refused[i] = f"unknown node {record.node} ([{SECTION}] unknown_nodes = reject)"
            except (IntegrityError, DataError) as exc:
                first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
                refused[i] = f"the database refused it: {first}"
        return refused

    def write(self, records: Sequence[Record]) -> dict[int, str]:
        """Store ``records``; return {index: reason} of those refused. Duplicates are skipped."""
        if not records:
            return {}
        nodes: Table = Node.__table__  # type: ignore[assignment]
        wanted = sorted({r.node for r in records})
        refused: dict[int, str] = {}
        with write_engine(self.engine).begin() as conn:
            located: dict[int, int | None] = {}
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                for row in conn.execute(
                    select(nodes.c.id, nodes.c.locationId).where(nodes.c.id.in_(chunk))
                ):
                    located[int(row.id)] = row.locationId
            unknown = [n for n in wanted if n not in located]
            if unknown and self.unknown_nodes == "create":
                insert_ignoring_duplicates(conn, nodes, [{"id": n} for n in unknown])
                for n in unknown:
                    located[n] = None
                log.info("created node(s) %s with no location", ", ".join(map(str, unknown)))
            rows = []
            for i, r in enumerate(records):
                if r.node not in located:
                    refused[i] = f"unknown node {r.node} ([{SECTION}] unknown_nodes = reject)"
                    continue
                rows.append(
                    {
                        "time": r.time,
                        "nodeId": r.node,
                        "type": r.type,
                        "locationId": located[r.node],
                        "value": r.value,
                    }
                )
            insert_ignoring_duplicates(conn, READING, rows)
        return refused
