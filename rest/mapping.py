"""``POST /rest/sync/map/``: match metadata rows by natural key, create what is missing.

Parsing checks the whole request first (a malformed body or a reference to a
key not in the request is a 400, nothing written). Then the types are handled
parents first, each type's rows in natural-key order so that concurrent
requests take their locks in the same order. A missing row is inserted inside a
SAVEPOINT; if another client inserted it meanwhile, the unique key refuses ours
and a re-select (READ COMMITTED, see ``base.db.write_engine``) finds theirs —
so both clients get the one row's id.

Which rows a key may create, change or only match is the write rule of
rest/authz.py. Sensor and node types are matched by meaning as well as by id: a
row whose name, code or units differ from the server's is refused, never relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from models.protocol.mapspec import BY_NAME, MapType
from rest.authz import (
    ASK_OPERATOR,
    CATALOGUE_NOUN,
    SHARED_NOUN,
    WriteRule,
    catalogue_missing,
    node_unlocated,
)
from rest.errors import ApiError, bad_request
from rest.keys import Principal
from rest.resources import RESOURCES, Field
from rest.values import BadValue, from_json

# Parents before children: the order rows are resolved in (models/protocol/mapspec.py).
SPECS: dict[str, MapType] = BY_NAME

_KEY_FIELD = Field("key", "int", nullable=False, required=True, bits=32)


@dataclass
class MapRow:
    key: int
    values: dict[str, Any]  # plain columns present in the request
    refs: dict[str, int | None]  # column → key of the referenced row in the request


@dataclass
class MapRequest:
    rows: dict[str, list[MapRow]] = field(default_factory=dict)


# Rows in one map request: a base station's active houses are a few hundred rows; this
# bounds the work one request can ask for.
MAX_MAP_ROWS = 50_000


class RowRefused(Exception):
    """This row (and what depends on it) cannot be mapped; the message says why."""


def parse_map_request(body: Any) -> MapRequest:
    """Validate the whole body; any problem is a 400 naming the row and field."""
    if not isinstance(body, dict):
        raise bad_request("the map body must be a JSON object of lists keyed by type")
    unknown = [k for k in body if k not in SPECS]
    if unknown:
        raise bad_request(
            f"unknown type(s) {', '.join(map(repr, unknown))} in the map request; "
            f"valid: {', '.join(SPECS)}",
            valid=SPECS,
        )
    req = MapRequest()
    total = sum(len(v) for v in body.values() if isinstance(v, list))
    if total > MAX_MAP_ROWS:
        raise ApiError(413, f"the map request holds {total} rows; at most {MAX_MAP_ROWS} "
                            f"at a time (map the active houses in several requests)")
    keys: dict[str, set[int]] = {}
    for name, spec in SPECS.items():
        items = body.get(name) or []
        if not isinstance(items, list):
            raise bad_request(f"{name} must be a list of rows")
        parsed = [_parse_row(name, spec, i, item) for i, item in enumerate(items)]
        keys[name] = {r.key for r in parsed}
        if len(keys[name]) != len(parsed):
            raise bad_request(f"{name}: the same key appears twice; keys must be unique per type")
        req.rows[name] = parsed
    for name, spec in SPECS.items():
        for row in req.rows[name]:
            for ref in spec.refs:
                target = row.refs[ref.column]
                if target is not None and target not in keys[ref.target]:
                    raise bad_request(
                        f"{name} {row.key} refers to {ref.target} {target}, which is not in the "
                        f"request; include every parent row in the same request"
                    )
    return req


def _parse_row(name: str, spec: MapType, index: int, item: Any) -> MapRow:
    where = f"{name}[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be a JSON object")
    allowed = {"key", *spec.field_names, *(r.wire for r in spec.refs)}
    extra = [k for k in item if k not in allowed]
    if extra:
        raise bad_request(
            f"{where} has unknown field(s) {', '.join(map(repr, extra))}; "
            f"valid: {', '.join(sorted(allowed))}",
            valid=allowed,
        )
    fields = RESOURCES[name].fields
    try:
        key = from_json(_KEY_FIELD, item.get("key"))
        values = {f: from_json(fields[f], item[f]) for f in spec.field_names if f in item}
        refs = {}
        for ref in spec.refs:
            raw = item.get(ref.wire)
            if raw is None and ref.required:
                raise BadValue(f"{ref.wire}: is required (the key of a {ref.target} row)")
            refs[ref.column] = None if raw is None else from_json(_KEY_FIELD, raw)
    except BadValue as exc:
        raise bad_request(f"{where}: {exc}") from None
    missing = [f for f in spec.required if values.get(f) is None]
    if missing:
        raise bad_request(f"{where}: missing {', '.join(missing)}")
    return MapRow(key, values, refs)


@dataclass
class MapResult:
    ids: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    refused: dict[str, dict[int, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: {str(k): v for k, v in self.ids.get(name, {}).items()} for name in SPECS
        }
        out["errors"] = self.errors
        return out


def map_metadata(conn: Connection, principal: Principal, req: MapRequest) -> MapResult:
    result = MapResult()
    rule = WriteRule(conn, principal)
    for name, spec in SPECS.items():
        result.ids[name] = {}
        result.refused[name] = {}
        resolved = []
        for row in req.rows[name]:
            try:
                resolved.append((_resolve_refs(spec, row, result), row))
            except RowRefused as exc:
                _refuse(result, name, row.key, str(exc))
        resolved.sort(key=lambda pair: _sort_key(spec, pair[1], pair[0]))
        for refs, row in resolved:
            try:
                result.ids[name][row.key] = _map_row(conn, rule, name, spec, row, refs)
            except RowRefused as exc:
                _refuse(result, name, row.key, str(exc))
    return result


def _refuse(result: MapResult, name: str, key: int, reason: str) -> None:
    result.refused[name][key] = reason
    result.errors.append({"type": name, "key": key, "reason": reason})


def _resolve_refs(spec: MapType, row: MapRow, result: MapResult) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for ref in spec.refs:
        key = row.refs[ref.column]
        if key is None:
            out[ref.column] = None
            continue
        if key in result.refused[ref.target]:
            raise RowRefused(
                f"its {ref.target} {key} was refused: {result.refused[ref.target][key]}"
            )
        out[ref.column] = result.ids[ref.target][key]
    return out


def _sort_key(spec: MapType, row: MapRow, refs: dict[str, int | None]) -> tuple[Any, ...]:
    values = {**row.values, **refs, "id": row.key}
    return tuple(str(values.get(c)) for c in spec.natural)


def _map_row(
    conn: Connection,
    rule: WriteRule,
    name: str,
    spec: MapType,
    row: MapRow,
    refs: dict[str, int | None],
) -> int:
    values: dict[str, Any] = {**row.values, **refs}
    if "id" in spec.natural:
        values["id"] = row.key
    match = {c: values[c] for c in spec.natural}
    table = spec.table
    existing = _select(conn, table, match)
    if existing is None:
        _check_create(rule, name, row, values)
        missing = [f for f in spec.create_needs if values.get(f) is None]
        if missing:
            raise RowRefused(
                f"{name} {row.key} is not on this server; send {', '.join(missing)} to create it"
            )
        if name == "house":
            values["siteId"] = rule.principal.site_id
        created = _insert(conn, table, values)
        existing = _select(conn, table, match)
        if existing is None:
            raise RowRefused(f"{name} {row.key} could not be created; try again")
        if created:
            return int(existing["id"])
    changed = {c: values[c] for c in spec.mutable if c in values and existing.get(c) != values[c]}
    changed = _check_existing(rule, name, row, existing, changed)
    if changed:
        conn.execute(update(table).where(table.c.id == existing["id"]).values(changed))
    return int(existing["id"])


def _check_create(rule: WriteRule, name: str, row: MapRow, values: dict[str, Any]) -> None:
    """Refuse a row the key may not create (rest/authz.py has the rule)."""
    if name in CATALOGUE_NOUN and not rule.unrestricted:
        what = row.values.get("name") if name == "roomtype" else row.key
        raise RowRefused(catalogue_missing(name, f"{CATALOGUE_NOUN[name]} {what!r}"))
    if name == "node":
        why = rule.node_create_refusal(row.key, values.get("locationId"))
        if why:
            raise RowRefused(why)


def _check_existing(
    rule: WriteRule, name: str, row: MapRow, existing: dict[str, Any], changed: dict[str, Any]
) -> dict[str, Any]:
    """Refuse a row the key may not map, or return the changes it may make."""
    if name in _MEANING:
        clash = _meaning_clash(name, existing, row.values)
        if clash:
            raise RowRefused(clash)
    elif name == "house" and not rule.owns_site(existing["siteId"]):
        raise RowRefused(
            f"house {row.key}: a house with this deployment and address is already on this "
            f"server and is not this key's site's; {ASK_OPERATOR}"
        )
    elif name == "node" and not rule.unrestricted:
        if existing["locationId"] is not None and changed.get("locationId", 0) is None:
            # The base station took the node out of its house: on the server it stays
            # where it is, the site's, so that its rows not yet sent are still accepted.
            changed = {c: v for c, v in changed.items() if c != "locationId"}
        if existing["locationId"] is None and "locationId" not in changed:
            raise RowRefused(node_unlocated(row.key))
        why = rule.node_change_refusal(row.key, existing["locationId"])
        if why:
            raise RowRefused(why)
    elif name in SHARED_NOUN and changed and rule.shared_change_refusal(name, existing["id"]):
        # Another site uses this row: it is mapped as the server has it, unchanged (refusing
        # it would set aside every reading of the houses in it).
        return {}
    return changed


# What a catalogue row means: compared (trimmed, case-insensitively) on the fields the
# request sends, so that an id never silently takes another meaning.
_MEANING = {"sensortype": ("name", "code", "units"), "nodetype": ("name",)}


def _normal(value: Any) -> str:
    return "" if value is None else str(value).strip().casefold()


def _describe(row: dict[str, Any], fields: tuple[str, ...]) -> str:
    text = repr(row.get("name"))
    extra = [f"{f} {row.get(f)!r}" for f in fields if f != "name"]
    return f"{text} ({', '.join(extra)})" if extra else text


def _meaning_clash(name: str, existing: dict[str, Any], sent: dict[str, Any]) -> str | None:
    fields = tuple(f for f in _MEANING[name] if f in sent)
    if all(_normal(existing.get(f)) == _normal(sent[f]) for f in fields):
        return None
    return (
        f"{CATALOGUE_NOUN[name]} {existing['id']} is {_describe(existing, _MEANING[name])} "
        f"on this server but {_describe(sent, fields)} in this request: refused, so "
        f"that nothing is stored under another meaning; {ASK_OPERATOR}"
    )


def _select(conn: Connection, table: Table, match: dict[str, Any]) -> dict[str, Any] | None:
    cond = and_(*(table.c[c] == v for c, v in match.items()))
    row = conn.execute(select(table).where(cond)).mappings().first()
    return dict(row) if row is not None else None


def _insert(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert; False when another client's row with the same natural key won."""
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(values))
    except IntegrityError:
        return False
    return True
