"""`python -m bytewax.run flows.ingest` as a user runs it: a real process, a real warehouse on disk."""

import os
from pathlib import Path

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.ops.config import load_settings
from tests.fixtures.flow import assert_landed_exactly, flow_process_env, run_flow_process
from tests.fixtures.market import fed_per_partition

ROOT = Path(__file__).resolve().parents[2]


def test_bytewax_run_fills_the_local_warehouse(tmp_path):
    done = run_flow_process(flow_process_env(tmp_path / "k2", 20_000, 10))
    assert done.returncode == 0, done.stderr[-3000:]
    settings = load_settings({}, data_dir=str(tmp_path / "k2"))
    # The oracle: the feed the process ran (K2_SYNTHETIC_*, the default seed), regenerated and counted here.
    feed = SyntheticFeed(FeedConfig(messages=20_000, symbols=10, seed=settings.synthetic_seed))
    fed = fed_per_partition(feed_batches(feed))
    landed = assert_landed_exactly(settings, feed.stats)
    assert landed.messages == fed and feed.stats.sent >= 20_000
    assert landed.tables["trades"].num_rows > 5_000
    assert all(seam for seam in landed.seams.values())


def test_bad_configuration_stops_with_a_clear_message(tmp_path):
    env = {**os.environ, "K2_DATA_DIR": str(tmp_path), "K2_EPOCH_SECONDS": "soon"}
    done = run_flow_process(env)
    assert done.returncode != 0
    assert "K2_EPOCH_SECONDS" in done.stderr
