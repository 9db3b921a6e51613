"""The curve pruner's prior curves and budget forecast (``hwtune.search._curve_forecast``)."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.search import CURVE_ATTR, CurvePruner, StudyBudget, make_pruner
from hwtune.search._curve_forecast import final_best_probability, load_prior_curves, parse_prior_curves
from hwtune.search._curves import CurvePrediction
from tests.search.test_pruners import _reporting_trainer

E = 9


def _curve_of(final: float, amp: float = 1.5) -> dict[int, float]:
    return {e: min(0.95, final * math.exp(amp * (1 / e - 1 / E))) for e in range(1, E + 1)}


def _trial(number: int, curve: dict[int, float], state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    whole = max(curve) >= E and state == TrialState.COMPLETE
    t = create_trial(state=state, value=curve[max(curve)] if state == TrialState.COMPLETE else None,
                     user_attrs={CURVE_ATTR: {str(k): v for k, v in curve.items()}, "hwtune:status": "trained" if whole else "pruned",
                                 **({"hwtune:metrics": {"error": curve[max(curve)]}} if whole else {})})
    t.number = number
    return t


def test_the_chance_of_ending_best_falls_with_the_networks_to_come():
    pred = CurvePrediction(math.log(0.04), 0.3, E, 1)
    assert final_best_probability(pred, 0.05, [], 0) == pytest.approx(pred.prob_below(0.05), abs=0.02)
    assert final_best_probability(pred, math.inf, [0.1, 0.2], 0) == 1.0
    finals = [0.02, 0.03] + [0.1] * 8  # a fifth of the networks end below 0.035
    p = [final_best_probability(pred, 0.05, finals, m) for m in (0, 1, 5, 20)]
    assert p == sorted(p, reverse=True) and p[0] > 0.7 and p[-1] < 0.05
    # networks that all end worse than anything the trial could reach cost it nothing
    assert final_best_probability(pred, 0.05, [0.5] * 10, 20) == pytest.approx(final_best_probability(pred, 0.05, [], 0))


def test_the_prior_weighs_as_a_few_networks_once_the_study_has_its_own():
    """A prior far better than what the study proposes (its sampler had found a better region) must
    not stop every modest record for good: the study's own finals take over the forecast of the
    networks to come (the README's digits study as a prior: the second study trained 5 networks and
    stopped 29, best 13.65 % against the prior's 1.95 %, when the prior counted as the whole study)."""
    pred = CurvePrediction(log_mean=math.log(0.15), log_sd=0.6, final_epoch=8, last_epoch=2)
    prior = [0.061, 0.9, 0.877, 0.9, 0.554, 0.047, 0.031, 0.031, 0.111, 0.019, 0.708, 0.028, 0.201, 0.095, 0.838, 0.039, 0.9, 0.056, 0.075, 0.064]
    own = [0.136, 0.278, 0.344, 0.201, 0.138, 0.157, 0.186] * 4  # the study's finals: none beat its record
    alone = final_best_probability(pred, 0.136, [], 15, prior)
    assert alone == pytest.approx(final_best_probability(pred, 0.136, prior, 15)) and alone < 0.005
    p = [final_best_probability(pred, 0.136, own[:k], 15, prior) for k in (1, 4, 12, 28)]
    assert p == sorted(p) and p[-1] > 0.05  # past the threshold: the record-breaker is trained again
    assert final_best_probability(pred, 0.136, own[:4], 15, prior, prior_weight=4.0) == pytest.approx(p[1])  # the default: 4 networks
    assert final_best_probability(pred, 0.136, own[:4], 15, prior, prior_weight=1e9) == pytest.approx(alone, abs=1e-6)


def test_the_budget_forecasts_the_networks_still_to_come():
    done = [_trial(0, _curve_of(0.05)), _trial(1, {1: 0.9}, TrialState.PRUNED), _trial(2, _curve_of(0.06))]
    rejected = create_trial(state=TrialState.PRUNED, user_attrs={"hwtune:status": "over_budget"})
    rejected.number = 3
    trials = [*done, rejected]
    # 4 trials so far, 3 of them networks; 10 trials in all: 5 more after the running one, 3/4 of them networks
    assert StudyBudget(n_trials=10).remaining_networks(trials) == pytest.approx(5 * 3 / 4)
    # 6 trained networks wanted, 2 so far, one running: 3 more trained, at 3 networks per 2 trained
    assert StudyBudget(n_trained=6).remaining_networks(trials) == pytest.approx(3 * 3 / 2)
    now = [0.0]
    budget = StudyBudget(deadline=100.0, clock=lambda: now[0]).start(trials[:1])
    assert budget.remaining_networks(trials[:1]) is None  # no network finished in this run yet: no rate
    now[0] = 20.0  # two networks in 20 s, 80 s left
    assert budget.remaining_networks(trials) == pytest.approx(80 * 2 / 20)
    assert StudyBudget(n_trials=10, deadline=100.0, clock=lambda: now[0]).start(trials[:1]).remaining_networks(trials) == pytest.approx(5 * 3 / 4)
    assert StudyBudget().remaining_networks(trials) is None
    assert StudyBudget(n_trials=10).remaining_networks([]) is None


@pytest.mark.parametrize("raw, field", [
    ("[0.5, 0.4]", "pruner.prior_curves"),
    ([[0.5, "x"]], "pruner.prior_curves[0]"),
    ([[0.5, 0.4], [1.5]], "pruner.prior_curves[1]"),
    ([[]], "pruner.prior_curves[0]"),
    ([{0: 0.5}], "pruner.prior_curves[0]"),
])
def test_bad_prior_curves_name_the_curve(raw, field):
    with pytest.raises(ConfigError) as e:
        parse_prior_curves("pruner.prior_curves", raw)
    assert e.value.field == field and e.value.fix
    with pytest.raises(ConfigError) as e:
        make_pruner({"name": "curve", "prior_curves": raw})
    assert e.value.field == field


@pytest.mark.parametrize("options, field", [
    ({"prior_studies": "mnist-1"}, "pruner.prior_studies"),
    ({"prior_studies": [""]}, "pruner.prior_studies"),
    ({"forecast": "yes"}, "pruner.forecast"),
])
def test_bad_forecast_options(options, field):
    with pytest.raises(ConfigError) as e:
        make_pruner({"name": "curve", **options})
    assert e.value.field == field and e.value.fix


def test_prior_curves_let_the_rule_decide_from_the_first_network():
    """Without whole curves of its own the plain rule waits; with prior curves and the budget's forecast
    it stops a network on course for chance before any network of the study has finished."""
    prior = [list(_curve_of(f).values()) for f in (0.03, 0.04, 0.05, 0.06, 0.08, 0.12, 0.2, 0.3)]
    hopeless = {1: 0.9, 2: 0.89}
    first = [_trial(0, hopeless, TrialState.RUNNING)]
    plain = CurvePruner(max_resource=E)
    assert plain.decide(first, 0, 2, hopeless, [1.0], E) is False
    with_prior = CurvePruner(max_resource=E, prior_curves=prior)
    assert with_prior.decide(first, 0, 2, hopeless, [1.0], E) is False  # nothing to beat and no forecast
    forecast = CurvePruner(max_resource=E, prior_curves=prior, forecast=True)
    forecast.budget = StudyBudget(n_trials=30)
    assert forecast.decide(first, 0, 2, hopeless, [1.0], E) is False  # no trial finished: the budget cannot tell yet
    history = [_trial(0, _curve_of(0.05)), _trial(1, hopeless, TrialState.RUNNING)]
    assert forecast.decide(history, 1, 2, hopeless, [1.0], E) is True
    assert forecast.last_decision["remaining_networks"] > 0 and forecast.last_decision["p_final_best"] < 0.05


def test_the_forecast_stops_a_modest_record_a_long_study_will_beat():
    """A network on course to beat the study's best by a little: the plain rule keeps it; with many
    networks to come and a prior where a good share end far better, the forecast stops it; with none
    to come it keeps it again."""
    history = [_trial(i, _curve_of(f)) for i, f in enumerate((0.12, 0.15, 0.2, 0.3))]
    prior = [list(_curve_of(f).values()) for f in (0.02, 0.025, 0.03, 0.04, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5)]
    modest = {e: v for e, v in _curve_of(0.1).items() if e <= 3}
    running = [*history, _trial(4, modest, TrialState.RUNNING)]
    assert CurvePruner(max_resource=E, prior_curves=prior).decide(running, 4, 3, modest, [1.0], E) is False
    long_study = CurvePruner(max_resource=E, prior_curves=prior, forecast=True)
    long_study.budget = StudyBudget(n_trials=60)
    assert long_study.decide(running, 4, 3, modest, [1.0], E) is True
    short = CurvePruner(max_resource=E, prior_curves=prior, forecast=True)
    short.budget = StudyBudget(n_trials=6)
    assert short.decide(running, 4, 3, modest, [1.0], E) is False


def _meter(model: Any, params: dict[str, Any]) -> HardwareReport:
    return HardwareReport({"latency_ms": Measurement("latency_ms", 2.0, "ms", "measured:test-double", 2.0, 2.0, 10)})


def _study(name: str, storage: str, pruner: Any, curves: dict[float, list[float]], sampler: str = "random") -> Any:
    from hwtune.study import Study

    space = {"width": {"type": "categorical", "choices": [1], "role": "architecture"},
             "lr": {"type": "categorical", "choices": sorted(curves)}, "epochs": E}
    return Study(name, space, objectives="minimize: error", storage=storage, sampler=sampler, pruner=pruner)


def test_prior_studies_are_read_from_the_storage_when_the_loop_starts(tmp_path):
    """A second study names the first in ``prior_studies``: the loop reads its curves before any trial
    and the first network on course for chance is stopped; a wrong name fails before anything is run."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    curves = {lr: [v for _, v in sorted(_curve_of(f).items())] for lr, f in ((0.1, 0.04), (0.2, 0.05), (0.3, 0.06), (0.4, 0.08), (0.5, 0.12))}
    curves[0.9] = [0.9] * E
    first = _study("first", storage, make_pruner("none"), curves)
    for lr in (0.1, 0.2, 0.3, 0.4, 0.5, 0.9):
        first.optuna_study.enqueue_trial({"width": 1, "lr": lr})
    first.optimize(lambda p: p, _reporting_trainer(curves), measure=_meter, n_trials=6)
    assert len(load_prior_curves(storage, ["first"], "pruner.prior_studies")) == 6

    measured: list[Any] = []
    for names, words in ((["first", "frist"], "studies here: first."), (["second"], "is this study")):
        wrong = _study("second", storage, make_pruner({"name": "curve", "prior_studies": names, "forecast": True}, max_epochs=E), curves)
        with pytest.raises(ConfigError) as e:
            wrong.optimize(lambda p: p, _reporting_trainer(curves), measure=lambda m, p: measured.append(p) or _meter(m, p), n_trials=4)
        assert e.value.field == f"pruner.prior_studies[{len(names) - 1}]" and words in str(e.value)
    assert measured == [] and optuna.get_all_study_names(storage) == ["first"]  # refused before anything was measured or written

    second = _study("second", storage, make_pruner({"name": "curve", "prior_studies": ["first"], "forecast": True}, max_epochs=E), curves)
    for lr in (0.2, 0.9, 0.1):
        second.optuna_study.enqueue_trial({"width": 1, "lr": lr})
    summary = second.optimize(lambda p: p, _reporting_trainer(curves), measure=_meter, n_trials=10)
    assert [r.status for r in summary.records[:3]] == ["trained", "pruned", "trained"]
    assert second.optuna_study.trials[1].user_attrs["hwtune:pruned_at_epoch"] == 1  # with 4 min_complete and no prior it would train whole
    assert second.pruner.budget is not None and second.pruner.budget.n_trials == 10

    # hwtune's sampler reads the same prior curves: the stopped network is observed at its predicted
    # final error from the start (no whole curve of its own study yet), as the pruner predicted it
    from hwtune.search._observations import read_observations

    third = _study("third", storage, make_pruner({"name": "curve", "prior_studies": ["first"], "forecast": True}, max_epochs=E), curves, "hwtune")
    for lr in (0.2, 0.9):
        third.optuna_study.enqueue_trial({"width": 1, "lr": lr})
    third.optimize(lambda p: p, _reporting_trainer(curves), measure=_meter, n_trials=3)
    sampler = third.optuna_study.sampler
    assert len(sampler._prior_curves) == 6 and third.optuna_study.trials[1].user_attrs["hwtune:pruned_at_epoch"] == 1
    _, stopped, _ = read_observations(third.optuna_study.trials, third.space, False, prior_curves=sampler._prior_curves)
    assert stopped.stored_status == "pruned" and stopped.predicted is not None and stopped.values["error"] > 0.1  # the best prior final: 0.04
    assert read_observations(third.optuna_study.trials, third.space, False)[1].status == "pruned"  # its own curves alone: too few
