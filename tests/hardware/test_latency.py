"""Adaptive timing: the CI of the median and when the loop stops."""

from __future__ import annotations

import numpy as np
import pytest

from hwtune.hardware import median_confidence_interval, time_until_confident, warm_up
from hwtune.hardware._latency import summarize_samples


class FakeClock:
    """A clock that advances only when told (seconds)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_median_ci_covers_the_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    trials = 400
    for _ in range(trials):
        x = rng.lognormal(0.0, 0.3, size=40)  # true median 1.0
        lo, hi = median_confidence_interval(x)
        hits += lo <= 1.0 <= hi
    assert 0.92 <= hits / trials <= 0.995


def test_median_ci_small_samples_return_the_range() -> None:
    assert median_confidence_interval(np.array([3.0, 1.0, 2.0])) == (1.0, 3.0)
    with pytest.raises(ValueError):
        median_confidence_interval(np.array([]))


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_median_ci_rank_is_the_binomial_quantile(confidence: float) -> None:
    from scipy import stats

    from hwtune.hardware._latency import _median_ci_rank

    for n in [*range(1, 300), 1000, 12_345, 100_000]:
        assert _median_ci_rank(n, confidence) == int(stats.binom.ppf((1 - confidence) / 2, n, 0.5)), n


def test_ci_of_the_median_imports_nothing_inside_a_measurement_window() -> None:
    # the first CI check runs inside the first measurement window: a one-time import there (scipy.stats
    # took 1-2 s of CPU) inflated that window's wall time, energy and CPU time per call (seen on an H100)
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from hwtune.hardware._latency import median_confidence_interval\n"
        "before = set(sys.modules)\n"
        "median_confidence_interval(np.arange(50.0))\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_stops_at_min_repeats_when_samples_are_identical() -> None:
    calls = []
    res = time_until_confident(lambda: calls.append(1), timer=lambda call: (call(), 2.0)[1], min_repeats=10,
                               warmup_runs=2, warmup_s=0.0, target_rel_ci=0.03)
    assert res.converged and res.repeats == 10 and res.median_ms == 2.0
    assert res.ci_low_ms == res.ci_high_ms == 2.0
    assert res.warmup == 2 and len(calls) == 12


def test_noisier_samples_need_more_repeats_and_respect_the_target() -> None:
    rng = np.random.default_rng(0)
    quiet = time_until_confident(lambda: None, timer=lambda c: 10 * (1 + 0.01 * rng.standard_normal()), warmup_runs=0, warmup_s=0, target_rel_ci=0.03)
    noisy = time_until_confident(lambda: None, timer=lambda c: 10 * (1 + 0.2 * rng.standard_normal()), warmup_runs=0, warmup_s=0, target_rel_ci=0.03)
    assert quiet.converged and noisy.converged
    assert noisy.repeats > quiet.repeats
    for r in (quiet, noisy):
        assert r.rel_half_width <= 0.03
        assert r.ci_low_ms <= r.median_ms <= r.ci_high_ms


def test_time_cap_stops_an_unconverging_loop() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(3)

    def timer(call: object) -> float:
        clock.t += 0.01  # each sample takes 10 ms of wall time
        return float(rng.uniform(1, 100))  # far too noisy for ±1 %

    res = time_until_confident(lambda: None, timer=timer, clock=clock, max_time_s=1.0, target_rel_ci=0.01, warmup_runs=0, warmup_s=0)
    assert not res.converged
    assert 95 <= res.repeats <= 105


def test_max_repeats_caps_samples() -> None:
    rng = np.random.default_rng(5)
    res = time_until_confident(lambda: None, timer=lambda c: float(rng.uniform(1, 100)), max_repeats=50, target_rel_ci=0.001, warmup_runs=0, warmup_s=0)
    assert res.repeats == 50 and not res.converged


def test_wall_clock_path_uses_sync_and_clock() -> None:
    clock = FakeClock()
    synced = []

    def call() -> None:
        clock.t += 0.004

    res = time_until_confident(call, clock=clock, sync=lambda: synced.append(1), warmup_runs=1, warmup_s=0.0)
    assert res.median_ms == pytest.approx(4.0)
    assert res.clock == "wall"
    assert len(synced) == res.repeats + res.warmup


def test_warm_up_runs_at_least_runs_and_seconds() -> None:
    clock = FakeClock()

    def call() -> None:
        clock.t += 0.01

    assert warm_up(call, runs=2, seconds=0.095, clock=clock) == 10
    assert warm_up(call, runs=5, seconds=0.0, clock=clock) == 5


def test_outliers_are_counted_not_dropped() -> None:
    s = [1.0] * 20 + [1.1] * 20 + [50.0]
    r = summarize_samples(s)
    assert r.outliers == 1 and r.repeats == 41 and r.median_ms == 1.1


def test_rejects_nonpositive_target() -> None:
    with pytest.raises(ValueError):
        time_until_confident(lambda: None, target_rel_ci=0.0)
