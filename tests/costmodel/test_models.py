from __future__ import annotations

import json

import numpy as np
import pytest

from hwtune.costmodel import (
    AdditiveCostModel,
    CachedSource,
    CostModelError,
    Featurizer,
    GPCostModel,
    LinearCostModel,
    ModelSource,
    TableSource,
    TransferCostModel,
    load_cost_model,
    make_cost_model,
    prediction_metrics,
)
from hwtune.exceptions import ConfigError

from .conftest import cost_of, flops, sample

MODELS = ["linear", "additive", "gp"]


@pytest.mark.parametrize("name", MODELS)
def test_models_learn_the_synthetic_cost(space, data, name):
    Xtr, ytr, Xte, yte = data
    # a log-target model wants log features (cost ~ FLOPs^a), an additive one raw FLOPs
    m = make_cost_model(name, Featurizer(space, flops, log_derived=name == "linear")).fit(Xtr, ytr)
    assert m.n_observations == 60
    assert m.name == name
    met = prediction_metrics(yte, m.predictive(Xte))
    assert met["spearman"] > 0.97
    assert met["mdape"] < 0.06
    assert 0.75 <= met["coverage"] <= 0.99


def test_additive_beats_the_params_only_baseline_with_derived_features(space, data):
    Xtr, ytr, Xte, yte = data
    base = LinearCostModel(Featurizer(space)).fit(Xtr[:15], ytr[:15])
    add = AdditiveCostModel(Featurizer(space, flops, include_params=False)).fit(Xtr[:15], ytr[:15])
    e_base = prediction_metrics(yte, base.predictive(Xte))["mdape"]
    e_add = prediction_metrics(yte, add.predictive(Xte))["mdape"]
    assert e_add < 0.05 < e_base


@pytest.mark.parametrize("name", MODELS)
def test_probabilities_and_quantiles_are_consistent(space, data, name):
    Xtr, ytr, Xte, _ = data
    m = make_cost_model(name, Featurizer(space, flops)).fit(Xtr, ytr)
    X = Xte[:20]
    med = m.median(X)
    np.testing.assert_allclose([m.prob_below([x], v)[0] for x, v in zip(X, med)], 0.5, atol=1e-6)
    lo, hi = m.interval(X, 0.9)
    assert np.all(lo < med) and np.all(med < hi)
    np.testing.assert_allclose([m.prob_below([x], v)[0] for x, v in zip(X, hi)], 0.95, atol=1e-6)
    p = np.array([m.prob_below(X, b) for b in (0.1, 1.0, 10.0)])
    assert np.all(np.diff(p, axis=0) >= 0) and np.all((p >= 0) & (p <= 1))
    mean, std = m.predict(X)
    assert mean.shape == std.shape == (20,) and np.all(std > 0)


def test_log_model_mean_is_above_its_median(space, data):
    Xtr, ytr, Xte, _ = data
    m = LinearCostModel(Featurizer(space, flops)).fit(Xtr, ytr)
    mean, _ = m.predict(Xte)
    assert np.all(mean > m.median(Xte))
    assert m.prob_below(Xte[:3], 0.0).tolist() == [0.0, 0.0, 0.0]  # a log model puts no mass at <= 0


def test_few_observations_give_a_wide_constant(space):
    X = sample(space, 2)
    m = AdditiveCostModel(Featurizer(space)).fit(X, [1.0, 3.0])
    med = m.median(sample(space, 5, seed=9))
    np.testing.assert_allclose(med, 2.0)
    assert 0.05 < m.prob_below(X[:1], 0.5)[0] < 0.5  # far from certain either way


def test_input_errors(space):
    X = sample(space, 5)
    with pytest.raises(CostModelError, match="not fitted"):
        LinearCostModel(space).predict(X)
    with pytest.raises(ConfigError, match="values > 0"):
        LinearCostModel(space).fit(X, [1, 2, 0, 4, 5])
    with pytest.raises(ConfigError, match="5 candidates"):
        AdditiveCostModel(space).fit(X, [1, 2, 3])
    with pytest.raises(ConfigError, match="NaN"):
        AdditiveCostModel(space).fit(X, [1, 2, np.nan, 4, 5])
    with pytest.raises(ConfigError, match="unknown cost model"):
        make_cost_model("xgboost", space)
    with pytest.raises(ConfigError, match="takes no source"):
        make_cost_model("gp", space, source=lambda p: np.zeros((len(p), 1)))
    with pytest.raises(ConfigError, match="other devices"):
        make_cost_model("transfer", space)


def test_zero_values_are_fine_for_a_linear_target(space):
    X = sample(space, 10)
    y = np.array([cost_of(p) for p in X]) - 0.5  # some near zero
    y[0] = 0.0
    m = AdditiveCostModel(Featurizer(space, flops)).fit(X, y)
    assert np.isfinite(m.median(X)).all()


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(space, data, tmp_path, name):
    Xtr, ytr, Xte, _ = data
    m = make_cost_model(name, Featurizer(space, flops)).fit(Xtr[:25], ytr[:25])
    path = m.save(tmp_path / "m.json")
    stored = json.loads(path.read_text())
    assert stored["name"] == name and len(stored["y"]) == 25
    m2 = load_cost_model(path, derived=flops)
    assert type(m2) is type(m) and m2.n_observations == 25
    np.testing.assert_allclose(m2.median(Xte), m.median(Xte), rtol=1e-6)
    with pytest.raises(CostModelError, match="derived"):
        load_cost_model(path)
    with pytest.raises(CostModelError, match="not a"):
        load_cost_model(path, kind=TransferCostModel, derived=flops)


def test_load_rejects_garbage(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(CostModelError, match="invalid JSON"):
        load_cost_model(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(CostModelError, match="format"):
        load_cost_model(p)
    with pytest.raises(CostModelError, match="no cost model file"):
        load_cost_model(tmp_path / "missing.json")


def test_fit_features_models_cannot_be_saved(space, data, tmp_path):
    Xtr, ytr, _, _ = data
    m = AdditiveCostModel(space)
    m.fit_features(m.features(Xtr), ytr)
    with pytest.raises(CostModelError, match="fit_features"):
        m.save(tmp_path / "m.json")


def test_gp_settings_and_ard(space, data):
    Xtr, ytr, Xte, yte = data
    m = GPCostModel(Featurizer(space, flops), ard=True, restarts=1, target="log").fit(Xtr, ytr)
    assert m.config() == {"target": "log", "ard": True, "restarts": 1, "seed": 0}
    assert prediction_metrics(yte, m.predictive(Xte))["spearman"] > 0.95
    assert m.params()["effective_params"] > 0


# -- transfer ---------------------------------------------------------------------------------
def _device_pair(space, n=300, seed=0):
    """A source device and a target device whose costs are a noisy affine map of the source's."""
    rng = np.random.default_rng(seed)
    X = sample(space, n, seed=seed + 5)
    src = np.array([cost_of(p) for p in X]) * np.exp(rng.normal(0, 0.02, n))
    tgt = 0.3 + 2.5 * src * np.exp(rng.normal(0, 0.02, n))
    return X, src, tgt


def test_transfer_needs_few_target_measurements(space):
    X, src, tgt = _device_pair(space)
    table = TableSource(space, X, src[:, None], ["cpu"])
    tm = TransferCostModel(Featurizer(space), table).fit(X[:8], tgt[:8])
    base = AdditiveCostModel(Featurizer(space)).fit(X[:8], tgt[:8])
    rho_t = prediction_metrics(tgt[8:], tm.predictive(X[8:]))["spearman"]
    rho_b = prediction_metrics(tgt[8:], base.predictive(X[8:]))["spearman"]
    assert rho_t > 0.97 and rho_t > rho_b + 0.02


def test_transfer_falls_back_where_the_source_is_unknown(space):
    X, src, tgt = _device_pair(space)
    table = TableSource(space, X[:200], src[:200, None])
    tm = TransferCostModel(Featurizer(space, flops), table).fit(X[:30], tgt[:30])
    unknown = sample(space, 5, seed=77)
    assert np.isnan(table(unknown)).all()
    med = tm.median(unknown)
    fb = AdditiveCostModel(Featurizer(space, flops)).fit(X[:30], tgt[:30]).median(unknown)
    np.testing.assert_allclose(med, fb, rtol=1e-9)


def test_model_source_equals_precomputed_features(space):
    X, src, tgt = _device_pair(space)
    src_model = AdditiveCostModel(Featurizer(space, flops)).fit(X, src)
    ms = ModelSource({"cpu": src_model})
    tm = TransferCostModel(Featurizer(space), ms).fit(X[:10], tgt[:10])
    tm2 = TransferCostModel(Featurizer(space), lambda p: np.zeros((len(p), 0)))
    P = Featurizer(space).transform(X)
    S = src_model.median(X)[:, None]
    tm2.fit_features(tm2.combine(P[:10], S[:10]), tgt[:10])
    np.testing.assert_allclose(tm.median(X[10:]), tm2.predictive_features(tm2.combine(P[10:], S[10:])).median())


def test_transfer_save_load_needs_the_source(space, tmp_path):
    X, src, tgt = _device_pair(space)
    table = TableSource(space, X, src)
    tm = TransferCostModel(Featurizer(space), table, target="log", include_params=True).fit(X[:12], tgt[:12])
    path = tm.save(tmp_path / "t.json")
    with pytest.raises(CostModelError, match="source"):
        load_cost_model(path)
    tm2 = load_cost_model(path, source=table)
    np.testing.assert_allclose(tm2.median(X[12:]), tm.median(X[12:]), rtol=1e-6)


def test_table_source_shape_errors(space):
    X = sample(space, 3)
    with pytest.raises(ConfigError):
        TableSource(space, X, np.zeros((2, 1)))
    with pytest.raises(ConfigError):
        TableSource(space, X, np.zeros((3, 2)), names=["a"])
    with pytest.raises(ConfigError, match="not fitted"):
        ModelSource({"cpu": AdditiveCostModel(space)})


def test_cached_source_asks_once_per_candidate(space):
    calls: list[int] = []

    def measure(ps):
        calls.append(len(ps))
        return np.array([[cost_of(p)] for p in ps])

    src = CachedSource(space, measure, ["cpu"])
    X = sample(space, 6, seed=3)
    a = src(X + X[:2])
    b = src([{**X[0], "lr": 0.5}])  # a training param does not change the hardware key
    assert calls == [6] and a.shape == (8, 1) and b[0, 0] == a[0, 0] and len(src) == 6
    tm = TransferCostModel(Featurizer(space), src).fit(X, [2 * cost_of(p) for p in X])
    tm.median(sample(space, 3, seed=30))
    assert calls == [6, 3]


def test_a_space_without_hardware_params_predicts_the_mean():
    from hwtune.space import FloatParam, SearchSpace

    s = SearchSpace({"lr": FloatParam(low=0.1, high=1.0)})
    m = AdditiveCostModel(s).fit([{"lr": 0.2}] * 5, [1.0, 2.0, 3.0, 2.0, 2.0])
    assert m.median([{"lr": 0.5}])[0] == pytest.approx(2.0)
    assert 0.3 < m.prob_below([{}], 2.5)[0] < 0.95


def test_transfer_fallback_must_be_a_plain_model(space):
    X, src, _ = _device_pair(space)
    table = TableSource(space, X, src)
    for bad in ("transfer", "forest"):
        with pytest.raises(ConfigError, match="fallback"):
            TransferCostModel(Featurizer(space), table, fallback=bad)
