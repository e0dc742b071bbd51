"""K2's own v2 schemas (package data in `schemas/`), their registration, and the reference serializers.

`trade.avsc`/`quote.avsc` are Avro; `trade.proto`/`quote.proto` are Protobuf, with the descriptor sets protoc made
from them (`trade.desc`/`quote.desc`; `make proto-descriptors` remakes them after an edit), from which the message
classes are built at run time through a descriptor pool (no generated Python). Subjects follow Confluent's topic
name strategy (`<topic>-value`), which confluent-kafka's serializers use, so a subject holds one format (a registry
checking compatibility refuses a Protobuf version after an Avro one); Protobuf is registered in the serialized form,
as its `ProtobufSerializer` registers it itself, so both name the same schema id.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.common.protobuf import _schema_to_str
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.message import Message

from k2.formats.protobuf import ProtobufReader, files_from_set
from k2.ingest.checks import DECIMAL_FIELDS
from k2.model.schemas import Kind

SCHEMAS = Path(__file__).with_name("schemas")
Format = Literal["avro", "protobuf"]
FORMATS: tuple[Format, ...] = ("avro", "protobuf")
_MESSAGE_NAMES = {"trade": "Trade", "quote": "Quote"}
_TIME_FIELDS = ("timestamp", "ingestion_timestamp")
_wire = msgspec.json.Decoder(float_hook=Decimal)


def avro_schema(kind: Kind) -> str:
    return (SCHEMAS / f"{kind}.avsc").read_text()


def proto_class(kind: Kind) -> type[Message]:
    """The message class of K2's .proto for `kind`, built from its descriptor set."""
    reader = ProtobufReader(files_from_set((SCHEMAS / f"{kind}.desc").read_bytes()))
    return reader.message_class([0])


def subject(topic: str) -> str:
    return f"{topic}-value"


def schema(fmt: Format, kind: Kind) -> Schema:
    if fmt == "avro":
        return Schema(avro_schema(kind), "AVRO")
    return Schema(_schema_to_str(proto_class(kind).DESCRIPTOR.file), "PROTOBUF")


def register(client: SchemaRegistryClient, topics: dict[Kind, str], fmt: Format) -> dict[str, int]:
    """Register K2's schemas in `fmt` under each topic's subject; the ids, by subject."""
    return {subject(topic): client.register_schema(subject(topic), schema(fmt, kind)) for kind, topic in topics.items()}


def serializer(
    fmt: Format, kind: Kind, client: SchemaRegistryClient, topic: str, *, auto_register: bool = True
) -> Callable[[bytes], bytes]:
    """JSON wire bytes -> the same message in `fmt`, written by confluent-kafka's reference serializer with K2's
    schema: registered by the serializer when the subject has not got it, or (`auto_register=False`) the subject's
    latest version (what `k2 schemas register` registered), so a subject without one fails instead."""
    context = SerializationContext(topic, MessageField.VALUE)
    conf = {"auto.register.schemas": auto_register, "use.latest.version": not auto_register}
    if fmt == "avro":
        avro = AvroSerializer(client, avro_schema(kind), conf=conf)
        return lambda value: avro(avro_fields(_wire.decode(value)), context)  # type: ignore[return-value]
    cls = proto_class(kind)
    proto = ProtobufSerializer(cls, client, {"use.deprecated.format": False, **conf})
    return lambda value: proto(proto_message(cls, _wire.decode(value)), context)  # type: ignore[return-value]


def avro_fields(message: dict[str, Any]) -> dict[str, Any]:
    """A JSON wire message as the values AvroSerializer takes for K2's schema (decimals as `Decimal`)."""
    return {
        name: Decimal(str(value)) if name in DECIMAL_FIELDS and value is not None else value
        for name, value in message.items()
    }


def proto_message(cls: type[Message], message: dict[str, Any]) -> Message:
    """A JSON wire message as K2's protobuf message (decimals as their exact text, times as Timestamps)."""
    out = cls()
    for name, value in message.items():
        if value is None or name not in cls.DESCRIPTOR.fields_by_name:
            continue
        if name in _TIME_FIELDS:
            seconds, micros = divmod(int(value), 1_000_000)
            getattr(out, name).FromMicroseconds(seconds * 1_000_000 + micros)
        elif name in DECIMAL_FIELDS:
            setattr(out, name, format(Decimal(str(value)), "f"))
        elif name == "trade_conditions":
            out.trade_conditions.extend(value)
        elif name == "vendor_data":
            out.vendor_data.update(value)
        else:
            setattr(out, name, value)
    return out
