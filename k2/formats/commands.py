"""What the `k2` command line does with formats: `k2 schemas register` and `k2 produce --format avro|protobuf`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from k2.formats import shipped
from k2.model.schemas import Kind
from k2.ops.config import Settings


def registry_client(settings: Settings) -> SchemaRegistryClient | None:
    if not settings.schema_registry_url:
        print("k2: set K2_SCHEMA_REGISTRY_URL (e.g. `make registry-up`)", file=sys.stderr)
        return None
    return SchemaRegistryClient({"url": settings.schema_registry_url})


def topics(settings: Settings) -> dict[Kind, str]:
    return {"trade": settings.trades_topic, "quote": settings.quotes_topic}


def register_command(settings: Settings, fmt: shipped.Format) -> int:
    """Register K2's v2 schemas in `fmt` under the trades/quotes topics' subjects; print their ids."""
    client = registry_client(settings)
    if client is None:
        return 2
    for name, schema_id in shipped.register(client, topics(settings), fmt).items():
        print(f"{schema_id:>6}  {name} {fmt}")
    return 0


def encoder(settings: Settings, fmt: shipped.Format) -> Callable[[str, bytes], bytes] | None:
    """(topic, JSON wire bytes) -> the message in `fmt`, by the reference serializers with the schemas `k2 schemas
    register` registered (the subject's latest version; nothing is registered here); a line that is not a K2
    message goes on as it is (the flow dead-letters it, as it would the JSON line)."""
    client = registry_client(settings)
    if client is None:
        return None
    writers = {
        topic: shipped.serializer(fmt, kind, client, topic, auto_register=False)
        for kind, topic in topics(settings).items()
    }

    def encode(topic: str, value: bytes) -> bytes:
        try:
            return writers[topic](value)
        except SchemaRegistryError as exc:
            raise SystemExit(f"k2: {exc} (register K2's schemas first: k2 schemas register --format {fmt})") from exc
        except Exception as exc:  # any line the serializer refuses is sent unchanged, and said
            print(f"k2: sent unchanged (not serializable as {fmt}: {exc}): {value[:80]!r}", file=sys.stderr)
            return value

    return encode
