"""The metadata map is one table (models/protocol/mapspec.py): what the pusher sends for each
type is exactly what the server's mapping reads and what the OpenAPI document describes."""

from __future__ import annotations

from datetime import datetime

import jsonschema_rs
from sqlalchemy.orm import Session

from base.db import make_engine
from models import NodeType, Sensor, SensorType
from push.metadata import MAP_TYPES, MODELS, REQUIRED, request_row
from rest.mapping import SPECS
from rest.openapi import MAP_BODY
from tests.factories import place_node


def test_the_pusher_sends_the_fields_the_server_reads_and_the_openapi_document_allows(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        place_node(engine, 77, sensor_types=(0,), start=datetime(2026, 1, 1))
        body: dict[str, list] = {}
        with Session(engine) as session:
            for kind in MAP_TYPES:
                obj = session.query(MODELS[kind]).order_by(MODELS[kind].id).first()
                assert obj is not None, kind
                row = request_row(kind, obj)
                spec = SPECS[kind]
                assert set(row) == {"key", *spec.field_names, *(r.wire for r in spec.refs)}, kind
                assert set(REQUIRED[kind]) <= set(row), kind
                body[kind] = [row]
        jsonschema_rs.validate(MAP_BODY, body)
        assert list(MAP_BODY["properties"]) == list(SPECS) == list(MAP_TYPES)  # parents first
    finally:
        engine.dispose()


def test_catalogue_rows_carry_their_meaning_in_the_map_request(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with Session(engine) as session:
            st = session.get(SensorType, 0)
            nt = session.query(NodeType).first()
            assert st is not None and nt is not None
            assert {"name", "code", "units"} <= set(request_row("sensortype", st))
            assert request_row("nodetype", nt)["name"] == nt.name
            assert "calibrationSlope" in SPECS["sensor"].field_names and Sensor.__tablename__
    finally:
        engine.dispose()
