"""Kafka, outside the flow: `admin` (topics, partitions, watermarks) and `producer` (the idempotent producer with
checked delivery, instrument keys, the dead-letter publisher). The flow's source is `k2.flow.kafka_source`.
"""
