"""JSON Schemas for the OpenAPI document (bodies are parsed by hand, FastAPI cannot infer them)."""

from __future__ import annotations

from typing import Any

from models.protocol.ack import MAX_RUNS
from models.protocol.codes import REJECTION_CODES
from models.protocol.mapspec import MAP_TYPES, MapType
from rest.resources import Field, Resource

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong and what to do"},
        "status": {"type": "integer"},
        "valid": {"type": "array", "items": {"type": "string"}},
    },
}

_STATUS_TEXT = {
    400: "Malformed request (the message says what to fix)",
    401: "No key, or a malformed, unknown or revoked key",
    403: "The key may not do this",
    404: "No such row or type",
    409: "Conflicts with an existing row, or has dependants",
    413: "Body larger than the server's limit (before or after decompression)",
    415: "Unsupported Content-Encoding",
    422: "A value does not fit its column",
    429: "Too many attempts, or the server is busy: retry after Retry-After seconds",
    503: "Database unavailable; retry later",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    chosen = codes or (400, 401, 403, 413, 415, 503)
    return {
        c: {"description": _STATUS_TEXT[c], "content": {"application/json": {"schema": ERROR}}}
        for c in chosen
    }


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
            "description": "JSON, optionally with Content-Encoding: gzip",
        }
    }


def _key(desc: str) -> dict[str, Any]:
    return {"type": "integer", "description": desc}


def _row(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["key", *required],
            "properties": {"key": _key("the client's own id for this row"), **props},
            "additionalProperties": False,
        },
    }


_STR = {"type": "string"}
_NUM = {"type": "number"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_REF = {"type": ["integer", "null"], "description": "key of a row in the same request"}

_JSON_KINDS: dict[str, dict[str, Any]] = {
    "str": _STR,
    "optstr": {"type": ["string", "null"]},
    "num": _NUM,
    "int": {"type": "integer"},
    "time": _TIME,
}


def _map_rows(t: MapType) -> dict[str, Any]:
    props = {f.name: _JSON_KINDS[f.json] for f in t.fields} | {r.wire: _REF for r in t.refs}
    return _row(props, [*t.required, *(r.wire for r in t.refs if r.required)])


MAP_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {t.name: _map_rows(t) for t in MAP_TYPES},
}

_ID_MAP = {
    "type": "object",
    "additionalProperties": {"type": "integer"},
    "description": "client key (as a string) → server id",
}
MAP_REPLY: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{name: _ID_MAP for name in MAP_BODY["properties"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": _STR, "key": {"type": "integer"}, "reason": _STR},
            },
        },
    },
}

_INTS = {"type": "array", "items": {"type": "integer"}}
_OPT_INTS = {"type": "array", "items": {"type": ["integer", "null"]}}
_TIMES = {
    "type": "array",
    "items": {"type": "integer"},
    "description": "first: µs since 1970-01-01T00:00:00Z; then differences from the previous row",
}
BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["format"],
    "properties": {
        "format": {"const": "cogent-batch/1"},
        "readings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node", "type", "location", "t", "v"],
                "properties": {
                    "node": _key("server node id"),
                    "type": _key("sensor type id"),
                    "location": _key("server location id"),
                    "t": _TIMES,
                    "v": {"type": "array", "items": {"type": ["number", "null"]}},
                },
            },
        },
        "nodestates": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node", "t", "seq"],
                "properties": {
                    "node": _key("server node id"),
                    "t": _TIMES,
                    "seq": _INTS,
                    "parent": _OPT_INTS,
                    "rssi": _OPT_INTS,
                    "localtime": _OPT_INTS,
                },
            },
        },
    },
}
BATCH_REPLY: dict[str, Any] = {
    "type": "object",
    "description": "Every row sent is stored, unchanged or in one rejected run",
    "properties": {
        "batch": {"type": "string", "description": "sha256 (hex) of the decompressed body"},
        "rows": {"type": "integer", "description": "rows in the batch"},
        "stored": {"type": "integer", "description": "rows inserted or changed"},
        "unchanged": {"type": "integer", "description": "rows already present, same values"},
        "rejected": {
            "type": "array",
            "maxItems": MAX_RUNS,
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["reading", "nodestate"]},
                    "index": {"type": "integer", "description": "first row of the run"},
                    "count": {"type": "integer", "description": "rows in the run"},
                    "code": {"enum": sorted(REJECTION_CODES)},
                    "reason": _STR,
                },
            },
        },
    },
}


_JSON_TYPES = {"int": "integer", "float": "number", "str": "string", "time": "string"}


# Times the server sends: UTC without an offset, microseconds only when non-zero (not RFC 3339
# "date-time", which requires an offset). Times it receives may carry one.
_SENT_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$"


def _field_schema(f: Field, for_input: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": [_JSON_TYPES[f.kind], "null"] if f.nullable else _JSON_TYPES[f.kind]
    }
    if f.kind == "time" and for_input:
        schema["format"] = "date-time"
    elif f.kind == "time":
        schema["pattern"] = _SENT_TIME
        schema["description"] = "UTC, ISO-8601 without offset"
    if f.max_length:
        schema["maxLength"] = f.max_length
    return schema


def row_schema(resource: Resource, *, for_input: bool = False) -> dict[str, Any]:
    fields = dict(resource.fields)
    if for_input and resource.server_ids:
        fields.pop("id")
    properties = {name: _field_schema(f, for_input) for name, f in fields.items()}
    if not for_input:  # rows name their table, as Cogent-house's did
        properties = {"__table__": {"type": "string", "const": resource.table.name},
                      **properties}
    return {
        "title": resource.table.name,
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields.values() if f.required] if for_input
        else ["__table__", *fields],
        "additionalProperties": False,
    }


def list_parameters(resource: Resource) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": "_sort",
            "in": "query",
            "schema": {"type": "string"},
            "description": "column to sort by, '-' first for descending (default id)",
        },
        {
            "name": "_limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1},
            "description": "rows per page (default 1000, at most 10000)",
        },
        {
            "name": "_after",
            "in": "query",
            "schema": {"type": "integer"},
            "description": "id of the last row of the previous page (id order)",
        },
        {
            "name": "_cursor",
            "in": "query",
            "schema": {"type": "string"},
            "description": "opaque position from the Link header (other orders)",
        },
    ]
    for name, f in resource.fields.items():
        base = {"type": "string"} if f.kind == "time" else {"type": _JSON_TYPES[f.kind]}
        params.append(
            {
                "name": name,
                "in": "query",
                "schema": base,
                "description": f"{name} equals (repeat for any of)",
            }
        )
        for op in ("ge", "gt", "le", "lt", "ne"):
            params.append(
                {
                    "name": f"{op}_{name}",
                    "in": "query",
                    "schema": base,
                    "description": f"{name} {op}",
                }
            )
    return params
