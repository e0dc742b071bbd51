"""The soak's judgements on series of known shape: a leak and a runaway lag fail, warm-up and noise do not."""

from __future__ import annotations

import math
import random

import pytest

from tests.soak.verdict import TooFewSamples, judge_lag, judge_rss, theil_sen_slope

MIB = 1024  # in KiB, as /proc reports RSS
T = [2.0 * i for i in range(1, 61)]  # a 2-minute run sampled every 2 s
WARMUP_END = 48.0
BASE_KIB = 300 * MIB

# The CI soak: 5 minutes, judged after 120 s, RSS read twice a second, ~280 MiB once settled.
CI_T = [0.5 * i for i in range(601)]
CI_WARMUP = 120.0
CI_BASE_KIB = 280 * MIB


def noisy(values: list[float], spread: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.uniform(-spread, spread) for v in values]


def swinging(leak_kib_per_s: float, seed: int) -> list[float]:
    """The settled flow as the CI soak sees it: a +-7 MiB swing with a period of 60-100 s and a random phase,
    +-1 MiB of noise and a few transient peaks, on top of `leak_kib_per_s` after the warm-up."""
    rng = random.Random(seed)
    period, phase = rng.uniform(60, 100), rng.uniform(0, 2 * math.pi)
    rss = [
        CI_BASE_KIB
        + leak_kib_per_s * max(t - CI_WARMUP, 0.0)
        + 7 * MIB * math.sin(2 * math.pi * t / period + phase)
        + rng.uniform(-1, 1) * MIB
        for t in CI_T
    ]
    for i in rng.sample(range(len(rss)), 5):
        rss[i] += 15 * MIB
    return rss


def test_theil_sen_ignores_outliers_that_move_a_least_squares_fit():
    y = [10.0 + 0.5 * t for t in T]
    y[-1] += 10_000  # one wild sample at the end
    assert theil_sen_slope(T, y) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(40))
def test_a_flat_series_swinging_by_7_mib_over_60_to_100_s_passes_in_any_phase(seed):
    verdict = judge_rss(CI_T, swinging(0.0, seed), CI_WARMUP)
    assert verdict.ok, verdict
    assert abs(verdict.fitted_growth) < 0.01
    assert abs(verdict.floor_growth) < 0.01
    assert verdict.swing_kib == pytest.approx(7 * MIB, rel=0.15)


@pytest.mark.parametrize("seed", range(40))
def test_a_leak_of_a_tenth_of_a_mib_per_second_fails_in_any_phase(seed):
    # +18 MiB over the judged 180 s, +6.4% of 280 MiB: hidden in the swing's +-7 MiB to the eye.
    verdict = judge_rss(CI_T, swinging(0.1 * MIB, seed), CI_WARMUP)
    assert not verdict.ok, verdict
    assert verdict.fitted_growth == pytest.approx(18 / 280, abs=0.01)


def test_the_raw_slope_cannot_tell_the_swing_from_a_leak():
    # Why the verdict fits the swing: Theil-Sen on the raw series reads the swing alone as up to ~+-3%.
    flat = [theil_sen_slope(CI_T[240::2], swinging(0.0, seed)[240::2]) * 180 / CI_BASE_KIB for seed in range(40)]
    assert max(abs(g) for g in flat) > 0.015


def test_memory_that_settles_during_the_warm_up_and_stays_flat_passes():
    # Grows 30% while warming up, then flat with +-1% noise and a 4% transient peak near the end.
    rss = [BASE_KIB * (0.7 + 0.3 * min(t, 30.0) / 30.0) for t in T]
    rss = noisy(rss, BASE_KIB * 0.01)
    rss[-2] *= 1.04
    verdict = judge_rss(T, rss, WARMUP_END)
    assert verdict.ok, verdict
    assert abs(verdict.fitted_growth) < 0.02


def test_memory_that_keeps_growing_after_the_warm_up_fails():
    # +8% over the judged 72 s: a leak of ~340 KiB/s on a 300 MiB process.
    rss = noisy([BASE_KIB * (1 + 0.08 * max(t - WARMUP_END, 0.0) / 72.0) for t in T], BASE_KIB * 0.01)
    verdict = judge_rss(T, rss, WARMUP_END)
    assert not verdict.ok
    assert verdict.fitted_growth == pytest.approx(0.08, abs=0.02)


def test_a_step_up_that_stays_fails_by_the_floor():
    rss = [CI_BASE_KIB * (1.07 if t > 200 else 1.0) for t in CI_T]  # before the last 90 s floor window
    verdict = judge_rss(CI_T, noisy(rss, MIB), CI_WARMUP)
    assert verdict.floor_growth == pytest.approx(0.07, abs=0.01)
    assert not verdict.ok


def test_a_run_too_short_to_judge_says_so():
    with pytest.raises(TooFewSamples):
        judge_rss(T[:30], [BASE_KIB] * 30, WARMUP_END)


RATE = 3_000
BOUND = RATE * 7.0


def test_a_lag_that_saws_with_the_commits_passes():
    # Builds up between commits (1 s) and falls back at each: between 0 and one second of messages.
    lag = [RATE * ((t * 0.37) % 1.0) for t in T]
    verdict = judge_lag(T, lag, rate=RATE, bound=BOUND)
    assert verdict.ok, verdict


def test_a_flow_consuming_90_percent_of_the_feed_fails_by_its_trend():
    lag = noisy([0.10 * RATE * t for t in T], RATE * 0.3)  # falls behind by 300 msg/s, still under the bound
    verdict = judge_lag(T[:40], lag[:40], rate=RATE, bound=BOUND * 10)
    assert verdict.slope_per_s == pytest.approx(300, rel=0.15)
    assert not verdict.ok


def test_a_lag_above_its_bound_at_the_end_fails_even_when_flat():
    verdict = judge_lag(T, [BOUND * 1.5] * len(T), rate=RATE, bound=BOUND)
    assert verdict.slope_per_s == 0
    assert not verdict.ok
