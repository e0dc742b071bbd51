"""Avro payloads decoded with fastavro against the writer's schema into K2's wire fields.

Timestamps are read as the longs they are on the wire (their logical types are taken off before fastavro parses the
schema, so no `datetime` is made and no range error can hide a value) and scaled to µs by their unit; `decimal`
logical types (bytes or fixed) come back from fastavro as exact `Decimal`s.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro

from k2.formats.frames import SchemaProblem, mismatch
from k2.formats.values import AVRO_NANOS, AVRO_TIME_UNITS, finish


class AvroReader:
    """One writer schema, parsed once: `decode(payload)` -> K2 wire bytes."""

    format = "avro"

    def __init__(self, schema_text: str):
        try:
            schema = json.loads(schema_text)
        except ValueError as exc:
            raise SchemaProblem("unsupported_schema:avro", f"not an Avro schema: {exc}") from exc
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise SchemaProblem("unsupported_schema:avro", "the top-level Avro type is not a record")
        # µs per unit (or `None` for nanoseconds) of each top-level field that carries a timestamp logical type
        self.time_units: dict[str, int | None] = {}
        for field in schema.get("fields", []):
            unit = _strip_timestamps(field)
            if unit != 0:
                self.time_units[field["name"]] = unit
        try:
            self.schema = fastavro.parse_schema(schema)
        except Exception as exc:  # fastavro raises several types for schemas it cannot parse
            raise SchemaProblem("unsupported_schema:avro", f"fastavro cannot parse the schema: {exc}") from exc

    def decode(self, payload: io.BytesIO) -> bytes:
        try:
            fields = fastavro.schemaless_reader(payload, self.schema, None)
        except Exception as exc:  # truncated or corrupt data: EOFError, ValueError, UnicodeDecodeError, ...
            raise mismatch("avro_decode", exc) from exc
        if payload.read(1):
            raise mismatch("trailing_bytes", "bytes left after the Avro record")
        assert isinstance(fields, dict)
        for name, unit in self.time_units.items():
            value = fields.get(name)
            if isinstance(value, int):
                fields[name] = value // 1000 if unit is None else value * unit
        return finish(fields)


def _strip_timestamps(field: dict[str, Any]) -> int | None:
    """Take timestamp logical types off a field's type (and its union branches); their unit: µs per unit, None for
    nanoseconds, 0 when the field carries none."""
    found: int | None = 0
    branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
    for branch in branches:
        if isinstance(branch, dict) and branch.get("type") == "long":
            logical = branch.get("logicalType")
            if logical in AVRO_TIME_UNITS:
                found = AVRO_TIME_UNITS[logical]
            elif logical in AVRO_NANOS:
                found = None
            else:
                continue
            del branch["logicalType"]
    return found
