"""Soak: steady ingest and queries for K2_SOAK_SECONDS (CI: 5 minutes; `make soak`: hours).

Real broker, the flow as the real process (`python -m bytewax.run flows.ingest`, recovery on, tailing Kafka) with
the product's default settings (tests/soak/config.py says which one CI shortens, and why), the real API process. A
producer sends the synthetic feed at K2_SOAK_RATE msg/s, a query thread asks the API steadily, one sampler records
the flow's and the API's RSS twice a second, another the ingest lag and query latency every few seconds. After a
warm-up the flow's RSS must not grow by more than 5% (tests/soak/verdict.py) and the lag must stay bounded; no
query may fail; once the producer stops and the flow drains, every message is exactly once a row, a dead letter or
a counted duplicate. The time series and verdicts go to reports/soak.json (K2_SOAK_REPORT).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import load_settings
from k2.ops.reconcile import reconcile
from k2.storage.catalog import ensure_tables, open_catalog
from k2.storage.writer import SIDE_TABLE_INTERVALS
from tests.fixtures.api import api_server
from tests.fixtures.net import free_port
from tests.soak.config import PRODUCT, SoakConfig
from tests.soak.exactness import count_landed
from tests.soak.flow_process import finish_bounded, flow_log_tail, flow_process, stop, trace_dir
from tests.soak.load import PacedProducer, QueryLog, QueryLoop
from tests.soak.report import machine, query_summary, summary_text, write_report
from tests.soak.sampling import LagProbe, RssSampler, Sampler, child_pid
from tests.soak.traced_flow import top_growth
from tests.soak.verdict import judge_lag, judge_rss, rss_profile

API_KEY = "soak-key"
PARTITIONS = 4
# Data lag: a message waits for the next commit (one interval), then for that commit to land while the next
# interval fills (one more: at most one commit is pending); the slack covers a stall of a shared machine.
DATA_LAG_INTERVALS = 2
LAG_SLACK_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 120.0
# The settings the soak reports and checks against the product's defaults (all that shape the flow's memory).
PRODUCT_SETTINGS = (
    "epoch_seconds",
    "snapshot_seconds",
    "commit_max_rows",
    "seam_heartbeat_seconds",
    "snapshot_retention_seconds",
    "snapshot_retain_last",
    "maintenance_every_commits",
    "maintenance_compact",
    "degradation",
    "memory_limit_mb",
    "batch_size",
    "dedupe_max_keys",
    "dedupe_horizon_seconds",
)


def wait_until_answers(url: str, flow: subprocess.Popen, workdir: Path, timeout: float = 120.0) -> None:
    """Until the flow process serves its metrics (it is up and has built its dataflow)."""
    deadline = time.monotonic() + timeout
    while True:
        assert flow.poll() is None, f"the flow exited with {flow.returncode}:\n{flow_log_tail(workdir)}"
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"the flow did not serve {url} in {timeout:.0f} s"
            time.sleep(0.2)


@pytest.mark.slow
def test_steady_ingest_and_queries_keep_memory_flat_and_lag_bounded(tmp_path, kafka_bootstrap, kafka_topic, capsys):
    config = SoakConfig.from_env()
    settings = load_settings(
        {},
        data_dir=str(tmp_path / "k2"),
        source="kafka",
        kafka_bootstrap=kafka_bootstrap,
        trades_topic=kafka_topic(PARTITIONS, prefix="soak-trades"),
        quotes_topic=kafka_topic(PARTITIONS, prefix="soak-quotes"),
        dlq_topic=kafka_topic(1, prefix="soak-dlq"),
        **config.overrides,  # only what the run is too short for: none with K2_SOAK_PRODUCT_DEFAULTS
    )
    product = {name: getattr(PRODUCT, name) for name in PRODUCT_SETTINGS}
    assert {name: getattr(settings, name) for name in PRODUCT_SETTINGS} == product | config.overrides
    ensure_tables(open_catalog(settings), settings.namespace)  # the API and the lag probe start before any commit
    feed = SyntheticFeed(FeedConfig(messages=config.messages, symbols=50, partitions=PARTITIONS, seed=2026))
    topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
    queries = QueryLog()
    report: dict = {
        "config": config.__dict__ | {"warmup_seconds": config.warmup_seconds},
        "settings": {name: getattr(settings, name) for name in PRODUCT_SETTINGS},
        "overrides": config.overrides,
        "machine_at_start": machine(),
    }

    metrics_port = free_port()
    with (
        flow_process(settings, tmp_path, metrics_port, config.tracemalloc) as flow,
        # No K2_KAFKA_BOOTSTRAP for the API: committed queries only, no realtime follower.
        api_server(settings, API_KEY, K2_KAFKA_BOOTSTRAP="") as base_url,
    ):
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_until_answers(metrics_url, flow, tmp_path)
        probe = LagProbe(settings)
        producer = PacedProducer(kafka_bootstrap, topics, feed, config.rate)
        query_loop = QueryLoop(base_url, API_KEY, config.query_interval, queries)
        started = time.monotonic()
        api_pid = child_pid("-m", "api")
        sampler = Sampler(config.sample_every, flow.pid, api_pid, probe, metrics_url, producer, queries, started)
        rss_sampler = RssSampler(config.rss_sample_seconds, {"flow": flow.pid, "api": api_pid}, started)
        threads = (producer, query_loop, sampler, rss_sampler)
        for thread in threads:
            thread.start()
        try:
            # The producer ends once the whole feed is sent; meanwhile everything must stay up.
            while producer.is_alive():
                producer.join(timeout=1)
                assert flow.poll() is None, f"the flow exited with {flow.returncode}:\n{flow_log_tail(tmp_path)}"
                assert sampler.error is None, f"sampling failed: {sampler.error!r}"
                assert rss_sampler.error is None, f"RSS sampling failed: {rss_sampler.error!r}"
        finally:
            for thread in threads:
                thread.stop()
            for thread in threads:
                thread.join(timeout=90)
        assert producer.error is None, f"the producer failed: {producer.error!r}"
        assert sampler.error is None, f"sampling failed: {sampler.error!r}"

        # Drained: every partition's own table has committed up to the high watermark.
        drain_started = time.monotonic()
        while probe.lag()[0] > 0:
            assert time.monotonic() - drain_started < DRAIN_TIMEOUT_SECONDS, (
                f"the flow did not drain: high watermarks {probe.high_watermarks()}, seams {probe.seams()}"
            )
            assert flow.poll() is None, f"the flow exited with {flow.returncode}:\n{flow_log_tail(tmp_path)}"
            time.sleep(0.5)
        drain_seconds = time.monotonic() - drain_started
        lag_when_drained = probe.lag()
        stop(flow)
    # Ctrl-C committed what the flow held; a bounded run from its recovery state then finds nothing left to do
    # but must end cleanly, and the checks below cover both runs.
    assert finish_bounded(settings, tmp_path) == 0, flow_log_tail(tmp_path)
    highs = probe.high_watermarks()
    lag_after_finish = probe.lag()

    samples = sampler.samples
    t = [s.t for s in samples]
    rss_t = rss_sampler.t
    rss = judge_rss(rss_t, rss_sampler.kib["flow"], config.warmup_seconds)
    api_rss = judge_rss(rss_t, rss_sampler.kib["api"], config.warmup_seconds)
    epoch = settings.epoch_seconds
    data_lag = judge_lag(
        t,
        [s.data_lag for s in samples],
        rate=config.rate,
        bound=config.rate * (DATA_LAG_INTERVALS * epoch + LAG_SLACK_SECONDS),
    )
    # The side tables commit every SIDE_TABLE_INTERVALS intervals (or at the heartbeat), so the lowest seam trails.
    side_interval = max(SIDE_TABLE_INTERVALS * epoch, settings.seam_heartbeat_seconds)
    committed_lag = judge_lag(
        t,
        [s.committed_lag for s in samples],
        rate=config.rate,
        bound=config.rate * (side_interval + DATA_LAG_INTERVALS * epoch + LAG_SLACK_SECONDS),
    )

    landed = count_landed(settings)
    stats = feed.stats
    reports = reconcile(settings, {key: (0, high) for key, high in highs.items()})

    report |= {
        "run": {
            "sent": producer.sent,
            "produce_seconds": producer.seconds,
            "achieved_rate": producer.sent / producer.seconds,
            "drain_seconds": drain_seconds,
            "lag_when_drained": {"data": lag_when_drained[0], "committed": lag_when_drained[1]},
            "lag_after_bounded_finish": {"data": lag_after_finish[0], "committed": lag_after_finish[1]},
        },
        "verdicts": {
            "flow_rss": rss.to_dict(),
            "data_lag": data_lag.to_dict(),
            "committed_lag": committed_lag.to_dict(),
        },
        "api_rss": api_rss.to_dict(),
        "flow_rss_profile": rss_profile(rss_t, rss_sampler.kib["flow"]),
        "queries": query_summary(queries.records),
        "exactness": {
            "sent": stats.sent,
            "rows": landed.rows,
            "dead_letters": landed.dead_letters,
            "duplicates": landed.duplicates,
            "accounted": landed.rows + landed.dead_letters + landed.duplicates,
            "repeated_positions": landed.repeated_positions,
            "feed_invalid": stats.invalid,
            "feed_duplicates": stats.duplicates,
        },
        "machine_at_end": machine(),
        # The flow starts before the load: its snapshots' times are a few seconds ahead of the samples'.
        "tracemalloc_growth": top_growth(trace_dir(tmp_path), config.warmup_seconds) if config.tracemalloc else [],
        "samples": [s.to_dict() for s in samples],
        "rss_samples": rss_sampler.to_dict(),
    }
    write_report(Path(config.report), report)
    with capsys.disabled():
        print("\n" + summary_text(report))
        print("\n".join(report["tracemalloc_growth"]))

    assert producer.sent == stats.sent == config.messages
    assert not queries.failures(), f"failed queries: {queries.failures()[:5]}"
    assert rss.ok, f"the flow's RSS grew after the warm-up: {rss}"
    assert data_lag.ok, f"the data lag is not bounded: {data_lag}"
    assert committed_lag.ok, f"the committed lag is not bounded: {committed_lag}"

    assert landed.rows == stats.sent - stats.invalid - stats.duplicates, "lost or duplicated rows"
    assert landed.dead_letters == stats.invalid
    assert landed.duplicates == stats.duplicates
    assert not any(landed.repeated_positions.values()), f"a source position landed twice: {landed}"
    for partition in reports:
        assert partition.balanced, partition
        assert partition.lag == 0, partition
