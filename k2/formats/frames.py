"""The Confluent wire frame and the reasons a framed message is refused.

Frame: magic byte 0, the schema id as 4 bytes big-endian, then the payload; a Protobuf payload starts with its
message-index list (zig-zag varints; a single 0 for the first message). The frame is read with confluent-kafka's own
`SchemaId`, the same code its deserializers use.

Reasons (dead letters): `unknown_schema` (no schema has that id), `unsupported_schema:<what>` (a schema K2 cannot
read, e.g. JSON Schema, or a local schema file that is not one), `schema_mismatch:<detail>` (the payload does not
decode with its schema: `frame`, `avro_decode`, `protobuf_decode`, `message_index`, `trailing_bytes`), and then
validation's own reasons (`missing_field:<f>` when the writer's schema lacks a K2 field, `bad_decimal:<f>`, ...).
"""

from __future__ import annotations

import io
from typing import Any

from k2.ingest.checks import Rejection

MAGIC = 0
HEADER_BYTES = 5  # magic byte + 4-byte schema id


def is_framed(value: bytes) -> bool:
    """A Confluent-framed message: JSON never starts with a zero byte."""
    return value[:1] == b"\x00"


def any_framed(values: list[bytes]) -> bool:
    """Whether a batch holds a framed message. Zero is the least first byte, so the batch's least value (found in
    one pass in C, cheaper on the JSON path than a test per message) starts with it if any does."""
    if not values:
        return False
    least = min(values)
    if least:
        return least[0] == 0
    return any(value[:1] == b"\x00" for value in values)  # an empty message is the least: look at each


class SchemaProblem(Exception):
    """Why a framed message cannot be decoded; carries the dead letter's reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.rejection = Rejection(reason, detail)


def mismatch(detail: str, why: object) -> SchemaProblem:
    return SchemaProblem(f"schema_mismatch:{detail}", str(why) or type(why).__name__)


def read_header(value: bytes) -> tuple[int, io.BytesIO]:
    """The schema id and the rest of the message (positioned after the id)."""
    if len(value) < HEADER_BYTES:
        raise mismatch("frame", f"{len(value)} bytes: shorter than the {HEADER_BYTES}-byte header")
    found = _schema_id("AVRO")
    rest = found.from_bytes(io.BytesIO(value))
    return found.id, rest  # type: ignore[return-value]


def read_message_indexes(value: bytes) -> tuple[list[int], io.BytesIO]:
    """A Protobuf frame's message-index list and the payload after it."""
    from confluent_kafka.serialization import SerializationError

    found = _schema_id("PROTOBUF")
    try:
        rest = found.from_bytes(io.BytesIO(value))
    except (EOFError, SerializationError) as exc:
        raise mismatch("message_index", exc) from exc
    return found.message_indexes or [0], rest


def _schema_id(schema_type: str) -> Any:
    """confluent-kafka's `SchemaId`, imported on the first framed message: its module pulls in the registry client
    and its HTTP stack (~0.4 s), which a flow reading only JSON should not pay at every start."""
    from confluent_kafka.schema_registry.common.serde import SchemaId

    return SchemaId(schema_type)
