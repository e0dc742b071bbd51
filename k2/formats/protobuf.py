"""Protobuf payloads decoded with protobuf's runtime against the writer's descriptors into K2's wire fields.

A schema arrives as a `FileDescriptorProto` (base64, as Confluent registries serve it with `format=serialized` and
as confluent-kafka's `ProtobufSerializer` registers it) or a `FileDescriptorSet` (`.desc`, what `protoc
--descriptor_set_out` writes); the message is the one the frame's message-index list names. Each schema gets its
own descriptor pool, so two versions of one message never collide.

Field mapping: a field without presence that holds its default string ("") is absent (proto3 cannot tell unset from
empty: validation then says `missing_field:<f>`); numbers keep their value, 0 included. `google.protobuf.Timestamp`
-> µs; a message with `units` and `nanos` (e.g. `google.type.Money`) or a `value` (`google.type.Decimal`, the
wrappers) -> that value.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from typing import Any

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from k2.formats.frames import SchemaProblem, mismatch
from k2.formats.values import finish, seconds_nanos_to_us, units_nanos

_WELL_KNOWN = (any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)
_TIMESTAMP = "google.protobuf.Timestamp"


def files_from_text(schema_text: str) -> list[descriptor_pb2.FileDescriptorProto]:
    """The file a registry serves as base64 `FileDescriptorProto`; .proto source text is not read here."""
    try:
        raw = base64.b64decode(schema_text, validate=True)
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except (binascii.Error, ValueError, DecodeError) as exc:
        raise SchemaProblem(
            "unsupported_schema:protobuf_text",
            "a .proto source text; K2 reads the serialized form (Confluent registries serve it with "
            "format=serialized; confluent-kafka's ProtobufSerializer registers it)",
        ) from exc
    return [file]


def files_from_set(data: bytes) -> list[descriptor_pb2.FileDescriptorProto]:
    try:
        return list(descriptor_pb2.FileDescriptorSet.FromString(data).file)
    except DecodeError as exc:
        raise SchemaProblem("unsupported_schema:protobuf", f"not a FileDescriptorSet: {exc}") from exc


class ProtobufReader:
    """One writer schema's files in a pool of their own: `decode(indexes, payload)` -> K2 wire bytes."""

    format = "protobuf"

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]):
        pool = descriptor_pool.DescriptorPool()
        for module in _WELL_KNOWN:
            pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
        known = {module.DESCRIPTOR.name for module in _WELL_KNOWN}
        try:
            for file in files:  # a descriptor set lists dependencies first
                if file.name not in known:
                    self.file = pool.Add(file)
        except (TypeError, KeyError, ValueError) as exc:  # e.g. an import the schema does not carry
            raise SchemaProblem("unsupported_schema:protobuf", f"descriptor does not build: {exc}") from exc
        self._classes: dict[tuple[int, ...], type[Message]] = {}

    def message_class(self, indexes: list[int]) -> type[Message]:
        key = tuple(indexes)
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = message_factory.GetMessageClass(self._descriptor(indexes))
        return found

    def _descriptor(self, indexes: list[int]) -> Descriptor:
        types: Any = self.file.message_types_by_name.values()
        desc = None
        for index in indexes:
            listed = list(types)
            if not 0 <= index < len(listed):
                raise mismatch("message_index", f"index {index} names no message (there are {len(listed)})")
            desc = listed[index]
            types = desc.nested_types
        assert desc is not None
        return desc

    def decode(self, indexes: list[int], payload: io.BytesIO) -> bytes:
        cls = self.message_class(indexes)
        try:
            message = cls.FromString(payload.read())
        except DecodeError as exc:
            raise mismatch("protobuf_decode", exc) from exc
        return finish(_fields(message))


# How each field of a message type is read, worked out once per type: descriptor look-ups cost more than reads.
# A plan entry: (field name, mode, converter of a single value or None for as-is).
_MAP, _REPEATED, _PRESENT, _TEXT, _PLAIN = range(5)
Convert = Callable[[Any], Any] | None
_PLANS: dict[Descriptor, list[tuple[str, int, Convert]]] = {}  # by descriptor: each schema has its own


def _plan(desc: Descriptor) -> list[tuple[str, int, Convert]]:
    found = _PLANS.get(desc)
    if found is None:
        found = []
        for field in desc.fields:
            message_type = field.message_type
            if message_type is not None and message_type.GetOptions().map_entry:
                found.append((field.name, _MAP, _converter(message_type.fields_by_name["value"])))
                continue
            if field.is_repeated:
                mode = _REPEATED
            elif message_type is not None or field.has_presence:
                mode = _PRESENT
            elif field.type == FieldDescriptor.TYPE_STRING:
                mode = _TEXT
            else:
                mode = _PLAIN
            found.append((field.name, mode, _converter(field)))
        _PLANS[desc] = found
    return found


def _converter(field: FieldDescriptor) -> Convert:
    """How one value of `field` becomes K2's: Timestamps -> µs, units+nanos -> decimal text, a lone `value` (the
    wrappers, `google.type.Decimal`) -> that value, enums -> their names, other messages -> dicts."""
    if field.enum_type is not None:
        names = {number: value.name for number, value in field.enum_type.values_by_number.items()}
        return lambda number: names.get(number, number)
    message_type = field.message_type
    if message_type is None:
        return None
    names = message_type.fields_by_name
    if message_type.full_name == _TIMESTAMP:
        return lambda value: seconds_nanos_to_us(value.seconds, value.nanos)
    if "units" in names and "nanos" in names:
        return lambda value: units_nanos(value.units, value.nanos)
    if "value" in names and len(names) == 1:
        return lambda value: value.value
    return _fields


def _fields(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, mode, convert in _plan(message.DESCRIPTOR):
        value = getattr(message, name)
        if mode == _TEXT:
            if value != "":  # proto3 cannot tell an unset text from an empty one: absent
                out[name] = value
        elif mode == _PRESENT:
            if message.HasField(name):
                out[name] = value if convert is None else convert(value)
        elif mode == _PLAIN:
            out[name] = value if convert is None else convert(value)
        elif mode == _REPEATED:
            out[name] = list(value) if convert is None else [convert(v) for v in value]
        elif value:
            out[name] = dict(value) if convert is None else {k: convert(v) for k, v in value.items()}
    return out
