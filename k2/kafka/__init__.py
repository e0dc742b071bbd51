"""Kafka: `admin` (topics, partitions, watermarks), `producer` (the idempotent producer with checked delivery,
instrument keys, the dead-letter publisher) and `reader` (the compiled reader: one partition read by librdkafka and
validated on a thread of its own). The flow's source (`k2.flow.kafka_source`) and the realtime tail read with it.
"""
