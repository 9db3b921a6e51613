"""Pruners: Optuna's by name, the Pareto rule on comparable hardware cost, and a hopeless trial stopped."""

from __future__ import annotations

import inspect
from typing import Any, Iterator

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.search import COST_ATTR, CURVE_ATTR, CostAwarePruner, make_pruner


def test_optuna_pruners_by_name_with_options():
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    p = make_pruner({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1})
    assert isinstance(p, optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("successive_halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("asha"), optuna.pruners.SuccessiveHalvingPruner)
    hb = make_pruner("hyperband", max_epochs=9)
    assert isinstance(hb, optuna.pruners.HyperbandPruner) and hb._max_resource == 9 and hb._min_resource == 1
    assert make_pruner({"name": "hyperband", "max_resource": "auto"})._max_resource == "auto"
    c = make_pruner({"name": "cost_median", "cost_ratio": 1.5, "min_peers": 2}, n_objectives=2)
    assert isinstance(c, CostAwarePruner) and c.cost_ratio == 1.5 and c.min_peers == 2
    mine = optuna.pruners.PercentilePruner(25.0)
    assert make_pruner(mine) is mine


@pytest.mark.parametrize("spec, kw, field, words", [
    ("hyperbnd", {}, "pruner", "unknown pruner"),
    ({"name": "median", "min_resource": 2}, {}, "pruner.min_resource", "has no option"),
    ({"min_resource": 2}, {}, "pruner.name", "missing"),
    ({"name": "hyperband", "reduction_factor": 1}, {}, "pruner.reduction_factor", ">= 2"),
    ({"name": "hyperband", "min_resource": 5, "max_resource": 3}, {}, "pruner.max_resource", "below min_resource"),
    ({"name": "cost_median", "cost_ratio": 1.0}, {}, "pruner.cost_ratio", "> 1"),
    ({"name": "cost_median", "percentile": 150}, {}, "pruner.percentile", "<= 100"),
    ("hyperband", {"n_objectives": 2}, "pruner", "cannot stop trials of a Pareto study"),
    (["median"], {}, "pruner", "expected a pruner name"),
])
def test_bad_pruner_specs(spec, kw, field, words):
    with pytest.raises(ConfigError) as e:
        make_pruner(spec, **kw)
    assert e.value.field == field and words in str(e.value) and e.value.fix


def test_study_file_pruner_key(tmp_path):
    from hwtune.study import parse_study_file, study_from_file

    base = {"data": {"name": "digits"}, "space": {"conv_layers": 1, "filters_0": 4, "lr": {"type": "float", "low": 0.01, "high": 0.1}, "epochs": 6}}
    study, _, _ = study_from_file(parse_study_file({**base, "pruner": "hyperband"}), storage=None)
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner) and study.pruner._max_resource == 6  # the fixed epochs
    study, _, _ = study_from_file(parse_study_file({**base, "pruner": {"name": "median", "n_startup_trials": 3}}), storage=None)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    study, _, _ = study_from_file(parse_study_file({**base, "objective": {"minimize": ["error", "latency_ms"]}, "pruner": "cost_median"}), storage=None)
    assert isinstance(study.pruner, CostAwarePruner)
    db = tmp_path / "x.db"
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file({**base, "objective": {"minimize": ["error", "latency_ms"]}, "pruner": "hyperband", "storage": f"sqlite:///{db}"}))
    assert e.value.field == "pruner" and not db.exists()


# -- the Pareto rule ---------------------------------------------------------------------------------------
def _peer(number: int, cost: float, curve: dict[int, float], state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    t = create_trial(
        state=state, values=[0.1, cost] if state == TrialState.COMPLETE else None,
        user_attrs={COST_ATTR: [cost], CURVE_ATTR: {str(k): v for k, v in curve.items()}},
    )
    t.number = number
    return t


def test_cost_aware_rule_compares_only_trials_of_comparable_cost():
    p = CostAwarePruner(cost_ratio=2.0, percentile=50, min_peers=3)
    peers = [_peer(0, 1.0, {1: 0.30}), _peer(1, 1.5, {1: 0.20}), _peer(2, 0.8, {1: 0.25}),
             _peer(3, 10.0, {1: 0.02}),                       # ten times dearer: not a peer
             _peer(4, 1.2, {2: 0.01}),                        # never reported epoch 1... (it did epoch 2 only)
             _peer(5, 1.1, {1: 0.90}, TrialState.PRUNED)]     # pruned trials count with what they reported
    # peers at epoch 1 with cost 1.0: errors 0.30, 0.20, 0.25, 0.90 -> median 0.275
    assert p.decide(peers, 99, 1, 0.28, [1.0]) is True
    assert p.decide(peers, 99, 1, 0.27, [1.0]) is False
    # an expensive trial is only compared with expensive ones: too few peers, never pruned
    assert p.decide(peers, 99, 1, 0.99, [12.0]) is False
    # a cheap network is not stopped for being worse than a ten-times dearer one
    assert p.decide(peers, 99, 1, 0.5, [0.1]) is False
    # warm-up and interval
    assert CostAwarePruner(n_warmup_steps=1, min_peers=3).decide(peers, 99, 1, 0.99, [1.0]) is False
    assert CostAwarePruner(interval_steps=2, min_peers=1).decide(peers, 99, 2, 0.99, [1.2]) is False  # epoch 2: off-interval
    # several costs: every one must be comparable
    assert p.comparable([1.0, 5.0], [1.5, 6.0]) and not p.comparable([1.0, 5.0], [1.5, 20.0])


def test_cost_aware_pruner_records_curve_and_cost_on_a_pareto_study():
    study = optuna.create_study(directions=["minimize", "minimize"])
    p = CostAwarePruner(min_peers=2)
    for cost, errs in ((1.0, [0.5, 0.3, 0.2]), (1.1, [0.4, 0.3, 0.25])):
        t = study.ask()
        for e, v in enumerate(errs, 1):
            assert not p.should_prune_at(t, e, v, cost)
        study.tell(t, [errs[-1], cost])
    t = study.ask()
    assert not p.should_prune_at(t, 1, 0.45, 0.9)   # between its peers' 0.5 and 0.4: not worse than the median
    assert p.should_prune_at(t, 2, 0.6, 0.9)        # worse than both
    assert t.user_attrs[CURVE_ATTR] == {"1": 0.45, "2": 0.6} and t.user_attrs[COST_ATTR] == [0.9]
    assert p.prune(study, study.trials[-1]) is False  # Optuna itself never asks it to prune


# -- the loop stops a hopeless trial -----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    from hwtune.hardware._device import torch_threads

    with torch_threads(1):
        yield


def _fake_meter(model: Any, params: dict[str, Any]) -> HardwareReport:
    lat = 1.0 + 0.01 * params["filters_0"]
    return HardwareReport({"latency_ms": Measurement("latency_ms", lat, "ms", "measured:test-double", lat, lat, 10)})


def test_median_pruner_stops_a_hopeless_trial_with_the_builtin_trainer():
    from hwtune.study import Study
    from hwtune.study._config import ClassifierTrainer, DataSpec, FamilyBuilder

    space = {"conv_layers": 1,
             "filters_0": {"type": "categorical", "choices": [8], "role": "architecture"},
             "lr": {"type": "categorical", "choices": [0.1, 1e-6]}, "epochs": 4}
    study = Study("prune", space, objectives="minimize: error", storage=None, input_shape=(1, 8, 8), sampler="random",
                  pruner=make_pruner({"name": "median", "n_startup_trials": 2}))
    for lr in (0.1, 0.1, 1e-6):
        study.optuna_study.enqueue_trial({"filters_0": 8, "lr": lr})
    build = FamilyBuilder("cnn", (1, 8, 8), 10)
    train = ClassifierTrainer(DataSpec(name="digits"), 0, study.device)
    summary = study.optimize(build, train, measure=_fake_meter, n_trials=3)  # type: ignore[arg-type]
    recs = summary.records
    assert [r.status for r in recs] == ["trained", "trained", "pruned"]
    t = study.optuna_study.trials[2]
    assert t.state == TrialState.PRUNED and t.user_attrs["hwtune:pruned_at_epoch"] == 1
    assert list(t.intermediate_values) == [1] and t.intermediate_values[1] > 0.5  # stopped after its first epoch
    assert len(study.optuna_study.trials[0].intermediate_values) == 4  # every epoch reported


def test_pareto_study_prunes_on_comparable_cost_in_the_loop():
    from hwtune.study import Study
    from hwtune.study import _study

    if "should_prune_at" not in inspect.getsource(_study):
        pytest.skip("the study loop does not call CostAwarePruner.should_prune_at yet")

    def train(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        err = 0.9 if params["lr"] < 0.01 else 0.1
        for epoch in range(1, 6):
            ctx.report(epoch, err + 0.01 / epoch)
        return {"error": err}

    space = {"width": {"type": "categorical", "choices": [1], "role": "architecture"}, "lr": {"type": "categorical", "choices": [0.1, 0.001]}}
    study = Study("pareto", space, objectives={"minimize": ["error", "latency_ms"]}, storage=None, sampler="random",
                  pruner=CostAwarePruner(min_peers=2))
    for lr in (0.1, 0.1, 0.001):
        study.optuna_study.enqueue_trial({"width": 1, "lr": lr})

    def meter(model: Any, params: dict[str, Any]) -> HardwareReport:
        return HardwareReport({"latency_ms": Measurement("latency_ms", 2.0, "ms", "measured:test-double", 2.0, 2.0, 10)})

    summary = study.optimize(lambda p: p, train, measure=meter, n_trials=3)
    assert [r.status for r in summary.records] == ["trained", "trained", "pruned"]
    assert study.optuna_study.trials[2].user_attrs["hwtune:pruned_at_epoch"] == 1
