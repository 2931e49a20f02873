"""One row at a time: get, create, update, delete — each checked against the key's scope
(what it sees: rest/scope.py) and the write rule (rest/authz.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, UniqueConstraint, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from models import Base
from rest.authz import WriteRule
from rest.daycache import invalidate_locations
from rest.errors import ApiError, bad_request, conflict, not_found, unprocessable
from rest.keys import Principal
from rest.resources import Resource
from rest.scope import visible
from rest.values import BadValue, from_json

Row = dict[str, Any]


def id_in_range(resource: Resource, row_id: int) -> bool:
    """Whether ``row_id`` fits the resource's id column (32 bits for most tables)."""
    bound = 1 << ((resource.fields["id"].bits or 64) - 1)
    return -bound <= row_id < bound


def _fetch(conn: Connection, resource: Resource, row_id: int, principal: Principal | None) -> Row:
    if not id_in_range(resource, row_id):  # the database would refuse the comparison
        raise not_found(f"no {resource.name} with id {row_id}")
    stmt = select(resource.table).where(resource.id == row_id)
    scope = visible(resource, principal)
    row = conn.execute(stmt if scope is None else stmt.where(scope)).mappings().first()
    if row is not None:
        return dict(row)
    # Another site's row is answered as one that does not exist: nothing tells them apart.
    raise not_found(f"no {resource.name} with id {row_id}")


def get_row(conn: Connection, resource: Resource, row_id: int, principal: Principal | None) -> Row:
    return _fetch(conn, resource, row_id, principal)


def _parse_body(resource: Resource, body: Any) -> Row:
    if not isinstance(body, dict):
        raise bad_request(f"send a JSON object of {resource.name} columns")
    unknown = [k for k in body if k not in resource.fields]
    if unknown:
        raise bad_request(
            f"unknown column(s) {', '.join(map(repr, unknown))} for {resource.name}; "
            f"columns: {', '.join(resource.fields)}",
            valid=resource.fields,
        )
    try:
        return {k: from_json(resource.fields[k], v) for k, v in body.items()}
    except BadValue as exc:
        raise unprocessable(str(exc)) from None


def _check_references(conn: Connection, table: Table, values: Row) -> None:
    for col in table.columns:
        value = values.get(col.name)
        if value is None:
            continue
        for fk in col.foreign_keys:
            target = fk.column
            if conn.execute(select(target).where(target == value)).first() is None:
                raise unprocessable(
                    f"{col.name}: there is no {target.table.name.lower()} with id {value}"
                )


def _unique_description(table: Table) -> str:
    keys = [
        "+".join(c.name for c in cons.columns)
        for cons in table.constraints
        if isinstance(cons, UniqueConstraint)
    ]
    if table.c.id.autoincrement is False:
        keys.insert(0, "id")
    return " or ".join(keys) or "id"


def _integrity(resource: Resource, exc: IntegrityError) -> ApiError:
    return conflict(
        f"the database refused this {resource.name}: another row already has the same "
        f"{_unique_description(resource.table)}, or a referenced row was just removed "
        f"({str(exc.orig).splitlines()[0][:200]})"
    )


def create_row(conn: Connection, resource: Resource, principal: Principal, body: Any) -> Row:
    values = _parse_body(resource, body)
    if resource.server_ids and "id" in values:
        raise bad_request(f"{resource.name} ids are assigned by the server; leave out 'id'")
    missing = [f.name for f in resource.fields.values() if f.required and f.name not in values]
    if missing:
        raise unprocessable(f"missing required column(s) for {resource.name}: {', '.join(missing)}")
    WriteRule(conn, principal).check_row(resource, values, None)
    _check_references(conn, resource.table, values)
    try:
        with conn.begin_nested():
            result = conn.execute(insert(resource.table).values(values))
    except IntegrityError as exc:
        raise _integrity(resource, exc) from None
    new_id = values["id"] if "id" in values else result.inserted_primary_key[0]  # type: ignore[index]
    _readings_changed(conn, resource, values.get("locationId"))
    return _fetch(conn, resource, new_id, None)


def _readings_changed(conn: Connection, resource: Resource, *locations: Any) -> None:
    """A reading written one row at a time: the house page's cached days of its locations go."""
    if resource.name == "reading":
        invalidate_locations(conn, locations)


def update_row(
    conn: Connection, resource: Resource, principal: Principal, row_id: int, body: Any
) -> Row:
    current = _fetch(conn, resource, row_id, principal)
    values = _parse_body(resource, body)
    if values.pop("id", row_id) != row_id:
        raise bad_request("the id in the body differs from the id in the URL; ids cannot change")
    merged = {**current, **values}
    WriteRule(conn, principal).check_row(resource, merged, row_id)
    changed = {k: v for k, v in merged.items() if current.get(k) != v}
    if not changed:
        return current
    _check_references(conn, resource.table, changed)
    try:
        with conn.begin_nested():
            conn.execute(update(resource.table).where(resource.id == row_id).values(changed))
    except IntegrityError as exc:
        raise _integrity(resource, exc) from None
    _readings_changed(conn, resource, current.get("locationId"), merged.get("locationId"))
    return _fetch(conn, resource, row_id, None)


def _dependants(table: Table) -> list[tuple[Table, Any]]:
    out = []
    for other in Base.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table:
                out.append((other, fk.parent))
    return out


def delete_row(conn: Connection, resource: Resource, row_id: int) -> None:
    current = _fetch(conn, resource, row_id, None)
    _readings_changed(conn, resource, current.get("locationId"))
    for other, column in _dependants(resource.table):
        n = conn.execute(
            select(func.count()).select_from(other).where(column == row_id)
        ).scalar_one()
        if n:
            raise conflict(
                f"{resource.name} {row_id} is still used by {n} {other.name.lower()} row(s) "
                f"({other.name}.{column.name}); delete or move those first"
            )
    try:
        with conn.begin_nested():
            conn.execute(delete(resource.table).where(resource.id == row_id))
    except IntegrityError as exc:
        raise _integrity(resource, exc) from None
