"""`k2 schemas register` and `k2 produce --format avro|protobuf` on the real broker and registry: the produced
messages carry the registered schema ids, and the flow lands every one as a row or a dead letter."""

from __future__ import annotations

import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition

from flows.ingest import build_flow
from k2.flow.sources import source_from_settings
from k2.kafka.producer import dead_letter_publisher
from k2.ops.cli import main
from k2.ops.reconcile import reconcile
from k2.storage.catalog import DEAD_LETTERS, QUOTES, TRADES
from tests.fixtures.flow import kafka_settings, read_landed

pytestmark = pytest.mark.integration


def first_bytes(bootstrap: str, topic: str, partitions: int) -> set[bytes]:
    """The first 5 bytes (magic byte + schema id) of every message in a topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "k2-test", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found, ended = set(), 0
    while ended < partitions:
        message = consumer.poll(5)
        assert message is not None, "the topic did not reach its end"
        if message.error():
            ended += 1
        else:
            found.add(message.value()[:5])
    consumer.close()
    return found


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_register_then_produce_writes_with_the_registered_schemas(
    tmp_path, monkeypatch, capsys, kafka_bootstrap, kafka_topic, schema_registry_url, fmt
):
    trades, quotes, dlq = kafka_topic(2, prefix="cli-trades"), kafka_topic(2, prefix="cli-quotes"), kafka_topic(1)
    environment = {"K2_KAFKA_BOOTSTRAP": kafka_bootstrap, "K2_SCHEMA_REGISTRY_URL": schema_registry_url,
                   "K2_TRADES_TOPIC": trades, "K2_QUOTES_TOPIC": quotes, "K2_KAFKA_PARTITIONS": "2"}  # fmt: skip
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match="k2 schemas register --format"):  # produce looks the schemas up
        main(["produce", "--synthetic", "10", "--format", fmt])
    assert main(["schemas", "register", "--format", fmt]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    ids = {words[1]: int(words[0]) for words in printed if words[2:] == [fmt]}
    assert set(ids) == {f"{trades}-value", f"{quotes}-value"}
    assert main(["produce", "--synthetic", "3000", "--format", fmt]) == 0

    for topic in (trades, quotes):
        frames = {head for head in first_bytes(kafka_bootstrap, topic, 2) if head[:1] == b"\x00"}
        assert frames == {b"\x00" + ids[f"{topic}-value"].to_bytes(4, "big")}  # the ids `register` printed

    settings = kafka_settings(tmp_path, kafka_bootstrap, trades, quotes, dlq, schema_registry_url=schema_registry_url)
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))
    landed = read_landed(settings)
    kept = sum(landed.tables[name].num_rows for name in (TRADES, QUOTES, DEAD_LETTERS))
    assert kept + sum(landed.duplicates.values()) == 3000  # nothing sent before the schemas were registered
    assert landed.tables[TRADES].num_rows > 0 and landed.tables[QUOTES].num_rows > 0
    assert all(report.balanced for report in reconcile(settings))
