"""Decoded Avro/Protobuf values -> K2's JSON wire fields, exactly.

Decimals become their plain decimal text (never a float: a binary float in a money field is `bad_decimal:<f>`, as
no exact decimal can be read from it); times become integer µs UTC: Avro `timestamp-millis`/`-micros`/`-nanos`
longs and `google.protobuf.Timestamp` (seconds + nanos) convert exactly, and nanoseconds floor to µs as the JSON
mapping does. Whether the result fits decimal(18,8) and the time bounds is then validation's verdict, with its
reasons, the same as for JSON.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from k2.formats.frames import SchemaProblem
from k2.ingest.checks import DECIMAL_FIELDS

TIME_FIELDS = frozenset({"timestamp", "ingestion_timestamp"})
# µs per unit of an Avro timestamp logical type; nanoseconds floor to µs
AVRO_TIME_UNITS = {
    "timestamp-millis": 1000,
    "timestamp-micros": 1,
    "local-timestamp-millis": 1000,
    "local-timestamp-micros": 1,
}
AVRO_NANOS = ("timestamp-nanos", "local-timestamp-nanos")

encode_wire = msgspec.json.Encoder(decimal_format="string").encode


def decimal_text(field: str, value: Any) -> Any:
    """A money field's exact text; floats are refused, other values pass on for validation to judge."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise SchemaProblem(f"bad_decimal:{field}", f"{field} is a binary floating-point number, never exact")
    return value


def units_nanos(units: int, nanos: int) -> str:
    """A decimal given as whole units and nanos (e.g. `google.type.Money`), as exact text."""
    return format(Decimal(units) + Decimal(nanos).scaleb(-9), "f")


def seconds_nanos_to_us(seconds: int, nanos: int) -> int:
    """A `google.protobuf.Timestamp` as µs since the epoch (nanoseconds floor to µs)."""
    return seconds * 1_000_000 + nanos // 1000


def finish(fields: dict[str, Any]) -> bytes:
    """K2 wire bytes (JSON) of decoded fields whose decimals are already texts."""
    for name in DECIMAL_FIELDS.intersection(fields):
        fields[name] = decimal_text(name, fields[name])
    return encode_wire(fields)
