"""Adopting a Cogent-house database: its rows, in our schema, in place.

Cogent-house (github jbrusey/cogent-house) databases sit at one of the original
project's Alembic revisions, or at none when its BaseLogger made the tables with
``create_all``. They cannot be upgraded revision by revision (their chain is not ours),
so adoption works on what is there, whatever the revision:

1. :func:`prepare_adoption` (run by ``migrations/env.py`` before any revision) moves
   the tables we model aside, as ``cogent_original_<Table>``, and forgets the original
   revision; Alembic then builds our schema from revision 0001, as on an empty database.
2. Revision 0006 calls :func:`copy_original`, which copies every row across, ids kept,
   whatever columns that revision had (houses and rooms from before ``Location``
   existed, NodeState with or without ``id``, readings stored as single-precision
   FLOAT), and drops each original table once all its rows are in.

Tables we do not model (Weather, Event, Occupier, NodeBoot, PushStatus, Server, ...)
are left as they are. Foreign keys from them to the tables we replace are dropped on
MySQL (their rows are kept; the ids they hold still mean the same rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, inspect, text
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

LOG = logging.getLogger("alembic.adopt")

PREFIX = "cogent_original_"

# The original project's revisions: its master chain, the "flat"/webinterface branch with
# its merge, and the car-sensing line's fresh start.
ORIGINAL_REVISIONS = frozenset({
    "4a90237e5674", "31851b4865f1", "406589edcb82", "249f360e32e3", "25a5ee59d391",
    "1f9a02a1b28", "1414b56f7f1", "4f51a320d6b6", "2e63cc74b5ad", "3a4338e38dea",
    "10d37b0cf10e", "1ce218cedfbd", "53bab55be06", "162edc9b6f88", "579fffd63c6e",
    "fb241d5c070", "4819f05fdf1c", "303009329387", "1eba4fe66575", "1fcb107574ff",
    "29e48346aca2", "2b40fc51f91e", "1dce0115d073",
    "1a04848f8857", "b90c0470e9da",
    "13037206f335",
})

# Parents before children.
MODELED = ("SensorType", "NodeType", "RoomType", "Deployment", "Room", "House", "Location",
           "Node", "Sensor", "Reading", "NodeState")


class AdoptionError(Exception):
    """The database cannot be adopted as it is; the message says why and what to do."""


@dataclass
class Copied:
    table: str
    source: int
    copied: int
    why_not: str = ""


@dataclass
class AdoptionReport:
    tables: list[Copied] = field(default_factory=list)

    def kept(self) -> list[Copied]:
        return [t for t in self.tables if t.copied < t.source]


def stored_revisions(conn: Connection) -> list[str]:
    if "alembic_version" not in inspect(conn).get_table_names():
        return []
    return [str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def is_original(conn: Connection) -> bool:
    """True for a Cogent-house database not yet adopted (or one whose adoption was
    interrupted before our schema was built)."""
    tables = set(inspect(conn).get_table_names())
    stored = stored_revisions(conn)
    if stored:
        return all(r in ORIGINAL_REVISIONS for r in stored)
    moved_aside = any(t.startswith(PREFIX) for t in tables)
    return ("Reading" in tables and "SyncSequence" not in tables) or (
        moved_aside and "SyncSequence" not in tables
    )


def prepare_adoption(conn: Connection) -> bool:
    """Move a Cogent-house database's tables aside so that our revisions can run; False
    (nothing done) for any other database."""
    if not is_original(conn):
        return False
    dialect = conn.dialect.name
    if dialect not in ("mysql", "mariadb", "sqlite"):
        raise AdoptionError(
            f"this looks like a Cogent-house database, which is adopted from MySQL/MariaDB "
            f"or SQLite, not {dialect}; copy it into MySQL first")
    stored = stored_revisions(conn) or ["none (tables made by BaseLogger)"]
    LOG.info("adopting a Cogent-house database at revision %s: its tables are moved "
             "aside as %s<Table> and copied into the current schema", ", ".join(stored), PREFIX)
    tables = set(inspect(conn).get_table_names())
    quote = conn.dialect.identifier_preparer.quote
    if dialect == "sqlite":
        # Other tables' references keep naming "House", which will be our House.
        conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    else:
        _drop_foreign_keys_into(conn, [t for t in MODELED if t in tables])
    for name in MODELED:
        if name in tables and PREFIX + name not in tables:
            if dialect == "sqlite":
                for ix in inspect(conn).get_indexes(name):  # index names are per database
                    if ix.get("name"):
                        conn.exec_driver_sql(f"DROP INDEX {quote(str(ix['name']))}")
            conn.exec_driver_sql(f"ALTER TABLE {quote(name)} RENAME TO {quote(PREFIX + name)}")
    if dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
    if "alembic_version" in tables:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    return True


def _drop_foreign_keys_into(conn: Connection, modeled: list[str]) -> None:
    refs = conn.execute(text(
        "SELECT DISTINCT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL")).all()
    quote = conn.dialect.identifier_preparer.quote
    for table, constraint, referred in refs:
        if referred in modeled and table not in modeled:
            LOG.info("dropping foreign key %s of %s (it refers to %s, which is replaced; "
                     "its rows are kept)", constraint, table, referred)
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table)} DROP FOREIGN KEY {quote(constraint)}")


class _Sql:
    """SQL fragments for one connection's dialect and one original table's columns."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.mysql = conn.dialect.name in ("mysql", "mariadb")
        self.q = conn.dialect.identifier_preparer.quote
        names = set(inspect(conn).get_table_names())
        self.original = {n for n in MODELED if PREFIX + n in names}
        self.columns: dict[str, dict[str, TypeEngine[object]]] = {
            n: {c["name"]: c["type"] for c in inspect(conn).get_columns(PREFIX + n)}
            for n in self.original
        }

    def src(self, table: str) -> str:
        return self.q(PREFIX + table)

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, {})

    def col(self, table: str, column: str, alias: str = "o") -> str:
        if not self.has(table, column):
            return "NULL"
        ref = f"{alias}.{self.q(column)}"
        kind = self.columns[table][column]
        if self.mysql and isinstance(kind, mysql.FLOAT) and not isinstance(kind, mysql.DOUBLE):
            return _shortest_single(ref)
        return ref

    def cat(self, *parts: str) -> str:
        return f"CONCAT({', '.join(parts)})" if self.mysql else " || ".join(parts)

    def count(self, sql_from: str) -> int:
        return int(self.conn.execute(text(f"SELECT COUNT(*) FROM {sql_from}")).scalar_one())

    def run(self, sql: str) -> None:
        self.conn.execute(text(sql))

    def insert_ignore(self) -> str:
        return "INSERT IGNORE INTO" if self.mysql else "INSERT OR IGNORE INTO"


def _shortest_single(ref: str) -> str:
    """The double nearest the shortest decimal (6 to 9 digits) that reads back as the same
    single-precision value: a stored 21.3 becomes 21.3, not 21.299999237060547 (so it
    still encodes in two bytes a reading). Values beyond what DECIMAL holds keep their
    exact single-precision value."""
    def rounded(digits: int) -> str:
        return (f"CAST(ROUND(CAST({ref} AS DECIMAL(65,30)), "
                f"{digits - 1} - FLOOR(LOG10(ABS({ref})))) AS DOUBLE)")
    tries = " ".join(
        f"WHEN CAST({rounded(d)} AS FLOAT) = {ref} THEN {rounded(d)}" for d in (6, 7, 8, 9)
    )
    return (f"(CASE WHEN {ref} IS NULL THEN NULL WHEN {ref} = 0 THEN 0e0 "
            f"WHEN ABS({ref}) NOT BETWEEN 1e-20 AND 1e30 THEN CAST({ref} AS DOUBLE) "
            f"{tries} ELSE CAST({ref} AS DOUBLE) END)")


def copy_original(conn: Connection) -> AdoptionReport:
    """Copy every row of the tables :func:`prepare_adoption` moved aside into ours."""
    s = _Sql(conn)
    report = AdoptionReport()
    if not s.original:
        return report
    for name, step in _STEPS:
        if name in s.original:
            step(s)
    for name in MODELED:
        if name in s.original:
            source = s.count(s.src(name))
            # Catalogues and nodes may hold more than the original (seeded or referenced
            # rows); every original row of theirs is inserted or the copy fails.
            copied = s.count(s.q(name)) if name in _WHOLE_TABLE else source
            report.tables.append(Copied(name, source, min(copied, source)))
    _finish(s, report)
    return report


def _catalogue(s: _Sql, name: str, select: str, extra_delete: str = "") -> None:
    s.run(f"DELETE FROM {s.q(name)} WHERE id IN (SELECT id FROM {s.src(name)}){extra_delete}")
    s.run(f"INSERT INTO {s.q(name)} {select}")


def _sensor_types(s: _Sql) -> None:
    t = "SensorType"
    _catalogue(s, t, (
        f"(id, name, code, units, c0, c1, c2, c3) SELECT o.id, "
        f"COALESCE(o.name, ''), COALESCE(o.code, ''), COALESCE(o.units, ''), "
        f"COALESCE({s.col(t, 'c0')}, 0), COALESCE({s.col(t, 'c1')}, 1), "
        f"COALESCE({s.col(t, 'c2')}, 0), COALESCE({s.col(t, 'c3')}, 0) FROM {s.src(t)} o"))


def _node_types(s: _Sql) -> None:
    t = "NodeType"
    configured = "CAST(o.configured AS CHAR(64))" if s.has(t, "configured") else "NULL"
    _catalogue(s, t, (
        f"(id, name, period, configured) SELECT o.id, "
        f"COALESCE(o.name, {s.cat(repr('node type '), 'o.id')}), "
        f"COALESCE({s.col(t, 'period')}, 300), {configured} FROM {s.src(t)} o"))


def _unique_name(s: _Sql, table: str, column: str, noun: str, scope: str = "") -> str:
    """The row's name, or — when an earlier row already has it — the name with the row's id,
    so that no row is merged into another. (A NULL scope matches nothing: NULLs are
    distinct in a unique key.)"""
    src, q = s.src(table), s.q(column)
    same = f"o2.{q} = o.{q}" + (f" AND o2.{s.q(scope)} = o.{s.q(scope)}" if scope else "")
    return (f"CASE WHEN o.{q} IS NULL THEN NULL "
            f"WHEN o.id = COALESCE((SELECT MIN(o2.id) FROM {src} o2 WHERE {same}), o.id) "
            f"THEN o.{q} "
            f"ELSE {s.cat(f'o.{q}', repr(f' ({noun} '), 'o.id', repr(')'))} END")


def _room_types(s: _Sql) -> None:
    t = "RoomType"
    name = _unique_name(s, t, "name", "room type")
    _catalogue(s, t, f"(id, name) SELECT o.id, COALESCE({name}, "
                     f"{s.cat(repr('room type '), 'o.id')}) FROM {s.src(t)} o",
               extra_delete=f" OR name IN (SELECT name FROM {s.src(t)} WHERE name IS NOT NULL)")


def _valid(s: _Sql, ref: str, table: str) -> str:
    """``ref`` when it names an existing row of ``table`` (ours), else NULL."""
    return f"CASE WHEN {ref} IN (SELECT id FROM {s.q(table)}) THEN {ref} END"


def _deployments(s: _Sql) -> None:
    t = "Deployment"
    s.run(f"INSERT INTO {s.q(t)} (id, name, description, startDate, endDate) SELECT o.id, "
          f"{_unique_name(s, t, 'name', 'deployment')}, {s.col(t, 'description')}, "
          f"{s.col(t, 'startDate')}, {s.col(t, 'endDate')} FROM {s.src(t)} o")


def _rooms(s: _Sql) -> None:
    t = "Room"
    s.run(f"INSERT INTO {s.q(t)} (id, name, roomTypeId) SELECT o.id, "
          f"{_unique_name(s, t, 'name', 'room')}, {_valid(s, s.col(t, 'roomTypeId'), 'RoomType')} "
          f"FROM {s.src(t)} o")


def _houses(s: _Sql) -> None:
    t = "House"
    s.run(f"INSERT INTO {s.q(t)} (id, deploymentId, address, startDate, endDate) SELECT o.id, "
          f"{_valid(s, s.col(t, 'deploymentId'), 'Deployment')}, "
          f"{_unique_name(s, t, 'address', 'house', scope='deploymentId')}, "
          f"{s.col(t, 'startDate')}, {s.col(t, 'endDate')} FROM {s.src(t)} o")


def _locations(s: _Sql) -> None:
    t = "Location"
    s.run(f"INSERT INTO {s.q(t)} (id, houseId, roomId) SELECT o.id, "
          f"{_valid(s, s.col(t, 'houseId'), 'House')}, {_valid(s, s.col(t, 'roomId'), 'Room')} "
          f"FROM {s.src(t)} o")


def _nodes(s: _Sql) -> None:
    t = "Node"
    if s.has(t, "houseId") and s.has(t, "roomId"):
        # Before Cogent-house had Location, a node named its house and room itself.
        s.run(f"INSERT INTO {s.q('Location')} (houseId, roomId) SELECT DISTINCT o.houseId, "
              f"o.roomId FROM {s.src(t)} o WHERE o.houseId IN (SELECT id FROM {s.q('House')}) "
              f"AND o.roomId IN (SELECT id FROM {s.q('Room')}) AND NOT EXISTS (SELECT 1 FROM "
              f"{s.q('Location')} l WHERE l.houseId = o.houseId AND l.roomId = o.roomId)")
        location = (f"(SELECT l.id FROM {s.q('Location')} l WHERE l.houseId = o.houseId "
                    f"AND l.roomId = o.roomId)")
    else:
        location = _valid(s, s.col(t, "locationId"), "Location")
    s.run(f"INSERT INTO {s.q(t)} (id, locationId, nodeTypeId) SELECT o.id, {location}, "
          f"{_valid(s, s.col(t, 'nodeTypeId'), 'NodeType')} FROM {s.src(t)} o")


def _missing_references(s: _Sql) -> None:
    """Nodes and sensor types that readings, states or sensors name but the original never
    recorded (MyISAM enforced nothing): created bare, so that no reading is lost."""
    for table, column in (("Reading", "nodeId"), ("NodeState", "nodeId"), ("Sensor", "nodeId")):
        if s.has(table, column):
            s.run(f"INSERT INTO {s.q('Node')} (id) SELECT DISTINCT o.{column} FROM "
                  f"{s.src(table)} o WHERE o.{column} IS NOT NULL AND o.{column} NOT IN "
                  f"(SELECT id FROM {s.q('Node')})")
    for table, column in (("Reading", "type"), ("Sensor", "sensorTypeId")):
        if s.has(table, column):
            s.run(f"INSERT INTO {s.q('SensorType')} (id, name, code, units, c0, c1, c2, c3) "
                  f"SELECT DISTINCT o.{column}, {s.cat(repr('sensor type '), f'o.{column}')}, "
                  f"'', '', 0, 1, 0, 0 FROM {s.src(table)} o WHERE o.{column} IS NOT NULL AND "
                  f"o.{column} NOT IN (SELECT id FROM {s.q('SensorType')})")


def _sensors(s: _Sql) -> None:
    t = "Sensor"
    s.run(f"INSERT INTO {s.q(t)} (id, sensorTypeId, nodeId, calibrationSlope, "
          f"calibrationOffset) SELECT o.id, o.sensorTypeId, o.nodeId, "
          f"{s.col(t, 'calibrationSlope')}, {s.col(t, 'calibrationOffset')} FROM {s.src(t)} o "
          f"WHERE o.sensorTypeId IS NOT NULL AND o.nodeId IS NOT NULL AND o.id = (SELECT "
          f"MIN(o2.id) FROM {s.src(t)} o2 WHERE o2.nodeId = o.nodeId "
          f"AND o2.sensorTypeId = o.sensorTypeId)")


def _readings(s: _Sql) -> None:
    t = "Reading"
    if s.has(t, "locationId"):
        location, join = "l.id", (f"LEFT JOIN {s.q('Location')} l ON l.id = o.locationId")
    else:
        location, join = "n.locationId", f"LEFT JOIN {s.q('Node')} n ON n.id = o.nodeId"
    s.run(f"{s.insert_ignore()} {s.q(t)} (time, nodeId, type, locationId, value) "
          f"SELECT o.time, o.nodeId, o.type, {location}, {s.col(t, 'value')} "
          f"FROM {s.src(t)} o {join} "
          f"WHERE o.time IS NOT NULL AND o.nodeId IS NOT NULL AND o.type IS NOT NULL")


def _node_states(s: _Sql) -> None:
    t = "NodeState"
    s.run(f"{s.insert_ignore()} {s.q(t)} (time, nodeId, parent, {s.q('localtime')}, seq_num, "
          f"rssi) "
          f"SELECT o.time, o.nodeId, {s.col(t, 'parent')}, {s.col(t, 'localtime')}, "
          f"COALESCE({s.col(t, 'seq_num')}, 0), {s.col(t, 'rssi')} FROM {s.src(t)} o "
          f"WHERE o.time IS NOT NULL AND o.nodeId IS NOT NULL")


def _references_first(s: _Sql) -> None:
    if "Node" not in s.original:
        return
    _nodes(s)
    _missing_references(s)


# Tables whose copy is judged by our table's count (theirs were empty before the copy).
_WHOLE_TABLE = {"Deployment", "Room", "House", "Location", "Sensor", "Reading", "NodeState"}

_STEPS: list[tuple[str, Callable[[_Sql], None]]] = [
    ("SensorType", _sensor_types),
    ("NodeType", _node_types),
    ("RoomType", _room_types),
    ("Deployment", _deployments),
    ("Room", _rooms),
    ("House", _houses),
    ("Location", _locations),
    ("Node", _references_first),
    ("Sensor", _sensors),
    ("Reading", _readings),
    ("NodeState", _node_states),
]


def _finish(s: _Sql, report: AdoptionReport) -> None:
    """Drop each original table whose rows are all in ours; keep and name the others."""
    kept = set()
    for c in report.tables:
        if c.copied < c.source:
            kept.add(c.table)
            LOG.warning(
                "%s: %d of %d rows copied; the rest repeat an earlier row's natural key or "
                "lack a key column, and are kept in %s%s for you to inspect",
                c.table, c.copied, c.source, PREFIX, c.table)
        else:
            LOG.info("%s: all %d rows copied", c.table, c.source)
    for name in reversed(MODELED):
        if name in s.original and name not in kept:
            try:
                s.run(f"DROP TABLE {s.src(name)}")
            except DBAPIError:  # a kept child still refers to it: keep it too
                LOG.warning("%s%s is kept: another kept original table refers to it",
                            PREFIX, name)
