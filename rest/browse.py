"""Listing a resource: filters, sort and keyset pagination.

Query string: ``col=value`` (repeat it for "any of"), ``ge_col=``, ``gt_col=``,
``le_col=``, ``lt_col=``, ``ne_col=``; ``col=null`` / ``ne_col=null`` on a
nullable non-text column; ``_sort=col`` or ``_sort=-col``; ``_limit=N``;
``_after=ID`` (sorted by id) or ``_cursor=TOKEN`` (any other sort), both taken
from the ``Link: <…>; rel="next"`` header of the previous page.

Pages are keyset ranges (``WHERE (col, id) > (last) ORDER BY col, id LIMIT n``),
never OFFSET, so walking a 10-million-row table costs one index range scan per
page and constant memory on both sides.
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, or_, select

from rest.crud import id_in_range
from rest.errors import bad_request
from rest.resources import Field, Resource
from rest.times import format_time
from rest.values import BadValue, from_query

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "ge": operator.ge,
    "gt": operator.gt,
    "le": operator.le,
    "lt": operator.lt,
    "ne": operator.ne,
}
RESERVED = ("_sort", "_limit", "_after", "_cursor")


@dataclass
class ListQuery:
    where: list[ColumnElement[bool]] = field(default_factory=list)
    sort: str = "id"
    descending: bool = False
    limit: int = 1000
    after: tuple[Any, int] | None = None  # (last sort value, last id)
    offset: int | None = None  # a Range: items=a-b request (the original dialect)


_VALUE_PREFIXES = tuple(f"{op}_" for op in _COMPARE)


def _like_pattern(raw: str) -> str:
    """An original-dialect wildcard (``*``) as a LIKE pattern, other characters literal."""
    # "!" escapes: a backslash would need escaping again inside MySQL's string literal.
    escaped = raw.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%")


def parse_range(header: str | None, max_limit: int) -> tuple[int, int] | None:
    """``Range: items=0-24`` → (offset 0, limit 25), at most ``max_limit`` rows; None when
    absent or not an items range."""
    if not header or not header.strip().startswith("items="):
        return None
    first, sep, last = header.strip()[6:].partition("-")
    if not (sep and first.isascii() and first.isdigit() and last.isascii() and last.isdigit()):
        raise bad_request(f"Range {header!r}: use items=FIRST-LAST, e.g. items=0-24")
    start, end = int(first), int(last)
    if end < start:
        raise bad_request(f"Range {header!r}: LAST is before FIRST")
    return start, min(end - start + 1, max_limit)


def _valid_params(resource: Resource) -> list[str]:
    return [*resource.fields, *(f"{p}_<column>" for p in _COMPARE), *RESERVED]


def _unknown(resource: Resource, name: str) -> Exception:
    return bad_request(
        f"unknown column or parameter {name!r} for {resource.name}; filter with col=value or "
        f"ge_/gt_/le_/lt_/ne_ + col; columns: {', '.join(resource.fields)}",
        valid=_valid_params(resource),
    )


def _split(resource: Resource, name: str) -> tuple[str, Field]:
    """``name`` → (operator, field); the column itself wins over a prefix reading."""
    if name in resource.fields:
        return "eq", resource.fields[name]
    prefix, sep, rest = name.partition("_")
    if sep and prefix in _COMPARE and rest in resource.fields:
        return prefix, resource.fields[rest]
    raise _unknown(resource, name)


def _value(f: Field, raw: str) -> Any:
    try:
        return from_query(f, raw)
    except BadValue as exc:
        raise bad_request(str(exc)) from None


def _is_null_literal(f: Field, raw: str) -> bool:
    return f.nullable and f.kind != "str" and raw.lower() == "null"


def parse_list_query(
    resource: Resource, params: Sequence[tuple[str, str]], default_limit: int, max_limit: int
) -> ListQuery:
    q = ListQuery(limit=default_limit)
    equal: dict[str, list[str]] = {}
    cursor: str | None = None
    after: str | None = None
    for name, raw in params:
        if name.startswith("sort(") and name.endswith(")") and not raw:
            # The original dialect: sort(-id), sort(+name) (a '+' may arrive as a space).
            name, raw = "_sort", name[5:-1].split(",")[0].strip().lstrip("+")
        if name == "callback":
            continue  # the original's JSONP parameter: ignored, as the original ignored it
        if name == "_sort":
            desc = raw.startswith("-")
            sort = raw[1:] if desc else raw
            if sort not in resource.fields:
                raise bad_request(
                    f"cannot sort {resource.name} by {sort!r}; sort by one column, "
                    f"'-' first for descending: {', '.join(resource.fields)}",
                    valid=resource.fields,
                )
            q.sort, q.descending = sort, desc
        elif name == "_limit":
            # isdigit() alone admits "²", which int() refuses: ASCII digits only.
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= max_limit:
                raise bad_request(f"_limit must be a whole number from 1 to {max_limit}")
            q.limit = int(raw)
        elif name == "_after":
            after = raw
        elif name == "_cursor":
            cursor = raw
        elif name.startswith("_") and name not in resource.fields:
            raise _unknown(resource, name)
        else:
            op, f = _split(resource, name)
            col = resource.column(f.name)
            if op == "eq" and f.kind != "str" and raw[:3] in _VALUE_PREFIXES:
                op, raw = raw[:2], raw[3:]  # the original dialect: col=le_3, col=gt_2012-05-20
            if f.kind != "str" and raw == "None" and op == "eq":
                q.where.append(col.is_(None))  # the original dialect's null, on any column
                continue
            if op == "eq" and f.kind == "str" and "*" in raw:
                if raw.strip("*"):  # col=* alone matches everything, as in the original
                    q.where.append(col.like(_like_pattern(raw), escape="!"))
            elif op == "eq":
                equal.setdefault(f.name, []).append(raw)
            elif _is_null_literal(f, raw) and op == "ne":
                q.where.append(col.is_not(None))
            else:
                q.where.append(_COMPARE[op](col, _value(f, raw)))
    for name, raws in equal.items():
        f = resource.fields[name]
        col = resource.column(name)
        if any(_is_null_literal(f, r) for r in raws):
            if len(raws) > 1:
                raise bad_request(f"{name}=null cannot be combined with other {name}= values")
            q.where.append(col.is_(None))
        elif len(raws) == 1:
            q.where.append(col == _value(f, raws[0]))
        else:
            q.where.append(col.in_([_value(f, r) for r in raws]))
    if after is not None:
        if q.sort != "id":
            raise bad_request("_after works with the id order; use _cursor from the Link header")
        try:
            last = int(after)
            if not id_in_range(resource, last):
                raise ValueError
        except ValueError:
            raise bad_request(
                f"_after must be an id of {resource.name} "
                f"(a {resource.fields['id'].bits or 64}-bit integer), not {after!r}"
            ) from None
        q.after = (last, last)
    elif cursor is not None:
        q.after = _decode_cursor(resource, q, cursor)
    return q


def _decode_cursor(resource: Resource, q: ListQuery, token: str) -> tuple[Any, int]:
    try:
        sort, value, last_id = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        if sort != q.sort or not isinstance(last_id, int) or not id_in_range(resource, last_id):
            raise ValueError
        if value is not None:
            value = from_query(resource.fields[sort], str(value))
        return value, last_id
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError, BadValue):
        raise bad_request(
            "_cursor is not valid for this query; take it unchanged from the Link header "
            "(rel=next) of the previous page, with the same _sort"
        ) from None


def encode_cursor(q: ListQuery, value: Any, last_id: int) -> str:
    if hasattr(value, "isoformat"):
        value = format_time(value)
    raw = orjson.dumps([q.sort, value, last_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _keyset(resource: Resource, q: ListQuery) -> ColumnElement[bool] | None:
    if q.after is None:
        return None
    value, last_id = q.after
    idc = resource.id
    beyond_id = idc < last_id if q.descending else idc > last_id
    if q.sort == "id":
        return beyond_id
    col = resource.column(q.sort)
    nullable = resource.fields[q.sort].nullable
    # NULLs sort last ascending and first descending, on every backend (explicit below).
    if value is None:
        if q.descending:
            return or_(and_(col.is_(None), beyond_id), col.is_not(None))
        return and_(col.is_(None), beyond_id)
    beyond = col < value if q.descending else col > value
    cond = or_(beyond, and_(col == value, beyond_id))
    if nullable and not q.descending:
        cond = or_(cond, col.is_(None))
    return cond


def build_select(
    resource: Resource, q: ListQuery, scope: ColumnElement[bool] | None
) -> Select[Any]:
    stmt = select(resource.table)
    conditions = list(q.where)
    if scope is not None:
        conditions.append(scope)
    keyset = _keyset(resource, q)
    if keyset is not None:
        conditions.append(keyset)
    if conditions:
        stmt = stmt.where(*conditions)
    if q.offset is not None:
        stmt = stmt.offset(q.offset)
    order: list[Any] = []
    idc = resource.id
    if q.sort != "id":
        col = resource.column(q.sort)
        if resource.fields[q.sort].nullable:
            nulls_last = col.is_(None)
            order.append(nulls_last.desc() if q.descending else nulls_last)
        order.append(col.desc() if q.descending else col)
    order.append(idc.desc() if q.descending else idc)
    # One row more than asked tells whether there is a next page.
    return stmt.order_by(*order).limit(q.limit + 1)
