"""A vendor topic in its own JSON shape, on the real broker, through the production graph with `K2_MAPPING`."""

from __future__ import annotations

import json
from decimal import Decimal

from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import source_from_settings
from k2.kafka.producer import dead_letter_publisher, publish
from k2.ops.reconcile import reconcile
from k2.storage.catalog import DEAD_LETTERS, TRADES
from tests.fixtures.flow import kafka_settings, read_landed

MAPPING = {
    "topics": {
        "{trades}": {
            "kind": "trade",
            "fields": {
                "exchange": {"const": "KRAKEN"},
                "asset_class": {"const": "crypto"},
                "currency": {"const": "USD"},
                "symbol": "pair",
                "price": "price",
                "quantity": "qty",
                "timestamp": {"path": "time", "time": "ms"},
                "trade_id": "id",
                "side": {"path": "side", "values": {"buy": "BUY", "sell": "SELL"}},
            },
        }
    }
}


def test_a_vendor_topic_lands_exactly_through_kafka(tmp_path, kafka_bootstrap, kafka_topic):
    trades, quotes, dlq = kafka_topic(2, prefix="vendor-trades"), kafka_topic(1, prefix="q"), kafka_topic(1, prefix="d")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING).replace("{trades}", trades))
    settings = kafka_settings(tmp_path, kafka_bootstrap, trades, quotes, dlq, mapping=str(mapping))
    sent = []
    for i in range(400):  # JSON numbers with up to 8 places: exact only if never a float on the way
        price = Decimal(60_000) + Decimal(i) / Decimal(1_000_000)
        sent.append({"pair": f"XBT/USD{i % 4}", "price": price, "qty": Decimal("0.00000001") * (i + 1),
                     "time": 1_767_623_400_000 + i, "id": f"k{i}", "side": "buy" if i % 2 else "sell"})  # fmt: skip
    values = [  # numbers written as JSON numbers, in fixed notation
        f'{{"pair": "{m["pair"]}", "price": {m["price"]:f}, "qty": {m["qty"]:f}, "time": {m["time"]}, '
        f'"id": "{m["id"]}", "side": "{m["side"]}"}}'
        for m in sent
    ]
    bad = b'{"pair": "XBT/USD0", "price": 1}'  # no id, no time, no side: a dead letter
    publish(kafka_bootstrap, [(trades, m["pair"].encode(), v.encode()) for m, v in zip(sent, values, strict=True)])
    publish(kafka_bootstrap, [(trades, b"XBT/USD0", bad)])
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))

    landed = read_landed(settings)
    rows = landed.tables[TRADES]
    assert sorted(rows["trade_id"].to_pylist()) == sorted(m["id"] for m in sent)
    assert sum(rows["price"].to_pylist()) == sum(m["price"] for m in sent)
    assert sum(rows["quantity"].to_pylist()) == sum(m["qty"] for m in sent)
    assert landed.tables[DEAD_LETTERS]["raw"].to_pylist() == [bad]
    assert all(report.balanced for report in reconcile(settings))
