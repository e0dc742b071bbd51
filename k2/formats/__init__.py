"""Avro and Protobuf in the Confluent wire format, beside K2's JSON.

A message whose first byte is 0 is framed: magic byte 0, a 4-byte big-endian schema id, then the payload (for
Protobuf after its message-index list). Anything else is JSON and takes the JSON path untouched. The format is told
by the bytes and the schema they name, so a topic may carry a mix and a replay decides the same.

- `frames`: the frame (read with confluent-kafka's own `SchemaId`) and the reasons a framed message is refused.
- `resolve`: schemas by id, from a Confluent-compatible registry (`K2_SCHEMA_REGISTRY_URL`, cached; a registry
  that is down or slow is waited for through `k2.ops.breaker`, never a dead letter) or from a local schema
  directory (`K2_SCHEMA_DIR`, offline).
- `avro`, `protobuf`: a payload decoded with fastavro / protobuf into K2's wire fields (`values` converts the
  decimals and times exactly).
- `route`: a batch with framed messages through decode, then the exact JSON validation, merged back in offset
  order.
- `shipped`: K2's v2 schemas (`schemas/*.avsc`, `*.proto`, and the `.desc` descriptor sets protoc made from the
  `.proto` files), their registration (`k2 schemas register`) and the reference serializers `k2 produce --format`
  writes with.
"""
