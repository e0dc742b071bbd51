"""Realtime reads on a real broker: Iceberg below each snapshot's seam, the Kafka tail above it, each message once.

The ground truth is what Iceberg holds once everything produced has been ingested; before that, a realtime query
must already return exactly those rows (for what has been produced so far), whatever was committed in between.
"""

from __future__ import annotations

import random

import msgspec
from litestar.testing import TestClient

from api.app import create_app
from k2.kafka.producer import publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.query import QueryEngine, Selection, latest_by_symbol, latest_indexes, ticks_between
from k2.query.hybrid import start_follower
from k2.storage.catalog import open_catalog
from tests.integration.test_kafka_ingest import run_flow, settings_on_new_topics

KEYS = ["source_topic", "source_partition", "source_offset", "symbol", "source_sequence"]


def rows_of(table) -> set[tuple]:
    return set(zip(*(table.column(k).to_pylist() for k in KEYS), strict=True))


def committed(settings, name: str) -> set[tuple]:
    table = open_catalog(settings).load_table((settings.namespace, name))
    return rows_of(table.scan(selected_fields=tuple(KEYS)).to_arrow())


def test_realtime_is_exact_across_random_commits(tmp_path, kafka_bootstrap, kafka_topic):
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 2)
    settings = msgspec.structs.replace(settings, query_refresh_seconds=0.0)
    feed = SyntheticFeed(FeedConfig(messages=12_000, symbols=12, invalid_rate=0.01, duplicate_rate=0.02, seed=4))
    messages = list(feed.messages())
    topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
    rng = random.Random(17)
    # The first chunk is committed before the follower starts, so it starts from a real seam.
    cut = 3_000
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in messages[:cut]))
    run_flow(settings)
    engine = QueryEngine.from_settings(settings)
    follower = start_follower(settings, engine)
    assert follower is not None
    seen_tail = 0
    indexes = latest_indexes()
    try:
        while cut < len(messages):
            chunk = rng.randint(500, 3_000)
            publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in messages[cut : cut + chunk]))
            cut += chunk
            if rng.random() < 0.5:
                run_flow(settings)  # commit some of it (everything produced so far: bounded run)
            realtime_rows = {}
            for name in ("trades", "quotes"):
                page = ticks_between(engine, name, Selection(realtime=True), limit=100_000)
                tail = page.freshness.tail
                assert tail is not None and tail.complete
                seen_tail += tail.rows
                got = rows_of(page.rows)
                assert len(got) == page.rows.num_rows  # no message twice
                realtime_rows[name] = got
            # Latest of a few named instruments (folded in Python) equals the all-instruments SQL fold.
            everyone = latest_by_symbol(engine, indexes, realtime=True)[0].to_pylist()
            named = sorted({row["symbol"] for row in everyone})[:3]
            few = latest_by_symbol(engine, indexes, symbols=named, realtime=True)[0].to_pylist()
            assert few == [row for row in everyone if row["symbol"] in named]
            # Ground truth for what has been produced so far: ingest it all, then read Iceberg.
            run_flow(settings)
            for name in ("trades", "quotes"):
                assert realtime_rows[name] == committed(settings, name), name
            assert latest_by_symbol(engine, indexes, symbols=named)[0].to_pylist() == few
        assert seen_tail > 0  # the tail really was used, not only Iceberg
        # Latest per symbol, realtime, equals latest from the committed tables.
        rows, fresh = latest_by_symbol(engine, latest_indexes(), realtime=True)
        committed_latest, _ = latest_by_symbol(engine, latest_indexes())
        assert rows.to_pylist() == committed_latest.to_pylist()
        assert fresh["trades"].tail is not None and fresh["trades"].tail.rows == 0
    finally:
        follower.stop()
        engine.close()


def test_realtime_over_http(tmp_path, kafka_bootstrap, kafka_topic):
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 1)
    settings = msgspec.structs.replace(settings, api_keys="rt", query_refresh_seconds=0.0)
    feed = SyntheticFeed(FeedConfig(messages=2_000, symbols=3, invalid_rate=0, duplicate_rate=0, seed=8))
    messages = list(feed.messages())
    topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in messages[:1_000]))
    run_flow(settings)
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in messages[1_000:]))
    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = "rt"
        committed_only = client.get("/v1/trades", params={"limit": 100_000}).json()
        realtime = client.get("/v1/trades", params={"limit": 100_000, "freshness": "realtime"}).json()
        tail = realtime["meta"]["tail"]
        assert tail["complete"] and tail["rows"] > 0
        assert realtime["meta"]["count"] == committed_only["meta"]["count"] + tail["rows"]
        start, end = tail["offsets"][f"{settings.trades_topic}/0"]
        assert start == realtime["meta"]["offsets"][f"{settings.trades_topic}/0"] and end > start
        symbol = realtime["data"][-1]["symbol"]
        bars = client.get("/v1/bars", params={"symbol": symbol, "interval": "1d", "freshness": "realtime"}).json()
        trades_of_symbol = sum(1 for row in realtime["data"] if row["symbol"] == symbol)
        assert sum(bar["trades"] for bar in bars["data"]) == trades_of_symbol
        latest = client.get("/v1/latest", params={"symbol": symbol, "freshness": "realtime"}).json()["data"][0]
        newest = max((r for r in realtime["data"] if r["symbol"] == symbol), key=lambda r: r["source_sequence"])
        assert latest["trade"]["trade_id"] == newest["trade_id"]
        assert client.get("/v1/trades", params={"freshness": "realtime", "snapshot_id": 1}).status_code == 400
