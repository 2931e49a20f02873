"""Per-day counts and checksums of readings and node states, the same on every backend.

Both sides run these queries — the central server behind ``/rest/summary/…`` and a
base station locally — and compare the results group by group to find days that
differ. So every number must come out identical on SQLite, MySQL/MariaDB and
PostgreSQL for the same rows:

* ``day``: the UTC calendar day of ``time``.
* ``timeSum``: Σ whole seconds of the day (hour·3600 + minute·60 + second; the
  fraction of a second is dropped — PostgreSQL's EXTRACT(SECOND) keeps it).
* ``valueSum``: Σ round(value * 1000), rounding half away from zero, computed as
  ``sign · floor(|value * 1000| + 0.5)`` in IEEE doubles. ``ROUND()`` itself
  cannot be used: on doubles MariaDB and PostgreSQL round half to even and
  SQLite half away from zero, and ties are common (a DS18B20 reads in 1/16 °C,
  so 21.0625 * 1000 = 21062.5 exactly). NULL, NaN, infinite values and values of
  magnitude 1e12 or more add nothing (but are counted): their sums could overflow.
  Values beyond ±1e12 (and infinities) add 0, so the sum cannot overflow.
* ``seqSum``: Σ seq_num.

The queries group in SQL and are meant to be streamed (``stream_results``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from models.deployment import Location
from models.node import Node
from models.readings import NodeState, Reading

MAX_SUMMED = 1e12


class seconds_of_day(FunctionElement[int]):
    """Whole seconds since midnight of a naive UTC datetime."""

    type = BigInteger()
    name = "seconds_of_day"
    inherit_cache = True


@compiles(seconds_of_day)
def _seconds_of_day(element: seconds_of_day, compiler: SQLCompiler, **kw: Any) -> str:
    t = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"(EXTRACT(HOUR FROM {t}) * 3600 + EXTRACT(MINUTE FROM {t}) * 60"
        f" + EXTRACT(SECOND FROM {t}))"
    )


@compiles(seconds_of_day, "postgresql")
def _seconds_of_day_pg(element: seconds_of_day, compiler: SQLCompiler, **kw: Any) -> str:
    t = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"CAST(EXTRACT(HOUR FROM {t}) * 3600 + EXTRACT(MINUTE FROM {t}) * 60"
        f" + FLOOR(EXTRACT(SECOND FROM {t})) AS BIGINT)"
    )


@compiles(seconds_of_day, "sqlite")
def _seconds_of_day_sqlite(element: seconds_of_day, compiler: SQLCompiler, **kw: Any) -> str:
    t = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"(CAST(STRFTIME('%H', {t}) AS INTEGER) * 3600 + CAST(STRFTIME('%M', {t}) AS INTEGER) * 60"
        f" + CAST(STRFTIME('%S', {t}) AS INTEGER))"
    )


class milli_round(FunctionElement[int]):
    """round(x * 1000) half away from zero, exactly the same on every backend."""

    type = BigInteger()
    name = "milli_round"
    inherit_cache = True


# Values beyond this (and infinities, NaN) add 0: their rounded sums could overflow BIGINT.
VALUE_BOUND = "1e12"


def _x1000(element: milli_round, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(next(iter(element.clauses)), **kw)} * 1000.0)"


def _bounded(element: milli_round, compiler: SQLCompiler, rounded: str, **kw: Any) -> str:
    v = compiler.process(next(iter(element.clauses)), **kw)
    return f"(CASE WHEN {v} > -{VALUE_BOUND} AND {v} < {VALUE_BOUND} THEN {rounded} ELSE 0 END)"


@compiles(milli_round)
def _milli_round(element: milli_round, compiler: SQLCompiler, **kw: Any) -> str:
    x = _x1000(element, compiler, **kw)
    rounded = f"CAST(CASE WHEN {x} < 0 THEN -FLOOR(0.5 - {x}) ELSE FLOOR({x} + 0.5) END AS SIGNED)"
    return _bounded(element, compiler, rounded, **kw)


@compiles(milli_round, "postgresql")
def _milli_round_pg(element: milli_round, compiler: SQLCompiler, **kw: Any) -> str:
    x = _x1000(element, compiler, **kw)
    rounded = (
        f"CAST(CASE WHEN {x} < 0 THEN -FLOOR(CAST(0.5 AS DOUBLE PRECISION) - {x})"
        f" ELSE FLOOR({x} + CAST(0.5 AS DOUBLE PRECISION)) END AS BIGINT)"
    )
    return _bounded(element, compiler, rounded, **kw)


@compiles(milli_round, "sqlite")
def _milli_round_sqlite(element: milli_round, compiler: SQLCompiler, **kw: Any) -> str:
    # CAST(real AS INTEGER) truncates toward zero: floor for the non-negative operand.
    x = _x1000(element, compiler, **kw)
    rounded = (
        f"(CASE WHEN {x} < 0 THEN -CAST(0.5 - {x} AS INTEGER) ELSE CAST({x} + 0.5 AS INTEGER) END)"
    )
    return _bounded(element, compiler, rounded, **kw)


def _day(column: Any) -> ColumnElement[Any]:
    # date() exists on all three (a function-style cast on PostgreSQL); SQLite returns text.
    return func.date(column)


def reading_summary(
    *,
    house_id: int | None = None,
    location_id: int | None = None,
    node_id: int | None = None,
    type_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select[Any]:
    """Per (locationId, nodeId, type, day): count, valueSum, timeSum. ``end`` is exclusive."""
    day = _day(Reading.time).label("day")
    stmt = select(
        Reading.locationId,
        Reading.nodeId,
        Reading.type,
        day,
        func.count().label("count"),
        func.sum(
            # Beyond ±1e12 the milli-units would overflow 64-bit integers (and SQLite's
            # infinities would abort the query): such values add 0 on every side.
            case(
                (Reading.value.between(-MAX_SUMMED, MAX_SUMMED), milli_round(Reading.value)),
                else_=0,
            )
        ).label("valueSum"),
        func.sum(seconds_of_day(Reading.time)).label("timeSum"),
    )
    if house_id is not None:
        stmt = stmt.where(
            Reading.locationId.in_(select(Location.id).where(Location.houseId == house_id))
        )
    if location_id is not None:
        stmt = stmt.where(Reading.locationId == location_id)
    if node_id is not None:
        stmt = stmt.where(Reading.nodeId == node_id)
    if type_id is not None:
        stmt = stmt.where(Reading.type == type_id)
    if start is not None:
        stmt = stmt.where(Reading.time >= start)
    if end is not None:
        stmt = stmt.where(Reading.time < end)
    group = (Reading.locationId, Reading.nodeId, Reading.type, _day(Reading.time))
    return stmt.group_by(*group).order_by(*group)


def nodestate_summary(
    *,
    house_id: int | None = None,
    location_id: int | None = None,
    node_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select[Any]:
    """Per (nodeId, day): count, timeSum, seqSum. House/location filter by where nodes are now."""
    stmt = select(
        NodeState.nodeId,
        _day(NodeState.time).label("day"),
        func.count().label("count"),
        func.sum(seconds_of_day(NodeState.time)).label("timeSum"),
        func.sum(NodeState.seq_num).label("seqSum"),
    )
    if house_id is not None:
        located = select(Location.id).where(Location.houseId == house_id)
        stmt = stmt.where(NodeState.nodeId.in_(select(Node.id).where(Node.locationId.in_(located))))
    if location_id is not None:
        stmt = stmt.where(
            NodeState.nodeId.in_(select(Node.id).where(Node.locationId == location_id))
        )
    if node_id is not None:
        stmt = stmt.where(NodeState.nodeId == node_id)
    if start is not None:
        stmt = stmt.where(NodeState.time >= start)
    if end is not None:
        stmt = stmt.where(NodeState.time < end)
    group = (NodeState.nodeId, _day(NodeState.time))
    return stmt.group_by(*group).order_by(*group)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def normalise(row: Any) -> dict[str, Any]:
    """A result row as plain JSON-able values: ints for sums, ``YYYY-MM-DD`` for the day."""
    out = {k: _plain(v) for k, v in row._mapping.items()}
    out["day"] = str(out["day"])[:10]
    for k in ("valueSum", "timeSum", "seqSum"):
        if k in out:
            out[k] = int(out[k]) if out[k] is not None else 0
    return out


def iter_summary(
    conn: Connection, stmt: Select[Any], chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Run a summary query, streaming the groups as plain dicts."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(stmt)
    for row in result:
        yield normalise(row)
