from __future__ import annotations

import math

import optuna
import pytest

from hwtune import Study
from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from tests.study import _doubles as d


def _study(**kw):
    kw.setdefault("constraints", ["latency_ms <= 5"])
    kw.setdefault("sampler", "random")
    kw.setdefault("cost_model", None)  # these tests look at the loop without cost-model screening
    return Study("t", d.SPACE, **kw)


def test_over_budget_proposals_are_never_trained():
    trained_widths = []

    def train(model, params, ctx):
        trained_widths.append(model["width"])
        assert ctx.hardware["latency_ms"].value <= 5  # the loop measured before training
        return d.train(model, params, ctx)

    s = _study()
    summary = s.optimize(d.build, train, measure=d.measure, n_trials=30)
    over = [r for r in summary.records if r.status == "over_budget"]
    assert over, "the space has over-budget widths; random search must propose some"
    assert all(w <= 5 for w in trained_widths)
    for r in over:
        assert r.params["width"] > 5
        assert r.hardware["latency_ms"].value == r.params["width"]  # measured value stored
        assert r.hardware["latency_ms"].source == "measured:test-double"
        assert r.values is None and not r.metrics  # never trained, no made-up error
        assert max(r.violations) > 0
    trained = [r for r in summary.records if r.status == "trained"]
    assert len(trained) == len(trained_widths)
    assert summary.counts["over_budget"] + summary.counts["trained"] == 30
    best = summary.best[0]
    assert best.feasible and best.values[0] == min(r.values[0] for r in trained)


def test_over_budget_trials_are_pruned_with_constraints_for_samplers():
    s = _study()
    s.optimize(d.build, d.train, measure=d.measure, n_trials=20)
    for t in s.optuna_study.trials:
        if t.user_attrs["hwtune:status"] == "over_budget":
            assert t.state == optuna.trial.TrialState.PRUNED
            assert list(t.constraints.values())[0] > 0
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert list(t.constraints.values())[0] <= 0


def test_same_architecture_is_measured_once():
    calls = []

    def measure(model, params):
        calls.append(model["width"])
        return d.measure(model, params)

    s = _study()
    summary = s.optimize(d.build, d.train, measure=measure, n_trials=40)
    # 10 widths, 40 trials: reused, not re-measured (the width whose interval straddles the limit,
    # 5 ms, is measured up to 3 times in its own trial before the decision: hardware.decide_near_bounds)
    assert all(calls.count(w) == 1 for w in set(calls) if w != 5) and calls.count(5) <= 3
    reused = [r for r in summary.records if "reused_from_trial" in r.hardware["latency_ms"].extra]
    assert len(reused) == 40 - len(set(calls))


def test_failing_and_nan_trials_are_recorded_and_the_study_goes_on():
    def train(model, params, ctx):
        if model["width"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        if model["width"] == 3:
            return {"error": math.nan}
        return d.train(model, params, ctx)

    def build(params):
        if params["width"] == 4:
            raise ValueError("cannot build width 4")
        return d.build(params)

    s = _study(constraints=["latency_ms <= 10"])
    summary = s.optimize(build, train, measure=d.measure, n_trials=40)
    failed = [r for r in summary.records if r.status == "failed"]
    reasons = {r.params["width"]: r.failure for r in failed}
    assert "train: RuntimeError: CUDA out of memory" in reasons[2]
    assert "error=nan" in reasons[3]
    assert reasons[4].startswith("build: ValueError")
    assert summary.counts["failed"] == len(failed)
    assert summary.counts["trained"] + summary.counts["failed"] == 40
    assert summary.best and summary.best[0].params["width"] not in (2, 3, 4)


def test_nan_loss_from_the_builtin_trainer_is_a_failed_trial():
    from hwtune.exceptions import NonFiniteLossError
    from hwtune.train import get_family, load_digits_dataset, train_classifier

    data = load_digits_dataset()
    model = get_family("mlp").build({"hidden_layers": 1, "units_0": 8}, data.input_shape, 10)
    with pytest.raises(NonFiniteLossError, match="lower learning rate"):
        train_classifier(model, data, {"lr": 1e20, "momentum": 0.9, "epochs": 2})


def test_missing_metric_from_the_meter_fails_the_trial_not_the_study():
    def measure(model, params):
        return HardwareReport({"params": Measurement("params", 10.0, "", "counted")})

    s = _study()
    summary = s.optimize(d.build, d.train, measure=measure, n_trials=3)
    assert summary.counts == {"failed": 3}
    assert "reported no latency_ms" in summary.records[0].failure


def test_same_seed_gives_same_proposals_and_results():
    runs = []
    for _ in range(2):
        s = _study(sampler="tpe", seed=7)
        summary = s.optimize(d.build, d.train, measure=d.measure, n_trials=25)
        runs.append([(r.params, r.status, r.values) for r in summary.records])
    assert runs[0] == runs[1]
    other = _study(sampler="tpe", seed=8).optimize(d.build, d.train, measure=d.measure, n_trials=25)
    assert [r.params for r in other.records] != [p for p, _, _ in runs[0]]


def test_three_modes_hardware_objective_and_pareto():
    # minimize latency subject to error <= 0.3: the error constraint is learned after training
    s = Study("m2", d.SPACE, objectives={"minimize": "latency_ms"}, constraints=["error <= 0.3"], sampler="random")
    summary = s.optimize(d.build, d.train, measure=d.measure, n_trials=30)
    best = summary.best[0]
    assert best.metrics["error"] <= 0.3 and best.values == (best.hardware["latency_ms"].value,)
    # Pareto front of error and latency
    s = Study("m3", d.SPACE, objectives={"minimize": ["error", "latency_ms"]}, sampler="random")
    front = s.optimize(d.build, d.train, measure=d.measure, n_trials=30).best
    assert len(front) >= 2
    for a in front:
        for b in front:
            assert not (b.values[0] < a.values[0] and b.values[1] < a.values[1])


def test_budget_counts_trained_models():
    s = _study()
    summary = s.optimize(d.build, d.train, measure=d.measure, n_trained=8)
    assert summary.counts["trained"] == 8


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"constraints": ["latency <= 5"]}, "constraints[0]"),
        ({"objectives": "minimize: eror"}, "objective.minimize"),
        ({"inference_batch_size": 0}, "inference_batch_size"),
        ({"sampler": "bayes"}, "sampler"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments_raise_before_anything_is_written(tmp_path, kwargs, field):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError) as e:
        Study("t", d.SPACE, storage=url, **kwargs)
    assert e.value.field == field
    assert not (tmp_path / "x.db").exists()


def test_no_budget_is_an_error():
    with pytest.raises(ConfigError, match="no budget"):
        _study().optimize(d.build, d.train, measure=d.measure)


def test_two_worker_processes_share_one_study(tmp_path):
    import json

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = _study(constraints=["latency_ms <= 10"], storage=url)
    summary = study.optimize(d.build, d.slow_train, measure=d.measure, n_trials=10, n_workers=2)
    trials = study.optuna_study.trials
    assert 10 <= len(trials) <= 11  # a worker may start one trial while the other finishes the last
    assert len({t.user_attrs["hwtune:worker"]["pid"] for t in trials}) == 2
    assert summary.counts["trained"] == len(trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)  # workers seeded apart


# -- the default sampler: hwtune's hardware-aware BO ------------------------------------------------
def test_default_sampler_is_hwtune_with_the_study_definition():
    from hwtune.search import HwSampler

    s = Study("dflt", d.SPACE, constraints=["latency_ms <= 5"], cost_model=None)
    sampler = s._sampler()
    assert isinstance(sampler, HwSampler)
    assert [str(c) for c in sampler._constraints] == ["latency_ms <= 5"] and sampler._space is s.space


def test_default_sampler_never_trains_over_budget_and_is_deterministic():
    runs = []
    for _ in range(2):
        s = Study("dflt", d.SPACE, constraints=["latency_ms <= 5"], cost_model=None, seed=3)
        summary = s.optimize(d.build, d.train, measure=d.measure, n_trials=20)
        runs.append([(r.params, r.status, r.values) for r in summary.records])
        trained = [r for r in summary.records if r.status == "trained"]
        assert trained and all(r.params["width"] <= 5 for r in trained)
        # the sampler learns where the budget ends: over-budget measurements stop early
        over = [i for i, r in enumerate(summary.records) if r.status == "over_budget"]
        assert len(over) <= 6, over
    assert runs[0] == runs[1]


def test_default_sampler_in_the_other_two_modes():
    s = Study("m2", d.SPACE, objectives={"minimize": "latency_ms"}, constraints=["error <= 0.3"], cost_model=None)
    best = s.optimize(d.build, d.train, measure=d.measure, n_trials=15).best[0]
    assert best.metrics["error"] <= 0.3
    s = Study("m3", d.SPACE, objectives={"minimize": ["error", "latency_ms"]}, cost_model=None)
    front = s.optimize(d.build, d.train, measure=d.measure, n_trials=15).best
    assert len(front) >= 3


def test_default_sampler_with_two_worker_processes(tmp_path):
    import json

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = Study("w2", d.SPACE, constraints=["latency_ms <= 10"], storage=url, cost_model=None)
    study.optimize(d.build, d.slow_train, measure=d.measure, n_trials=8, n_workers=2)
    trials = study.optuna_study.trials
    assert len({t.user_attrs["hwtune:worker"]["pid"] for t in trials}) == 2
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)  # no duplicate proposals
