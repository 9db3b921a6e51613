from __future__ import annotations

import numpy as np
import pytest

from hwtune.costmodel import (
    AdditiveCostModel,
    Featurizer,
    PredictiveDistribution,
    cross_validate,
    feasibility_errors,
    prediction_metrics,
    spearman,
)
from hwtune.exceptions import ConfigError

from .conftest import flops


def _exact(y: np.ndarray, scale: float = 1e-9) -> PredictiveDistribution:
    return PredictiveDistribution(y.astype(float), np.full(len(y), scale), np.full(len(y), np.inf), False)


def test_metrics_of_a_perfect_and_a_biased_predictor():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    m = prediction_metrics(y, _exact(y))
    assert m["spearman"] == pytest.approx(1.0) and m["mdape"] == pytest.approx(0.0) and m["coverage"] == 1.0
    m = prediction_metrics(y, _exact(y * 1.1))
    assert m["mdape"] == pytest.approx(0.1) and m["coverage"] == 0.0


def test_coverage_of_a_calibrated_gaussian():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 20000) + 10
    pd = PredictiveDistribution(np.full(len(y), 10.0), np.ones(len(y)), np.full(len(y), np.inf), False)
    assert prediction_metrics(y, pd)["coverage"] == pytest.approx(0.9, abs=0.01)


def test_feasibility_errors():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert feasibility_errors(y, _exact(y), [2.5])[0]["wrong"] == 0.0
    f = feasibility_errors(y, _exact(y + 1.0), [2.5])[0]  # predicts 2 -> 3: one false infeasible
    assert f["wrong"] == 0.25 and f["false_infeasible"] == 0.25 and f["false_feasible"] == 0.0


def test_spearman_of_constants_is_nan():
    assert np.isnan(spearman(np.ones(5), np.arange(5)))


def test_cross_validate(space, data):
    Xtr, ytr, _, _ = data
    res = cross_validate("additive", Xtr, ytr, folds=5, featurizer=Featurizer(space, flops))
    assert res["model"] == "additive" and res["folds"] == 5
    assert res["spearman"] > 0.97 and res["mdape"] < 0.06
    assert res["predictions"]["median"].shape == (60,)
    same = cross_validate(lambda: AdditiveCostModel(Featurizer(space, flops)), Xtr, ytr, folds=5)
    assert same["mdape"] == pytest.approx(res["mdape"])
    loo = cross_validate("additive", Xtr[:6], ytr[:6], folds=10, featurizer=Featurizer(space, flops))
    assert loo["folds"] == 6


def test_cross_validate_errors(space, data):
    Xtr, ytr, _, _ = data
    with pytest.raises(ConfigError, match="at least 4"):
        cross_validate("additive", Xtr[:3], ytr[:3], featurizer=space)
    with pytest.raises(ConfigError, match="featurizer"):
        cross_validate("additive", Xtr, ytr)
    with pytest.raises(ConfigError, match="folds"):
        cross_validate("additive", Xtr, ytr, folds=1, featurizer=space)
