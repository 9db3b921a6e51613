"""The winner's curse of the cost model's screen: residuals of the sampler's own measured proposals."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from hwtune.search._calibration import MIN_POINTS, WINDOW, recalibrate, selection_calibration
from hwtune.space import parse_constraints
from hwtune.vocabulary import HARDWARE_ATTR, PREDICTED_ATTR, STATUS_ATTR


def _trial(number: int, measured: float, median: float, rel: float = 0.1) -> SimpleNamespace:
    """A stored trial (as read_trial reads it) whose latency was predicted ``median`` with a 95 %
    interval of +-``rel`` in log units, then measured ``measured``."""
    lo, hi = median * math.exp(-rel), median * math.exp(rel)
    ua = {
        STATUS_ATTR: "over_budget",
        HARDWARE_ATTR: {"latency_ms": {"metric": "latency_ms", "value": measured, "source": "measured:timer"}},
        PREDICTED_ATTR: {"latency_ms": {"metric": "latency_ms", "value": median, "ci_low": lo, "ci_high": hi, "source": "predicted:additive"}},
    }
    return SimpleNamespace(number=number, user_attrs=ua, state=SimpleNamespace(name="PRUNED"), params={}, values=None,
                           constraints={}, system_attrs={}, datetime_start=None, datetime_complete=None)


LIMIT = parse_constraints(["latency_ms <= 1.05"])


def test_no_correction_from_few_proposals_or_for_an_honest_model():
    few = [_trial(i, 1.3, 1.0) for i in range(MIN_POINTS - 1)]
    assert selection_calibration(few, LIMIT) == {}
    rng = np.random.default_rng(0)
    sd = 0.1 / 1.96
    honest = [_trial(i, float(np.exp(rng.normal(0.0, sd))), 1.0) for i in range(WINDOW)]  # P(<= 1.05) ~ 0.83, met alike
    bias, spread = selection_calibration(honest, LIMIT)["latency_ms"]
    assert abs(bias) < 0.6 and spread < 1.6


def test_proposals_measured_over_budget_give_a_positive_bias():
    # the MNIST case of issue 19: predicted within the limit, measured 1.33x the prediction
    trials = [_trial(i, 1.33 * (1 + 0.01 * (i % 3)), 1.0) for i in range(12)]
    bias, spread = selection_calibration(trials, LIMIT)["latency_ms"]
    assert bias > 1.0
    assert 1.0 <= spread <= 3.0
    lower = parse_constraints(["latency_ms >= 1.05"])  # the same measurements meet a lower bound: no penalty
    assert selection_calibration(trials, lower)["latency_ms"][0] < 0


def test_the_window_reads_the_latest_proposals():
    old = [_trial(i, 1.5, 1.0) for i in range(30)]  # the model was wrong early on...
    new = [_trial(100 + i, 1.0, 1.0) for i in range(WINDOW)]  # ...and its proposals meet the limit now
    bias, _ = selection_calibration(old + new, LIMIT)["latency_ms"]
    assert bias <= 0.0


def test_recalibrate_lowers_p_within_budget_when_proposals_landed_over_it():
    p = np.array([0.05, 0.33, 0.5, 0.9, 0.999])
    same = np.exp(recalibrate(np.log(p), 0.0, 1.0, below=True))
    assert np.allclose(same, p)
    lower = np.exp(recalibrate(np.log(p), 1.0, 1.0, below=True))
    assert np.all(lower < p) and np.all(np.diff(lower) > 0)  # less likely, same order
    above = np.exp(recalibrate(np.log(p), 1.0, 1.0, below=False))  # a >= constraint: measured higher helps
    assert np.all(above > p)
    wider = np.exp(recalibrate(np.log(p), 0.0, 2.0, below=True))
    assert wider[0] > p[0] and wider[-1] < p[-1]  # a wider spread pulls probabilities towards 1/2
