"""Predictive intervals of positive metrics stay positive: a linear-target interval is clipped at 0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hwtune.costmodel import PredictiveDistribution


def _pd(positive: bool = True, dof: float = 5.0) -> PredictiveDistribution:
    # the case: a small latency predicted with a wide interval ([-0.06, 0.42] ms before)
    return PredictiveDistribution(np.array([0.12, 3.0, -0.05]), np.array([0.1, 0.1, 0.1]), np.array([dof] * 3), False, positive=positive)


@pytest.mark.parametrize("dof", [5.0, np.inf])
def test_interval_of_a_positive_metric_is_positive_and_keeps_its_coverage(dof: float) -> None:
    raw = _pd(False, dof)
    rlo, rhi = raw.interval(0.9)
    assert rlo[0] < 0  # the unclipped t goes below 0
    lo, hi = _pd(True, dof).interval(0.9)
    assert (lo >= 0).all() and (hi >= lo).all() and (hi == rhi).all()
    assert lo[1] == rlo[1]  # far from 0 nothing changes
    # a non-negative value lies in the clipped interval exactly when it lies in the unclipped one
    d = stats.t(dof, loc=0.12, scale=0.1) if np.isfinite(dof) else stats.norm(loc=0.12, scale=0.1)
    x = d.rvs(size=200_000, random_state=np.random.default_rng(0))
    x = x[x >= 0]  # what a positive metric can be
    held = np.mean((x >= lo[0]) & (x <= hi[0]))
    assert held == np.mean((x >= rlo[0]) & (x <= rhi[0])) and held >= 0.9
    assert (_pd(True, dof).median() >= 0).all() and _pd(True, dof).median()[2] == 0.0


def test_log_target_and_default_are_unchanged() -> None:
    a = PredictiveDistribution(np.array([0.0]), np.array([0.5]), np.array([5.0]), True, positive=True)
    b = PredictiveDistribution(np.array([0.0]), np.array([0.5]), np.array([5.0]), True)
    assert a.interval(0.9)[0] == pytest.approx(b.interval(0.9)[0]) and a.median() == pytest.approx(b.median())
    assert _pd(False).interval(0.9)[0][0] < 0 and _pd(False).median()[2] < 0


def test_cost_models_predict_positive_intervals() -> None:
    from hwtune.costmodel import LinearCostModel
    from hwtune.space import IntParam, SearchSpace

    space = SearchSpace({"units": IntParam(low=1, high=100, role="architecture")})
    m = LinearCostModel(space, target="linear")
    m.fit([{"units": u} for u in (10, 20, 30, 40, 90)], np.array([0.1, 0.2, 0.25, 0.42, 0.9]))
    pd = m.predictive([{"units": 1}, {"units": 50}])
    lo, hi = pd.interval(0.99)
    assert pd.positive and (lo >= 0).all() and (hi > lo).all()
