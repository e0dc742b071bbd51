"""Schemas by id: from a local schema directory, then from a Confluent-compatible registry; each parsed once.

Local directory (`K2_SCHEMA_DIR`, offline): `<id>.avsc` (Avro), `<id>.desc` (a protobuf `FileDescriptorSet`, as
`protoc --include_imports --descriptor_set_out` writes it) or `<id>.json` (the registry's own answer for that id,
e.g. `curl $URL/schemas/ids/<id>?format=serialized`). Registry (`K2_SCHEMA_REGISTRY_URL`): confluent-kafka's
`SchemaRegistryClient`, asked for the serialized form. An id neither knows is `unknown_schema`.

A registry that does not answer (refused, timed out, 5xx, or any answer but "no such id") is not a bad message: the
fetch is retried through a `CircuitBreaker` until the registry is back, and the caller (the flow's validate step)
waits meanwhile, so the source stops being read: backpressure, and no valid message becomes a dead letter.
Answers are cached per id for the life of the process (an id names one schema forever), "no such id" included.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from k2.formats.frames import SchemaProblem
from k2.ops.breaker import BreakerState, CircuitBreaker
from k2.ops.metrics import BREAKER_STATE

# The readers are imported where a schema is loaded: fastavro and protobuf take ~0.1 s to import, which a flow that
# never sees a framed message should not pay at every start.
if TYPE_CHECKING:
    from k2.formats.avro import AvroReader
    from k2.formats.protobuf import ProtobufReader

    Reader = AvroReader | ProtobufReader

log = logging.getLogger(__name__)
REGISTRY_TIMEOUT_SECONDS = 5
NOT_FOUND = 404


class SchemaSource(Protocol):
    def reader(self, schema_id: int) -> Reader:
        """The reader for a schema id; raises `SchemaProblem` (`unknown_schema`, `unsupported_schema:*`)."""
        ...


def reader_for(schema_type: str | None, text: str) -> Reader:
    """A reader for a schema as a registry serves it. The type is checked against the text: one registry labels a
    serialized protobuf descriptor as Avro, so a text that is not JSON is tried as protobuf."""
    from k2.formats.avro import AvroReader
    from k2.formats.protobuf import ProtobufReader, files_from_text

    kind = (schema_type or "AVRO").upper()
    if kind == "PROTOBUF" or (kind == "AVRO" and not text.lstrip().startswith(("{", '"', "["))):
        return ProtobufReader(files_from_text(text))
    if kind == "AVRO":
        return AvroReader(text)
    raise SchemaProblem(f"unsupported_schema:{kind.lower()}", f"K2 reads Avro and Protobuf, not {kind}")


def unknown(schema_id: int, where: str) -> SchemaProblem:
    return SchemaProblem("unknown_schema", f"schema id {schema_id} is not in {where}")


class CachedSource:
    """Answers (readers and problems) cached by id."""

    def __init__(self) -> None:
        self._answers: dict[int, Reader | SchemaProblem] = {}

    def reader(self, schema_id: int) -> Reader:
        found = self._answers.get(schema_id)
        if found is None:
            try:
                found = self._load(schema_id)
            except SchemaProblem as problem:
                found = problem
            self._answers[schema_id] = found
        if isinstance(found, SchemaProblem):
            raise found
        return found

    def _load(self, schema_id: int) -> Reader:
        raise NotImplementedError


class LocalSchemas(CachedSource):
    """Schemas from files named by id in one directory."""

    def __init__(self, directory: str | Path, fallback: SchemaSource | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.fallback = fallback

    def _load(self, schema_id: int) -> Reader:
        from k2.formats.avro import AvroReader
        from k2.formats.protobuf import ProtobufReader, files_from_set

        base = self.directory / str(schema_id)
        if (path := base.with_suffix(".avsc")).is_file():
            return AvroReader(path.read_text())
        if (path := base.with_suffix(".desc")).is_file():
            return ProtobufReader(files_from_set(path.read_bytes()))
        if (path := base.with_suffix(".json")).is_file():
            try:
                answer = json.loads(path.read_text())
                schema_type, text = answer.get("schemaType"), answer["schema"]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise SchemaProblem("unsupported_schema:file", f"{path} is not a registry answer: {exc!r}") from exc
            return reader_for(schema_type, text)
        if self.fallback is not None:
            return self.fallback.reader(schema_id)
        raise unknown(schema_id, f"the schema directory {self.directory}")


class RegistrySchemas(CachedSource):
    """Schemas from a Confluent-compatible registry; waits (breaker) while the registry does not answer."""

    def __init__(self, url: str, breaker: CircuitBreaker | None = None, timeout: float = REGISTRY_TIMEOUT_SECONDS):
        super().__init__()
        self.url = url
        # Imported here: confluent-kafka's registry client (and its HTTP stack) takes ~0.4 s to import, which a
        # flow without a registry should not pay at every start.
        from confluent_kafka.schema_registry import SchemaRegistryClient

        # The client's own retries off: the breaker retries, with its backoff, state metric and stop.
        self.client = SchemaRegistryClient({"url": url, "timeout": timeout, "max.retries": 0})
        self.breaker = breaker or CircuitBreaker("schema_registry", max_backoff=5.0, on_state=_export_state)
        self.fetches = 0  # answers received from the registry (tests read it)

    def _load(self, schema_id: int) -> Reader:
        schema = self.breaker.run(lambda: self._fetch(schema_id))
        if schema is None:
            raise unknown(schema_id, f"the schema registry {self.url}")
        return reader_for(schema.schema_type, schema.schema_str)

    def _fetch(self, schema_id: int):
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self.client.get_schema(schema_id, fmt="serialized")
        except SchemaRegistryError as exc:
            if exc.http_status_code != NOT_FOUND:
                raise
            schema = None
        self.fetches += 1
        return schema


def _export_state(name: str, state: BreakerState) -> None:
    BREAKER_STATE.labels(name).set(int(state))


def save_answer(directory: str | Path, schema_id: int, schema_type: str | None, text: str) -> Path:
    """Keep a registry's answer for one id in a local schema directory (`<id>.json`), for the offline mode."""
    path = Path(directory) / f"{schema_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": text, "schemaType": schema_type or "AVRO"}))
    return path


def schema_source(registry_url: str, schema_dir: str, breaker: CircuitBreaker | None = None) -> SchemaSource | None:
    """The configured source: the local directory first, then the registry; None when neither is set."""
    registry = RegistrySchemas(registry_url, breaker) if registry_url else None
    if schema_dir:
        return LocalSchemas(schema_dir, fallback=registry)
    return registry
