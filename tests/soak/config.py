"""The soak's knobs, from `K2_SOAK_*` environment variables: short in CI, hours by hand (`make soak`).

The soak judges the product as it ships: the flow runs with `load_settings` defaults. One default has a window
longer than CI's 5 minutes, and only it (with the cadence tied to it) is scaled down there:

- **Snapshot retention** (`K2_SNAPSHOT_RETENTION_SECONDS`, product: 900 s). Until that window is full, every
  commit adds a snapshot to each table's metadata, which the flow holds in memory (and rewrites at every commit),
  so RSS rightly climbs for the first 15 minutes plus one maintenance period: that is bounded growth, not a leak,
  and judging it would fail the product for doing what it should. A run whose judged span cannot start after the
  window is full keeps snapshots for a quarter of its warm-up instead (CI: 30 s), so the window fills early.
- **Maintenance cadence** (`K2_MAINTENANCE_EVERY_COMMITS`, product: 300 commits, ~2.5 min here): it fits in CI's
  run, but it is what empties the retention window; with the shortened window it runs at the product's ratio of
  cadence to retention (300 commits per 900 s: one commit per 3 s of retention, 10 commits for 30 s), so the
  snapshot count swings by the same share of the window as in the product. With the product's 300 commits and a
  30 s window, the count would swing between 30 s and ~180 s of snapshots: a sawtooth longer than CI's judged
  span, which would say nothing about the product.

Everything else is the product's default: the commit interval (1 s), the seam heartbeat (30 s), recovery
snapshots (1 s), the memory budget, degradation, compaction off. `make soak` (hours, `K2_SOAK_PRODUCT_DEFAULTS=1`)
overrides nothing at all: its warm-up lasts at least until the product's retention window is full and maintained
once, and a run too short for that is refused rather than shortened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from k2.ops.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = load_settings({})  # the defaults as shipped (no environment)
# The product's maintenance cadence against its retention: commits per second of retained snapshots.
MAINTENANCE_COMMITS_PER_RETAINED_SECOND = PRODUCT.maintenance_every_commits / PRODUCT.snapshot_retention_seconds
# Commits per commit interval, at least: trades and quotes each commit every interval under a steady feed (the side
# tables less often), so `maintenance_every_commits` intervals / 2 is the longest a maintenance period lasts.
MIN_COMMITS_PER_INTERVAL = 2
# The judged span must cover a few of the flow's RSS swings (60-100 s, see tests.soak.verdict).
MIN_JUDGED_SECONDS = 150.0


@dataclass(frozen=True)
class SoakConfig:
    # CI default: five minutes, the first 120 s a warm-up: the flow's RSS climbs in slowing steps (allocator
    # high-water marks: each new largest commit or snapshot raises the floor) for ~70-120 s, then swings by about
    # +-7 MiB (+-2.5%) over 60-100 s. The judged 180 s cover about two swings, which the verdict removes.
    # 3,000 msg/s is ~5% of what the flow does from Kafka on this 2-core machine (50-70k msg/s), so a shared,
    # loaded machine still leaves it a wide margin.
    seconds: float = 300.0  # K2_SOAK_SECONDS: how long the feed is produced (the drain and checks come after)
    rate: int = 3_000  # K2_SOAK_RATE: messages per second, trades and quotes together
    # K2_SOAK_WARMUP_FRACTION: share of the run before RSS and lag are judged; with the product's retention, the
    # warm-up lasts at least until its window is full and maintained once (`warmup_seconds`).
    warmup_fraction: float = 0.4
    rss_sample_seconds: float = 0.5  # K2_SOAK_RSS_SAMPLE_SECONDS: how often the flow's and the API's RSS is read
    sample_seconds: float = 0.0  # K2_SOAK_SAMPLE_SECONDS: lag, metrics, latency; 0 = every 2 s (<= ~600 samples)
    query_interval: float = 0.2  # K2_SOAK_QUERY_INTERVAL: pause between two queries of the query thread
    # K2_SOAK_PRODUCT_DEFAULTS: 1 = override no product setting at all (`make soak`); a run too short for the
    # product's retention window is then an error. 0 = shorten the retention only when the run needs it.
    product_defaults: int = 0
    # K2_SOAK_RETENTION_SECONDS: > 0 sets the snapshot retention by hand (for experiments; not with
    # K2_SOAK_PRODUCT_DEFAULTS=1).
    retention_seconds: float = 0.0
    report: str = str(ROOT / "reports" / "soak.json")  # K2_SOAK_REPORT: the time series and verdicts
    # K2_SOAK_TRACEMALLOC: > 0 runs the flow under tracemalloc with a snapshot this often (seconds), and reports
    # what grew after the warm-up. Slows the flow; for finding a leak, not for the RSS verdict.
    tracemalloc: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SoakConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            name = f"K2_SOAK_{field.name.upper()}"
            if name in environ:
                convert = {"float": float, "int": int, "str": str}[str(field.type)]
                try:
                    values[field.name] = convert(environ[name])
                except ValueError:
                    raise ValueError(f"{name}={environ[name]!r} is not a {field.type}") from None
        config = cls(**values)  # type: ignore[arg-type]
        if config.seconds <= 0 or config.rate <= 0 or not 0 < config.warmup_fraction < 1:
            raise ValueError("K2_SOAK_SECONDS and K2_SOAK_RATE must be positive, K2_SOAK_WARMUP_FRACTION in (0, 1)")
        if config.product_defaults and config.retention_seconds:
            raise ValueError("K2_SOAK_RETENTION_SECONDS overrides a product setting: not with K2_SOAK_PRODUCT_DEFAULTS")
        if config.product_defaults and not config.fits_product_retention:
            raise ValueError(
                f"K2_SOAK_PRODUCT_DEFAULTS: {config.seconds:.0f} s is too short for the product's snapshot window "
                f"(full and maintained after {settled_seconds(PRODUCT):.0f} s, "
                f"then >= {MIN_JUDGED_SECONDS:.0f} s judged): run at least "
                f"{settled_seconds(PRODUCT) + MIN_JUDGED_SECONDS:.0f} s"
            )
        return config

    @property
    def messages(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def sample_every(self) -> float:
        return self.sample_seconds or max(2.0, self.seconds / 600)

    @property
    def fits_product_retention(self) -> bool:
        """Whether the product's snapshot window fills (and is maintained once) with a judged span left after it."""
        return self.seconds - settled_seconds(PRODUCT) >= MIN_JUDGED_SECONDS

    @property
    def overrides(self) -> dict[str, float | int]:
        """The product settings this run changes, and only those (see the module's docstring for why)."""
        if self.retention_seconds:
            retention = self.retention_seconds
        elif self.product_defaults or self.fits_product_retention:
            return {}
        else:
            retention = self.seconds * self.warmup_fraction / 4
        return {
            "snapshot_retention_seconds": retention,
            "maintenance_every_commits": max(1, round(retention * MAINTENANCE_COMMITS_PER_RETAINED_SECOND)),
        }

    @property
    def warmup_seconds(self) -> float:
        """Judging starts after this: the warm-up share of the run, and at least until the snapshot window is full
        and maintenance has run once on it (the snapshot count then stays within one maintenance period)."""
        return max(self.seconds * self.warmup_fraction, settled_seconds(load_settings({}, **self.overrides)))


def settled_seconds(settings: Settings) -> float:
    """When the snapshot window is full and maintenance has expired it once: the retention plus the longest a
    maintenance period lasts (`maintenance_every_commits` commits at `MIN_COMMITS_PER_INTERVAL` per interval)."""
    maintenance_period = settings.maintenance_every_commits / MIN_COMMITS_PER_INTERVAL * settings.epoch_seconds
    return settings.snapshot_retention_seconds + maintenance_period
