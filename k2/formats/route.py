"""A batch with framed (Avro/Protobuf) messages: decode them to K2's JSON wire form, validate the batch the exact
JSON way, and merge the messages refused at decode back in as dead letters, so every message of the raw batch is
still a row or a dead letter (the conservation the flow counts).
"""

from __future__ import annotations

from collections.abc import Callable

from k2.formats.frames import SchemaProblem, is_framed, read_header, read_message_indexes
from k2.formats.resolve import SchemaSource, unknown
from k2.ingest.checks import Rejection
from k2.model.batch import IngestBatch, RawBatch

# validate(json_batch, originals): the JSON validation, keeping `originals` (the delivered bytes) in dead letters
Validate = Callable[[RawBatch, list[bytes]], IngestBatch]


class FramedDecoder:
    """One framed message -> K2 wire bytes (JSON), or a `SchemaProblem` naming the reason."""

    def __init__(self, schemas: SchemaSource | None):
        self.schemas = schemas

    def decode(self, value: bytes) -> bytes:
        schema_id, rest = read_header(value)
        if self.schemas is None:
            raise unknown(schema_id, "any source: set K2_SCHEMA_REGISTRY_URL or K2_SCHEMA_DIR")
        reader = self.schemas.reader(schema_id)
        if reader.format == "protobuf":
            indexes, rest = read_message_indexes(value)
            return reader.decode(indexes, rest)  # type: ignore[call-arg]
        return reader.decode(rest)  # type: ignore[call-arg]

    def validate(self, raw: RawBatch, kind: str | None, validate: Validate) -> IngestBatch:
        """The batch's framed messages decoded, then all of it validated; decode refusals become dead letters."""
        kept: list[int] = []
        values: list[bytes] = []
        refused: list[tuple[int, Rejection]] = []
        for i, value in enumerate(raw.values):
            if is_framed(value):
                try:
                    value = self.decode(value)
                except SchemaProblem as problem:
                    refused.append((i, problem.rejection))
                    continue
            kept.append(i)
            values.append(value)
        if not refused:
            return validate(RawBatch(raw.topic, raw.partition, raw.offsets, values, raw.timestamps), raw.values)
        stamps = raw.timestamps
        decoded = RawBatch(
            raw.topic,
            raw.partition,
            [raw.offsets[i] for i in kept],
            values,
            None if stamps is None else [stamps[i] for i in kept],
        )
        batch = validate(decoded, [raw.values[i] for i in kept])
        # kind is None for a topic of neither kind, as validation has it
        dead = [raw.dead_letter(i, kind, r.reason, r.detail) for i, r in refused]  # type: ignore[arg-type]
        batch.dead_letters = sorted(batch.dead_letters + dead, key=lambda letter: letter.source_offset)
        batch.source_offsets = raw.offsets
        batch.next_offset = raw.next_offset
        return batch
