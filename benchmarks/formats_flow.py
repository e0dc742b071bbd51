"""Avro and Protobuf through the whole flow, beside JSON in the same run: msgs/s of the flow process on a real
broker, with the real schema registry, reading the same valid synthetic trades in each format to the end.

Each format gets its own topics and warehouse; the messages are written by confluent-kafka's reference serializers
with K2's registered schemas (JSON: K2's own bytes). The flow runs as `scripts/ingest.sh` runs it (recovery on),
start-up included, and the rate after its first commit is recorded too. The registry is K2_SCHEMA_REGISTRY_URL when
set, else one this process starts (scripts/schema_registry.py); the broker as in benchmarks/kafka_ingest.py.

    uv run python benchmarks/formats_flow.py [--messages N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka.schema_registry import SchemaRegistryClient

from benchmarks.common import REPORTS, given_or_owned, recorded, save_report
from benchmarks.decoders import valid_trades
from benchmarks.kafka_flow import make_topics
from benchmarks.kafka_ingest import broker, flow_run
from k2.flow.steps import tune_process
from k2.formats import shipped
from k2.kafka.producer import instrument_key, publish
from scripts.schema_registry import running_registry

REPORT = REPORTS / "formats_flow.json"
FORMATS = ("json", *shipped.FORMATS)


def registry() -> contextlib.AbstractContextManager[str]:
    return given_or_owned("K2_SCHEMA_REGISTRY_URL", running_registry, "url")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    tune_process()
    trades = valid_trades(args.messages)
    keys = [instrument_key(value) for value in trades]
    rates, steady = {}, {}
    with broker() as bootstrap, registry() as url:
        os.environ["K2_SCHEMA_REGISTRY_URL"] = url  # the flow processes inherit it
        client = SchemaRegistryClient({"url": url})
        for fmt in FORMATS:
            topic = f"bench-{fmt}-{uuid.uuid4().hex[:8]}"
            make_topics(bootstrap, topic)
            write = (lambda v: v) if fmt == "json" else shipped.serializer(fmt, "trade", client, topic)  # type: ignore[arg-type]
            total = publish(bootstrap, ((topic, key, write(value)) for key, value in zip(keys, trades, strict=True)))
            rates[fmt], _, run = flow_run(bootstrap, topic, total)
            steady[fmt] = run["msgs_per_s_after_first_commit"]
            print(f"{fmt:9s} {rates[fmt]:>9,.0f} msg/s through the flow ({steady[fmt]:,.0f} after its first commit)")
    report = {
        "benchmark": "formats_flow",
        "recorded": recorded(),
        "messages": len(trades),
        "flow_msgs_per_s": rates,
        "flow_msgs_per_s_after_first_commit": steady,
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
