from __future__ import annotations

import json

import numpy as np
import pytest

from hwtune.costmodel import CostModelError, DeviceCostModels, TableSource
from hwtune.costmodel._online import ADDITIVE_DEFAULT
from hwtune.space import FloatParam, IntParam, SearchSpace, parse_constraint, parse_constraints
from hwtune.exceptions import ConfigError

from .conftest import cost_of, flops, sample


def _filled(space, n=40, **kw) -> DeviceCostModels:
    dcm = DeviceCostModels(space, derived=flops, device="cpu-test", **kw)
    for p in sample(space, n, seed=3):
        dcm.observe(p, {"latency_ms": cost_of(p), "throughput_sps": 100.0 / cost_of(p), "error": 0.1})
    return dcm


def test_no_model_before_min_observations(space):
    dcm = DeviceCostModels(space, derived=flops, min_observations=5)
    X = sample(space, 4)
    for p in X:
        dcm.observe(p, {"latency_ms": cost_of(p)})
    assert dcm.model("latency_ms") is None
    assert dcm.predictions(X[0]) == {}
    assert np.isnan(dcm.prob_constraint(X, parse_constraint("latency_ms <= 1"))).all()
    assert not dcm.should_skip(X[0], parse_constraints(["latency_ms <= 0.0001"]))  # no evidence, no skipping
    dcm.observe(sample(space, 1, seed=8)[0], {"latency_ms": 1.0})
    assert dcm.model("latency_ms") is not None


def test_observe_filters_values(space):
    dcm = DeviceCostModels(space)
    p = sample(space, 1)[0]
    n = dcm.observe(p, {
        "latency_ms": {"metric": "latency_ms", "value": 2.0, "unit": "ms", "source": "measured:timer"},
        "energy_mj": {"metric": "energy_mj", "value": 1.0, "unit": "mJ", "source": "predicted:additive"},
        "power_w": {"metric": "power_w", "value": None, "source": "unavailable"},
        "params": float("nan"),
        "error": 0.5,
        "unknown_metric": 3.0,
    })
    assert n == 1 and dcm.observed_metrics() == ["latency_ms"]
    assert dcm.observations("latency_ms")[0] == [{"layers": p["layers"], "width": p["width"], "kernel": p["kernel"],
                                                  "input_size": 32, **({"extra_width": p["extra_width"]} if "extra_width" in p else {})}]


def test_models_per_metric_and_prediction_records(space):
    dcm = _filled(space)
    assert dcm.model_name("latency_ms") == ADDITIVE_DEFAULT
    assert dcm.model_name("throughput_sps") == "linear"  # rates do not add up over layers
    cand = {"layers": 2, "width": 64, "kernel": 3, "input_size": 32, "lr": 0.01}
    rec = dcm.predictions(cand)
    assert set(rec) == {"latency_ms", "throughput_sps"}
    r = rec["latency_ms"]
    assert r["source"] == f"predicted:{ADDITIVE_DEFAULT}" and r["unit"] == "ms"
    assert r["value"] == pytest.approx(cost_of(cand), rel=0.05)
    assert r["ci_low"] < r["value"] < r["ci_high"]
    assert r["extra"]["n_observations"] == 40 and r["extra"]["device"] == "cpu-test"
    json.dumps(rec)  # storable as an Optuna user attr
    from hwtune.hardware import Measurement

    assert Measurement.from_dict(r).source == f"predicted:{ADDITIVE_DEFAULT}"


def test_feasibility_and_screening(space):
    dcm = _filled(space)
    small = {"layers": 1, "width": 8, "kernel": 3}
    big = {"layers": 4, "width": 128, "kernel": 5, "extra_width": 64}
    cons = parse_constraints(["latency_ms <= 2", "error <= 0.1"])
    p = dcm.prob_feasible([small, big], cons)
    assert p[0] > 0.99 and p[1] < 1e-3
    assert dcm.should_skip(big, cons) and not dcm.should_skip(small, cons)
    assert not dcm.should_skip(big, cons, threshold=0.0)
    lower = parse_constraints(["throughput_sps >= 20"])
    assert dcm.prob_feasible([small], lower)[0] > 0.99


def test_refits_when_data_arrive(space):
    dcm = _filled(space, n=10)
    m1 = dcm.model("latency_ms")
    assert dcm.model("latency_ms") is m1  # no new data: same fitted model
    dcm.observe(sample(space, 1, seed=11)[0], {"latency_ms": 1.0})
    m2 = dcm.model("latency_ms")
    assert m2.n_observations == 11  # the same model refitted (a GP warm-starts from its last fit)


def test_save_and_reuse_on_the_same_device_and_space(space, tmp_path):
    dcm = _filled(space)
    path = dcm.save(tmp_path / "dev.json")
    again = DeviceCostModels.load(path, space, device="cpu-test", derived=flops)
    assert again.n_observations("latency_ms") == 40
    cand = {"layers": 3, "width": 32, "kernel": 5, "extra_width": 16}
    assert again.predictions(cand)["latency_ms"]["value"] == pytest.approx(dcm.predictions(cand)["latency_ms"]["value"])
    with pytest.raises(CostModelError, match="device"):
        DeviceCostModels.load(path, space, device="other-gpu", derived=flops)
    with pytest.raises(CostModelError, match="derived"):
        DeviceCostModels.load(path, space)
    other = SearchSpace({"layers": IntParam(role="architecture", low=1, high=8), "lr": FloatParam(low=0.1, high=1.0)})
    with pytest.raises(CostModelError, match="hardware-relevant"):
        DeviceCostModels.load(path, other, derived=flops)
    assert DeviceCostModels.load(path, derived=flops).n_observations("throughput_sps") == 40


def test_transfer_source_in_a_study(space):
    X = sample(space, 200, seed=4)
    src = np.array([cost_of(p) for p in X])
    dcm = DeviceCostModels(space, source=TableSource(space, X, src[:, None], ["cpu"]), min_observations=3)
    for p in X[:6]:
        dcm.observe(p, {"latency_ms": 3.0 * cost_of(p) + 1.0})
    assert dcm.model_name("latency_ms") == "transfer"
    pred = dcm.predictions(X[100])["latency_ms"]
    assert pred["source"] == "predicted:transfer"
    assert pred["value"] == pytest.approx(3.0 * src[100] + 1.0, rel=0.05)


def test_bad_settings(space):
    with pytest.raises(ConfigError):
        DeviceCostModels(space, metrics=["error"])
    with pytest.raises(ConfigError):
        DeviceCostModels(space, model="forest")
    with pytest.raises(ConfigError):
        DeviceCostModels(space, skip_threshold=1.5)
    with pytest.raises(ConfigError, match="kernel"):
        DeviceCostModels(space).observe({"layers": 1, "width": 8, "kernel": 4}, {"latency_ms": 1.0})
