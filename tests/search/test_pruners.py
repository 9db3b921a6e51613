"""Pruners: Optuna's by name, the Pareto rule on comparable hardware cost, and a hopeless trial stopped."""

from __future__ import annotations

import inspect
import math
from typing import Any, Iterator

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.search import (
    COST_ATTR,
    CURVE_ATTR,
    CostAwarePruner,
    CurvePruner,
    make_pruner,
)
from hwtune.search._curves import CURVE_PREDICTION_ATTR


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
    from hwtune.study import Study, _study

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


# -- the learning-curve pruner (issue 19) ------------------------------------------------------------------
E = 9


def _curve_of(final: float, amp: float = 1.5) -> dict[int, float]:
    """A smooth power-law curve in log error ending at ``final`` after epoch 9."""
    return {e: final * math.exp(amp * (1 / e - 1 / E)) for e in range(1, E + 1)}


def _done(number: int, final: float, cost: float = 1.0, amp: float = 1.5, curve: dict[int, float] | None = None) -> optuna.trial.FrozenTrial:
    c = curve or _curve_of(final, amp)
    t = create_trial(state=TrialState.COMPLETE, value=final,
                     user_attrs={COST_ATTR: [cost], CURVE_ATTR: {str(k): v for k, v in c.items()}, "hwtune:status": "trained",
                                 "hwtune:metrics": {"error": final}})
    t.number = number
    return t


def _history(costs: list[float] | None = None) -> list[optuna.trial.FrozenTrial]:
    finals = [0.04, 0.05, 0.06, 0.08, 0.12, 0.2]
    amps = [1.4, 1.6, 1.5, 1.3, 1.7, 1.2]
    costs = costs or [1.0] * len(finals)
    return [_done(i, f, c, a) for i, (f, c, a) in enumerate(zip(finals, costs, amps))]


def test_curve_pruner_by_name_and_in_study_files():
    p = make_pruner("curve", max_epochs=9)
    assert isinstance(p, CurvePruner) and p.max_resource == 9 and p.threshold == 0.05
    q = make_pruner({"name": "curve", "threshold": 0.2, "min_complete": 2, "cost_ratio": 3}, n_objectives=2)  # Pareto studies too
    assert (q.threshold, q.min_complete, q.cost_ratio, q.n_objectives) == (0.2, 2, 3.0, 2)
    assert make_pruner(q) is q
    from hwtune.study import parse_study_file, study_from_file

    base = {"data": {"name": "digits"}, "space": {"conv_layers": 1, "filters_0": 4, "lr": {"type": "float", "low": 0.01, "high": 0.1}, "epochs": 6}}
    study, _, _ = study_from_file(parse_study_file({**base, "pruner": "curve"}), storage=None)
    assert isinstance(study.pruner, CurvePruner) and study.pruner.max_resource == 6
    study, _, _ = study_from_file(parse_study_file({**base, "objective": {"minimize": ["error", "latency_ms"]}, "pruner": {"name": "curve", "threshold": 0.1}}), storage=None)
    assert isinstance(study.pruner, CurvePruner) and study.pruner.threshold == 0.1


@pytest.mark.parametrize("options, field, words", [
    ({"threshold": 0}, "pruner.threshold", "probability"),
    ({"threshold": 1.0}, "pruner.threshold", "probability"),
    ({"threshold": "low"}, "pruner.threshold", "probability"),
    ({"threshold": True}, "pruner.threshold", "probability"),
    ({"min_complete": 0}, "pruner.min_complete", ">= 1"),
    ({"min_complete": 2.5}, "pruner.min_complete", "whole number"),
    ({"max_stop_ratio": 0}, "pruner.max_stop_ratio", "> 0"),
    ({"cost_ratio": 1}, "pruner.cost_ratio", "> 1"),
    ({"n_warmup_steps": -1}, "pruner.n_warmup_steps", ">= 0"),
    ({"interval_steps": 0}, "pruner.interval_steps", ">= 1"),
    ({"max_resource": 0}, "pruner.max_resource", ">= 1"),
    ({"percentile": 50}, "pruner.percentile", "has no option"),
])
def test_bad_curve_pruner_options(options, field, words):
    with pytest.raises(ConfigError) as e:
        make_pruner({"name": "curve", **options})
    assert e.value.field == field and words in str(e.value) and e.value.fix


def test_curve_rule_stops_hopeless_trials_and_keeps_promising_ones():
    p = CurvePruner(threshold=0.05, min_complete=4)
    hist = _history()
    best = ("best", None)
    hopeless = {1: 0.9, 2: 0.89}  # diverged
    mediocre = {e: v for e, v in _curve_of(0.15, 1.5).items() if e <= 4}  # on course for 15 % against a best of 4 %
    promising = {e: v for e, v in _curve_of(0.035, 1.5).items() if e <= 2}  # on course to beat the best
    unclear = {1: _curve_of(0.045, 1.5)[1]}  # one epoch of a curve that ends near the best
    assert p.decide(hist, 99, 2, hopeless, [1.0], E, best) is True
    assert p.last_decision["p_better"] < 0.05 and p.last_decision["reference"] == 0.04 and p.last_decision["error"] > 0.3
    assert p.decide(hist, 99, 4, mediocre, [1.0], E, best) is True
    assert p.decide(hist, 99, 2, promising, [1.0], E, best) is False and p.last_decision["p_better"] > 0.3
    assert p.decide(hist, 99, 1, unclear, [1.0], E, best) is False
    # no decision: too few whole curves, warm-up, off the interval, the last epoch, nothing to compare with
    assert CurvePruner(min_complete=7).decide(hist, 99, 2, hopeless, [1.0], E, best) is False
    assert CurvePruner(n_warmup_steps=2).decide(hist, 99, 2, hopeless, [1.0], E, best) is False
    assert CurvePruner(interval_steps=2).decide(hist, 99, 2, hopeless, [1.0], E, best) is False
    assert p.decide(hist, 99, 9, {**hopeless, 9: 0.9}, [1.0], E, best) is False
    assert p.decide(hist, 99, 2, hopeless, [1.0], E, ("none", None)) is False
    # never a trap: with 4 stopped trials per whole curve, the next trial runs to the end
    stopped = []
    for i in range(4 * len(hist)):
        t = create_trial(state=TrialState.PRUNED, user_attrs={CURVE_ATTR: {"1": 0.9}, "hwtune:status": "pruned"})
        t.number = 100 + i
        stopped.append(t)
    assert p.decide(hist + stopped[:-1], 99, 2, hopeless, [1.0], E, best) is True
    assert p.decide(hist + stopped, 99, 2, hopeless, [1.0], E, best) is False
    assert p.last_decision["stopped"] == 24 and p.last_decision["complete"] == 6
    # a hardware objective under an error bound: compared with the bound, not with the best
    assert p.decide(hist, 99, 4, mediocre, [1.0], E, ("bound", 0.5)) is False
    assert p.decide(hist, 99, 4, mediocre, [1.0], E, ("bound", 0.05)) is True


def test_pareto_curve_rule_never_compares_very_different_costs():
    p = CurvePruner(threshold=0.05, min_complete=4, cost_ratio=2.0)
    pareto = ("pareto", None)
    # accurate networks that cost about 1 ms, and one far cheaper, inaccurate one
    hist = _history([1.0, 1.0, 1.1, 0.9, 1.0, 0.1])
    bad = {e: v for e, v in _curve_of(0.3, 1.5).items() if e <= 3}
    assert p.decide(hist, 99, 3, bad, [1.0], E, pareto) is True  # dominated by networks of its cost
    assert p.decide(hist, 99, 3, bad, [0.09], E, pareto) is False  # cheap: never stopped for the dearer networks' accuracy
    assert p.decide(hist, 99, 3, bad, [0.12], E, pareto) is True  # a little dearer than the cheap one (0.1 ms, 20 %) and worse
    assert p.decide(hist, 99, 3, bad, [20.0], E, pareto) is False  # twenty times dearer: no peer costs about as much
    assert p.decide(hist, 99, 3, bad, [0.8], E, pareto) is False  # cheaper than all its accurate neighbours: it may be on the front
    assert p.comparable([1.0, 5.0], [0.6, 4.0]) and not p.comparable([1.0, 5.0], [0.6, 1.0]) and not p.comparable([1.0], [1.2])


def test_curve_pruner_reads_the_studys_goal():
    p = CurvePruner()
    assert p.goal({"objectives": ["minimize error"], "constraints": ["latency_ms <= 5"]}) == ("best", None)
    assert p.goal({"objectives": ["maximize accuracy"], "constraints": []}) == ("best", None)
    assert p.goal({"objectives": ["minimize error", "minimize latency_ms"]})[0] == "pareto"
    assert p.goal({"objectives": ["minimize latency_ms"], "constraints": ["error <= 0.05"]}) == ("bound", 0.05)
    assert p.goal({"objectives": ["minimize energy_mj"], "constraints": ["accuracy >= 0.9"]}) == ("bound", pytest.approx(0.1))
    assert p.goal({"objectives": ["minimize latency_ms"], "constraints": []}) == ("none", None)
    assert p.goal(None) == ("best", None)


def _reporting_trainer(curves: dict[float, list[float]]) -> Any:
    def train(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        errs = curves[params["lr"]]
        for epoch, v in enumerate(errs, 1):
            ctx.report(epoch, v)
        return {"error": errs[-1]}

    return train


@pytest.mark.parametrize("objectives", ["minimize: error", {"minimize": ["error", "latency_ms"]}])
def test_curve_pruner_in_the_loop(objectives):
    from hwtune.study import Study

    good = {lr: [v for _, v in sorted(_curve_of(f, 1.5).items())] for lr, f in ((0.1, 0.04), (0.2, 0.05), (0.3, 0.06), (0.4, 0.035))}
    curves = {**good, 0.9: [0.9] * E}
    space = {"width": {"type": "categorical", "choices": [1], "role": "architecture"},
             "lr": {"type": "categorical", "choices": sorted(curves)}, "epochs": E}
    study = Study("curve", space, objectives=objectives, storage=None, sampler="random", pruner=make_pruner({"name": "curve", "min_complete": 3}, max_epochs=E))
    for lr in (0.1, 0.2, 0.3, 0.9, 0.4):
        study.optuna_study.enqueue_trial({"width": 1, "lr": lr})

    def meter(model: Any, params: dict[str, Any]) -> HardwareReport:
        return HardwareReport({"latency_ms": Measurement("latency_ms", 2.0, "ms", "measured:test-double", 2.0, 2.0, 10)})

    summary = study.optimize(lambda p: p, _reporting_trainer(curves), measure=meter, n_trials=5)
    assert [r.status for r in summary.records] == ["trained", "trained", "trained", "pruned", "trained"]
    t = study.optuna_study.trials[3]
    assert t.user_attrs["hwtune:pruned_at_epoch"] == 1
    pred = t.user_attrs[CURVE_PREDICTION_ATTR]
    assert pred["p_better"] < 0.05 and pred["reference"] == pytest.approx(0.04) and pred["source"].startswith("predicted:curve")
    assert study.optuna_study.trials[0].user_attrs[CURVE_ATTR]["9"] == pytest.approx(0.04)
    if isinstance(objectives, str):  # single objective: Optuna's samplers see the stopped trial's errors too
        assert t.intermediate_values == {1: 0.9}


def test_every_pruner_keeps_the_curve_in_errors():
    """Optuna's pruners too: the loop stores the per-epoch errors the curve model reads (``hwtune:curve``)."""
    from hwtune.study import Study

    curves = {0.1: [0.5, 0.3, 0.2], 0.2: [0.6, 0.4, 0.3]}
    space = {"width": {"type": "categorical", "choices": [1], "role": "architecture"}, "lr": {"type": "categorical", "choices": [0.1, 0.2]}, "epochs": 3}
    study = Study("acc", space, objectives="maximize: accuracy", storage=None, sampler="random", pruner=make_pruner("median"))

    def meter(model: Any, params: dict[str, Any]) -> HardwareReport:
        return HardwareReport({"latency_ms": Measurement("latency_ms", 2.0, "ms", "measured:test-double", 2.0, 2.0, 10)})

    study.optimize(lambda p: p, _reporting_trainer(curves), measure=meter, n_trials=2)
    t = study.optuna_study.trials[0]
    err = curves[t.params["lr"]]
    assert t.user_attrs[CURVE_ATTR] == {"1": err[0], "2": err[1], "3": err[2]}
    assert t.intermediate_values[1] == pytest.approx(1 - err[0])  # Optuna's pruner sees accuracies, the curve stays in errors
