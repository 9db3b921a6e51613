"""The study's retest interval: where a later measurement of a kept network falls (``study._retest``)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from hwtune.hardware import Measurement
from hwtune.study import parse_study_file, study_from_file
from hwtune.study._retest import retest_interval, retest_pairs
from tests._tiny_digits import tiny_digits_spec


def _m(value: float, rel_half: float) -> Measurement:
    return Measurement("latency_ms", value, "ms", "measured:test-double", value * math.exp(-rel_half), value * math.exp(rel_half), 10)


def _rec(before: Measurement | None, after: Measurement | None = None, status: str = "trained") -> Any:
    return SimpleNamespace(status=status, hardware={"latency_ms": before} if before else {}, final_hardware={"latency_ms": after} if after else {})


def _drifting_study(rng: np.random.Generator, n: int, se: float, drift: float) -> tuple[list[Any], list[float], np.ndarray]:
    """``n`` kept networks, each measured twice at different times on a machine whose speed moves by
    ``drift`` (log sd) between times, each measurement with its own log sd ``se`` and an honest 95 %
    interval of it; returns the records, their true latencies and a third measurement of each."""
    true = np.exp(rng.uniform(-1, 2, n))
    def measure(t: float) -> Measurement:
        return _m(float(t * math.exp(rng.normal(0, drift) + rng.normal(0, se))), 1.96 * se)
    recs = [_rec(measure(t), measure(t)) for t in true]
    later = np.array([t * math.exp(rng.normal(0, drift) + rng.normal(0, se)) for t in true])
    return recs, list(true), later


@pytest.mark.parametrize("drift", [0.0, 0.03, 0.10])
def test_a_later_measurement_falls_inside_the_retest_interval_95_percent_of_the_time(drift: float) -> None:
    rng = np.random.default_rng(13)
    inside_retest, inside_own = [], []
    for _ in range(60):  # 60 studies of 12 kept networks
        recs, _, later = _drifting_study(rng, 12, se=0.02, drift=drift)
        for r, x in zip(recs, later):
            iv = retest_interval(r, recs)
            assert iv is not None and iv.pairs == 12
            inside_retest.append(iv.contains(float(x)))
            own = r.hardware["latency_ms"]
            inside_own.append(own.ci_low <= x <= own.ci_high)
    assert 0.93 <= np.mean(inside_retest) <= 0.995  # honest, and not absurdly wide
    if drift >= 0.03:  # the median's own interval is not where a later measurement falls
        assert np.mean(inside_own) < 0.8


def test_the_between_time_spread_is_estimated_from_the_pairs() -> None:
    rng = np.random.default_rng(0)
    recs, _, _ = _drifting_study(rng, 400, se=0.02, drift=0.08)
    iv = retest_interval(recs[0], recs)
    assert iv is not None and iv.between_rel_sd == pytest.approx(0.08, rel=0.15)
    assert "400 before/after training pairs" in iv.how


def test_no_pair_or_no_interval_gives_no_retest_interval() -> None:
    one = _rec(_m(1.0, 0.05))  # measured once: no pair in the study
    assert retest_pairs([one]) == [] and retest_interval(one, [one]) is None
    no_ci = _rec(Measurement("latency_ms", 1.0, "ms", "measured:test-double"), _m(1.0, 0.05))
    assert retest_interval(no_ci, [no_ci]) is None
    pruned = _rec(_m(1.0, 0.05), _m(1.1, 0.05), status="pruned")
    assert retest_pairs([pruned]) == []  # only trained trials count


def test_few_pairs_give_a_wide_interval_and_a_trial_measured_once_gets_one_too() -> None:
    pairs = [_rec(_m(v, 0.02), _m(v * 1.05, 0.02)) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)]
    once = _rec(_m(2.0, 0.02))
    wide, narrow = retest_interval(once, pairs[:2] + [once]), retest_interval(once, pairs + [once])
    assert wide is not None and narrow is not None
    assert wide.low < narrow.low < 2.0 < narrow.high < wide.high
    assert wide.value == pytest.approx(2.0)  # measured once: centred on its one value


def _kept_study(tmp: Path, keep: str) -> Any:
    spec = tiny_digits_spec(tmp / f"{keep}.db", f"retest-{keep}", trials=3, keep_models=keep, runtime="onnxruntime")
    study, build, train = study_from_file(parse_study_file(spec))
    study.optimize(build, train, n_trials=3)
    return study


def test_a_kept_network_is_measured_again_after_training_and_others_are_not(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    kept = _kept_study(tmp_path, "all")
    trained = [r for r in kept.records() if r.status == "trained"]
    assert trained and all("latency_ms" in r.final_hardware for r in trained)
    for r in trained:  # a second, independent measurement of the same network, in the study's runtime
        a, b = r.hardware["latency_ms"], r.final_hardware["latency_ms"]
        assert b.value != a.value and b.source == a.source and b.source.endswith("[onnxruntime]")
    assert len(retest_pairs(kept.records())) == len(trained)
    none = _kept_study(tmp_path, "none")
    assert all(not r.final_hardware for r in none.records())  # nothing kept: measured once
