"""How the soak judges its time series: does memory stay flat after the warm-up, does the lag stay bounded?

Both judgements use robust statistics, because a few seconds of a shared 2-core machine are noisy: a commit, a
burst of the feed or another process's test can move one sample a lot, but not a median or a Theil-Sen slope (the
median of the slopes between every pair of samples, which ignores up to ~29% of outliers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RSS_GROWTH_LIMIT = 0.05  # after the warm-up, resident memory may grow by at most 5%
# The lag may grow by at most this share of the produce rate: a flow that consumes >= 95% of what arrives keeps
# up within noise; one below it falls behind for good (over a long run the end bound catches it as well).
LAG_SLOPE_LIMIT = 0.05
MIN_JUDGED_SAMPLES = 8


class TooFewSamples(ValueError):
    """The judged part of the run holds too few samples to say anything (the run was too short)."""


def theil_sen_slope(t: Sequence[float], y: Sequence[float]) -> float:
    """Median of the pairwise slopes (units of y per unit of t)."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(ts), k=1)
    dt = ts[j] - ts[i]
    keep = dt > 0
    return float(np.median((ys[j] - ys[i])[keep] / dt[keep]))


def _window(n: int) -> int:
    """Samples in a start or end window: a quarter of the judged ones, at least 3."""
    return max(3, n // 4)


@dataclass(frozen=True)
class RssVerdict:
    baseline_kib: float  # median of the first window after the warm-up
    end_kib: float  # median of the last window
    window_growth: float  # end / baseline - 1
    slope_kib_per_s: float  # Theil-Sen over everything after the warm-up
    fitted_growth: float  # the slope over the judged span, relative to the baseline
    growth_per_hour: float  # the slope extrapolated to an hour: reported, not judged (see `judge_rss`)
    limit: float

    @property
    def ok(self) -> bool:
        return bool(self.window_growth <= self.limit and self.fitted_growth <= self.limit)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def judge_rss(t: Sequence[float], rss_kib: Sequence[float], warmup_end: float) -> RssVerdict:
    """RSS after `warmup_end` must not grow by more than 5%, by two measures that must both hold:

    - the median of the last quarter of the samples against the median of the first quarter: a leak shows as a
      shifted level, while a transient peak (a large batch, a commit) moves neither median;
    - the Theil-Sen slope over all judged samples, times the judged span: uses every sample, so a steady leak
      too small to shift the quarters' medians beyond their noise still adds up.

    The slope is extrapolated over the span that was measured, not beyond it. On the 5-minute CI run (180 s judged)
    a leak of 5% per hour is ~700 KiB in total, well below the MiB-sized steps the allocator and librdkafka's
    queues make on their own; extrapolating that slope to hours would fail on noise. The short run therefore
    catches fast growth (a buffer that is never emptied, a cache keyed by something unbounded); slow growth is
    what the long manual run (`make soak`) is for, where the same rule then covers hours.
    """
    ts, ys = np.asarray(t, dtype=float), np.asarray(rss_kib, dtype=float)
    judged = ts >= warmup_end
    ts, ys = ts[judged], ys[judged]
    if len(ts) < MIN_JUDGED_SAMPLES:
        raise TooFewSamples(f"{len(ts)} RSS samples after the warm-up; need {MIN_JUDGED_SAMPLES}")
    w = _window(len(ts))
    baseline, end = float(np.median(ys[:w])), float(np.median(ys[-w:]))
    slope = theil_sen_slope(ts, ys)
    return RssVerdict(
        baseline_kib=baseline,
        end_kib=end,
        window_growth=end / baseline - 1,
        slope_kib_per_s=slope,
        fitted_growth=float(slope * (ts[-1] - ts[0]) / baseline),
        growth_per_hour=slope * 3_600 / baseline,
        limit=RSS_GROWTH_LIMIT,
    )


@dataclass(frozen=True)
class LagVerdict:
    end_lag: float  # median of the last window, messages
    bound: float  # messages
    slope_per_s: float  # Theil-Sen over the last half of the run, messages per second
    slope_limit: float

    @property
    def ok(self) -> bool:
        return bool(self.end_lag <= self.bound and self.slope_per_s <= self.slope_limit)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def judge_lag(t: Sequence[float], lag: Sequence[float], *, rate: float, bound: float) -> LagVerdict:
    """The lag must end below `bound` (the median of the last quarter, so one slow commit does not decide) and
    must not trend upwards over the last half of the run by more than `LAG_SLOPE_LIMIT` of the produce rate."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(lag, dtype=float)
    last_half = ts >= ts[0] + (ts[-1] - ts[0]) / 2
    ts, ys = ts[last_half], ys[last_half]
    if len(ts) < MIN_JUDGED_SAMPLES:
        raise TooFewSamples(f"{len(ts)} lag samples in the last half; need {MIN_JUDGED_SAMPLES}")
    return LagVerdict(
        end_lag=float(np.median(ys[-_window(len(ts)) :])),
        bound=bound,
        slope_per_s=theil_sen_slope(ts, ys),
        slope_limit=LAG_SLOPE_LIMIT * rate,
    )
