"""The cost model in the loop: predictions stored beside measurements; sure over-budget proposals skipped."""

from __future__ import annotations

import json

import pytest

from hwtune import Study
from hwtune.exceptions import ConfigError
from tests.study import _doubles as d


def _run(n_trials=60, **kw):
    measured, trained = [], []

    def measure(model, params):
        measured.append(model["width"])
        return d.measure(model, params)

    def train(model, params, ctx):
        trained.append(model["width"])
        return d.train(model, params, ctx)

    kw.setdefault("constraints", ["latency_ms <= 3"])
    s = Study("c", d.SPACE, sampler="random", seed=0, **kw)
    summary = s.optimize(d.build, train, measure=measure, n_trials=n_trials)
    return s, summary, measured, trained


def test_sure_over_budget_proposals_are_neither_measured_nor_trained():
    s, summary, measured, trained = _run()
    skipped = [r for r in summary.records if r.status == "predicted_over_budget"]
    assert skipped, "after a few measurements the cost model must be sure that wide networks are over budget"
    skipped_widths = {r.params["width"] for r in skipped}
    assert all(w > 3 for w in skipped_widths)  # it only skips networks that really are over budget
    for r in skipped:
        assert not r.hardware and not r.metrics and r.values is None
        lat = r.predicted["latency_ms"]
        assert lat.source.startswith("predicted:") and lat.value > 3
        assert max(r.violations) > 0  # samplers learn from it like from a measured infeasible trial
    # the measurement count is lower than the number of distinct over-budget widths proposed
    assert len(set(measured)) < len({r.params["width"] for r in summary.records})  # (one near the bound is measured again)
    assert all(w <= 3 for w in trained)


def test_predictions_are_stored_beside_measurements():
    s, summary, measured, trained = _run()
    both = [r for r in summary.records if r.hardware and r.predicted and "reused_from_trial" not in r.hardware["latency_ms"].extra]
    assert both
    for r in both:
        p, m = r.predicted["latency_ms"], r.hardware["latency_ms"]
        assert p.source.startswith("predicted:") and m.source == "measured:test-double"
        assert p.ci_low <= p.value <= p.ci_high
        assert p.extra["n_observations"] >= 3  # DeviceCostModels.min_observations


def test_threshold_zero_never_skips_and_none_disables():
    _, summary, _, _ = _run(skip_threshold=0.0, n_trials=30)
    assert "predicted_over_budget" not in summary.counts
    _, summary, _, _ = _run(cost_model=None, n_trials=30)
    assert not any(r.predicted for r in summary.records)


def test_measurements_saved_and_reused_by_a_later_study(tmp_path):
    path = tmp_path / "cpu-costs.json"
    _run(n_trials=20, cost_model_file=str(path))
    saved = json.loads(path.read_text())
    n_saved = len(saved["observations"]["latency_ms"])
    assert n_saved >= 5
    # a new study on the same device and space starts with a fitted model: it can skip from trial 0
    s, summary, measured, trained = _run(n_trials=15, cost_model_file=str(path))
    first = summary.records[0]
    assert first.predicted or first.status == "predicted_over_budget"
    assert len(json.loads(path.read_text())["observations"]["latency_ms"]) >= n_saved


def test_unknown_cost_model_and_bad_threshold_are_config_errors():
    with pytest.raises(ConfigError) as e:
        Study("c", d.SPACE, constraints=["latency_ms <= 3"], cost_model="magic")
    assert e.value.field == "cost_model"
    with pytest.raises(ConfigError) as e:
        Study("c", d.SPACE, constraints=["latency_ms <= 3"], skip_threshold=1.5)
    assert e.value.field == "skip_threshold"


@pytest.mark.parametrize("name", ["linear", "additive-gp"])
def test_the_study_files_cost_model_is_what_the_sampler_screens_with(name):
    """One cost model: the study's ``cost_model`` decides the loop's skip and the sampler's screen."""
    s = Study("one", d.SPACE, constraints=["latency_ms <= 4"], seed=0, cost_model=name)
    s.optimize(d.build, d.train, measure=d.measure, n_trials=20)
    sampler = s.optuna_study.sampler
    assert sampler._costs is s._costs  # the same object, not a copy
    screened = [h for h in sampler.history if h["p_feasible"] is not None]
    assert screened, "the sampler screened its candidates with the study's cost model"
    assert {h["cost_models"]["latency_ms"] for h in screened} == {name}
    stored = {r.predicted["latency_ms"].source for r in s.records() if "latency_ms" in r.predicted}
    assert stored == {f"predicted:{name}"}  # the loop's predictions come from the same model


def test_a_study_without_cost_model_screens_nothing():
    s = Study("none", d.SPACE, constraints=["latency_ms <= 4"], seed=0, cost_model=None)
    s.optimize(d.build, d.train, measure=d.measure, n_trials=12)
    assert all(h["p_feasible"] is None for h in s.optuna_study.sampler.history)


def test_study_file_cost_model_reaches_the_sampler(tmp_path):
    from hwtune.study import parse_study_file, study_from_file

    spec = parse_study_file({
        "name": "lin", "space": {"conv_layers": {"type": "int", "low": 1, "high": 2}, "filters_0": {"type": "int", "low": 4, "high": 8},
                                 "filters_1": {"type": "int", "low": 4, "high": 8}, "epochs": 1},
        "constraints": ["latency_ms <= 5"], "cost_model": "linear",
    })
    study, _, _ = study_from_file(spec, storage=f"sqlite:///{tmp_path / 'l.db'}")
    study.open()
    assert study._costs.model_name("latency_ms") == "linear"
    assert study.optuna_study.sampler._costs is study._costs
