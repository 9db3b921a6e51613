"""The learning-curve model: final errors of synthetic and of real MNIST curves predicted within their
intervals, and the sampler's view of stopped trials (their predicted final errors)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hwtune.search._curves import CurveModel, fit_curves, horizon_of, trial_curve
from hwtune.search._observations import MIN_CURVES, read_observations
from hwtune.vocabulary import CURVE_ATTR, METRICS_ATTR, PARAMS_ATTR, STATUS_ATTR

E = 9

# Real curves: validation error per epoch of the 41 networks the unpruned TPE studies trained in
# `benchmarks/train_pruning.py --seeds 0 1 2 3 --minutes 2.75 --train-subset 1500 --val-size 1000` (MNIST,
# 9 epochs, SGD; the shared dev machine, 2026-12-01; benchmarks/results/train_pruning_curve_tpe.json).
REAL = [
    [0.718, 0.704, 0.388, 0.298, 0.14, 0.157, 0.097, 0.09, 0.144],
    [0.857, 0.906, 0.91, 0.91, 0.91, 0.91, 0.91, 0.91, 0.91],
    [0.662, 0.403, 0.312, 0.214, 0.206, 0.156, 0.14, 0.135, 0.125],
    [0.906, 0.906, 0.838, 0.772, 0.719, 0.615, 0.521, 0.374, 0.337],
    [0.865, 0.866, 0.869, 0.868, 0.868, 0.87, 0.87, 0.872, 0.874],
    [0.845, 0.793, 0.763, 0.715, 0.704, 0.703, 0.699, 0.692, 0.689],
    [0.854, 0.869, 0.789, 0.719, 0.678, 0.587, 0.522, 0.426, 0.399],
    [0.863, 0.62, 0.688, 0.703, 0.686, 0.438, 0.286, 0.207, 0.155],
    [0.806, 0.424, 0.241, 0.211, 0.105, 0.091, 0.108, 0.075, 0.112],
    [0.887, 0.876, 0.827, 0.774, 0.761, 0.733, 0.641, 0.586, 0.566],
    [0.874, 0.874, 0.874, 0.852, 0.847, 0.769, 0.569, 0.328, 0.303],
    [0.262, 0.245, 0.144, 0.107, 0.135, 0.16, 0.084, 0.09, 0.095],
    [0.625, 0.43, 0.277, 0.206, 0.194, 0.185, 0.154, 0.147, 0.155],
    [0.885, 0.772, 0.648, 0.606, 0.463, 0.321, 0.218, 0.21, 0.183],
    [0.6, 0.432, 0.331, 0.248, 0.235, 0.184, 0.169, 0.149, 0.15],
    [0.896, 0.897, 0.895, 0.891, 0.895, 0.893, 0.899, 0.909, 0.906],
    [0.839, 0.474, 0.313, 0.17, 0.146, 0.204, 0.144, 0.149, 0.117],
    [0.564, 0.324, 0.156, 0.127, 0.139, 0.124, 0.087, 0.053, 0.071],
    [0.916, 0.916, 0.903, 0.87, 0.844, 0.811, 0.779, 0.733, 0.598],
    [0.688, 0.335, 0.273, 0.133, 0.11, 0.111, 0.074, 0.077, 0.199],
    [0.861, 0.801, 0.77, 0.756, 0.731, 0.645, 0.556, 0.467, 0.412],
    [0.759, 0.642, 0.517, 0.355, 0.229, 0.183, 0.165, 0.142, 0.154],
    [0.659, 0.524, 0.31, 0.264, 0.178, 0.211, 0.154, 0.141, 0.135],
    [0.448, 0.231, 0.202, 0.128, 0.131, 0.088, 0.136, 0.103, 0.078],
    [0.254, 0.189, 0.145, 0.098, 0.143, 0.106, 0.09, 0.089, 0.08],
    [0.557, 0.227, 0.175, 0.126, 0.135, 0.081, 0.074, 0.065, 0.054],
    [0.907, 0.906, 0.903, 0.902, 0.9, 0.897, 0.894, 0.872, 0.84],
    [0.913, 0.913, 0.912, 0.912, 0.908, 0.889, 0.876, 0.765, 0.785],
    [0.886, 0.415, 0.887, 0.899, 0.915, 0.899, 0.887, 0.887, 0.887],
    [0.892, 0.567, 0.302, 0.231, 0.202, 0.124, 0.164, 0.198, 0.117],
    [0.896, 0.876, 0.882, 0.868, 0.791, 0.77, 0.741, 0.712, 0.677],
    [0.909, 0.892, 0.87, 0.812, 0.795, 0.798, 0.795, 0.796, 0.781],
    [0.735, 0.469, 0.337, 0.333, 0.184, 0.226, 0.165, 0.157, 0.2],
    [0.748, 0.501, 0.47, 0.264, 0.165, 0.19, 0.127, 0.152, 0.127],
    [0.392, 0.257, 0.148, 0.115, 0.103, 0.156, 0.154, 0.092, 0.104],
    [0.757, 0.792, 0.4, 0.346, 0.182, 0.157, 0.12, 0.074, 0.079],
    [0.844, 0.86, 0.794, 0.587, 0.486, 0.566, 0.394, 0.24, 0.162],
    [0.438, 0.243, 0.141, 0.125, 0.14, 0.143, 0.127, 0.11, 0.094],
    [0.5, 0.423, 0.349, 0.146, 0.157, 0.118, 0.118, 0.148, 0.106],
    [0.41, 0.249, 0.137, 0.124, 0.098, 0.1, 0.081, 0.086, 0.076],
    [0.723, 0.887, 0.887, 0.887, 0.887, 0.887, 0.887, 0.887, 0.887],
]


def synthetic(n: int, rng: np.random.Generator, noise: float = 0.05) -> list[dict[int, float]]:
    """Power-law curves in log error whose final level and amplitude are correlated across trials."""
    out = []
    for _ in range(n):
        b = rng.normal(math.log(0.05), 0.5)
        a = abs(rng.normal(1.5, 0.4)) + 0.5 * (b - math.log(0.05))
        e = np.arange(1, E + 1)
        y = b + a / e + rng.normal(0, noise, E)
        out.append({int(k): float(math.exp(min(v, 0.0))) for k, v in zip(e, y)})
    return out


def prefix(c: dict[int, float], k: int) -> dict[int, float]:
    return {e: v for e, v in c.items() if e <= k}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_synthetic_final_errors_within_interval(k):
    rng = np.random.default_rng(0)
    train, test = synthetic(40, rng), synthetic(100, rng)
    # the study also holds stopped trials: prefixes of other curves
    model = CurveModel().fit(train + [prefix(c, 2) for c in synthetic(20, rng)], E)
    assert model.fitted and model.n_complete == 40
    inside, err, naive = 0, [], []
    for c in test:
        p = model.predict(prefix(c, k), E)
        lo, hi = p.interval(0.95)
        inside += lo <= c[E] <= hi
        err.append(abs(p.log_mean - math.log(c[E])))
        naive.append(abs(math.log(c[k]) - math.log(c[E])))
    assert inside >= 85, inside  # 95 % intervals: at least 85 of 100 inside
    assert np.median(err) < 0.5 * np.median(naive)  # far better than "the last error is the final one"
    if k >= 3:
        assert np.median(err) < 0.12  # within ~12 % of the final error


def test_more_epochs_narrow_the_prediction():
    rng = np.random.default_rng(1)
    model = CurveModel().fit(synthetic(30, rng), E)
    c = synthetic(1, rng)[0]
    sds = [model.predict(prefix(c, k), E).log_sd for k in (1, 2, 4, 6, 8)]
    assert all(a > b for a, b in zip(sds, sds[1:])), sds
    whole = model.predict(c, E)  # already at its last epoch: its own last error
    assert whole.error == pytest.approx(c[E]) and whole.log_sd < sds[-1]
    prior = model.predict({}, E)  # nothing seen: the population
    assert prior.log_sd > sds[0]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_real_mnist_curves_leave_one_out(k):
    """Each real curve predicted from its first ``k`` epochs by a model fitted on the others (and on its
    own prefix, as in a study): the recorded final error lies inside the 95 % interval for at least
    85 % of them (measured with the calibrated width: 41/41 after 1 epoch, 38/41 after 3, 36/41 after 5;
    before the width was calibrated on the study's own whole curves, 31/41 after 5, and this failed)."""
    curves = [{e + 1: v for e, v in enumerate(c)} for c in REAL]
    inside, ratios = 0, []
    for i, c in enumerate(curves):
        others = curves[:i] + curves[i + 1 :]
        model = CurveModel().fit(others + [prefix(c, k)], E)
        p = model.predict(prefix(c, k), E)
        lo, hi = p.interval(0.95)
        inside += lo <= c[E] <= hi
        ratios.append(p.error / c[E])
    assert inside >= 0.85 * len(curves), inside
    assert 0.5 < float(np.median(ratios)) < 2.0  # no bias in the typical prediction


def test_few_whole_curves_do_not_make_the_model_sure():
    """Real curves of one MNIST study (seed 3 of `train_pruning_curve_tpe_v1.json`): three networks stuck
    near chance and one that learned (11.7 %). A first version learned from these four alone that a low
    first-epoch error means a *high* final one (1.02 predicted for a network at 39 % after epoch 1,
    which ended at 10.4 %, below the best) and stopped it; the population's covariance is now shrunk
    towards a broad prior while there are few whole curves."""
    stuck_and_one = [
        [0.907, 0.906, 0.903, 0.902, 0.9, 0.897, 0.894, 0.872, 0.84],
        [0.913, 0.913, 0.912, 0.912, 0.908, 0.889, 0.876, 0.765, 0.785],
        [0.886, 0.415, 0.887, 0.899, 0.915, 0.899, 0.887, 0.887, 0.887],
        [0.892, 0.567, 0.302, 0.231, 0.202, 0.124, 0.164, 0.198, 0.117],
    ]
    curves = [{e + 1: v for e, v in enumerate(c)} for c in stuck_and_one]
    early = {1: 0.392}  # the network that ended at 10.4 %
    model = CurveModel().fit(curves + [early], E)
    p = model.predict(early, E)
    assert p.error < 0.6 and p.prob_below(0.117) > 0.05
    lo, hi = p.interval(0.95)
    assert lo <= 0.104 <= hi


def test_hopeless_and_promising_probabilities():
    rng = np.random.default_rng(2)
    model = CurveModel().fit(synthetic(30, rng), E)
    best = 0.05
    diverged = {1: 0.9, 2: 0.9}
    good = {1: 0.05 * math.exp(1.5) * 0.8, 2: 0.05 * math.exp(0.75) * 0.8}  # below the typical curve
    assert model.predict(diverged, E).prob_below(best) < 0.01
    assert model.predict(good, E).prob_below(best) > 0.3


def test_fit_cache_ignores_order_and_reads_stored_curves():
    rng = np.random.default_rng(3)
    cs = synthetic(10, rng)
    assert fit_curves(cs) is fit_curves(list(reversed(cs)))
    t = create_trial(state=TrialState.COMPLETE, value=0.1, user_attrs={CURVE_ATTR: {"1": 0.5, "2": float("nan"), "3": 0.2}})
    assert trial_curve(t) == {1: 0.5, 3: 0.2}
    t2 = create_trial(state=TrialState.COMPLETE, value=0.1, intermediate_values={1: 0.4, 2: 0.3})
    assert trial_curve(t2) == {1: 0.4, 2: 0.3}
    assert horizon_of({"epochs": 7}) == 7 and horizon_of({}, [{1: 0.1, 4: 0.1}]) == 4 and horizon_of({}, [], 9) == 9


def test_few_points_fall_back_to_a_weak_prior():
    m = CurveModel().fit([{1: 0.3}])
    assert not m.fitted
    p = m.predict({1: 0.3}, E)
    assert math.isfinite(p.log_mean) and p.log_sd > 0.3


# -- the sampler's view of stopped trials --------------------------------------------------------------
def _trial(number: int, status: str, curve: list[float], lr: float) -> optuna.trial.FrozenTrial:
    state = {"trained": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "running": TrialState.RUNNING}[status]
    ua: dict[str, Any] = {STATUS_ATTR: status, PARAMS_ATTR: {"lr": lr, "epochs": E}, CURVE_ATTR: {str(i + 1): v for i, v in enumerate(curve)},
                          "hwtune:hardware": {"latency_ms": {"value": 1.0 + lr, "unit": "ms", "source": "measured:test"}}}
    if status == "trained":
        ua[METRICS_ATTR] = {"error": curve[-1]}
    t = create_trial(state=state, value=curve[-1] if status == "trained" else None, user_attrs=ua,
                     params={"lr": lr}, distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    t.number = number
    return t


def _study_trials(n_trained: int) -> list[optuna.trial.FrozenTrial]:
    rng = np.random.default_rng(4)
    trials = []
    for i, c in enumerate(synthetic(n_trained, rng)):
        trials.append(_trial(i, "trained", [c[e] for e in range(1, E + 1)], 0.01 * (i + 1)))
    trials.append(_trial(n_trained, "pruned", [0.9, 0.88], 0.9))        # hopeless, stopped at epoch 2
    trials.append(_trial(n_trained + 1, "pruned", [0.25, 0.12, 0.09], 0.05))  # stopped at epoch 3 (e.g. by Hyperband)
    return trials


def test_stopped_trials_are_observed_with_their_predicted_final_error():
    from hwtune.space import SearchSpace

    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "epochs": E})
    trials = _study_trials(8)
    obs = read_observations(trials, space, plain=False)
    stopped = [o for o in obs if o.stored_status == "pruned"]
    assert len(stopped) == 2 and all(o.status == "trained" and o.predicted is not None for o in stopped)
    model = fit_curves([trial_curve(t) for t in trials])  # the same model the pruner decides with
    for o, t in zip(stopped, trials[-2:]):
        assert o.values["error"] == pytest.approx(model.predict(trial_curve(t), E).error)
        assert o.values["accuracy"] == pytest.approx(1 - o.values["error"])
        assert o.values["latency_ms"] == pytest.approx(1.0 + o.params["lr"])  # its measurements stay
    hopeless, promising = stopped
    assert hopeless.values["error"] > 0.5 and promising.values["error"] < 0.09
    # the trained ones are untouched
    assert all(o.predicted is None and o.values["error"] == t.user_attrs[METRICS_ATTR]["error"] for o, t in zip(obs[:8], trials[:8]))
    # too few whole curves, a plain study, or curves switched off: stopped trials stay out, as before
    few = _study_trials(MIN_CURVES - 1)
    assert [o.status for o in read_observations(few, space, plain=False)][-2:] == ["pruned", "pruned"]
    assert [o.status for o in read_observations(trials, space, plain=True)][-2:] == ["pruned", "pruned"]
    assert [o.status for o in read_observations(trials, space, plain=False, curves=False)][-2:] == ["pruned", "pruned"]


def test_prior_curves_let_a_stopped_trial_be_predicted_before_the_study_has_whole_curves():
    """With the pruner's prior curves (earlier studies of the task), the sampler predicts a stopped trial
    from the study's first one, with the model fitted on both; without them it stays out, as before."""
    from hwtune.space import SearchSpace

    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "epochs": E})
    trials = _study_trials(0)  # two stopped trials, nothing trained whole yet
    prior = [{i + 1: v for i, v in enumerate(c)} for c in REAL]
    assert [o.status for o in read_observations(trials, space, plain=False)] == ["pruned", "pruned"]
    obs = read_observations(trials, space, plain=False, prior_curves=prior)
    assert [o.stored_status for o in obs] == ["pruned", "pruned"] and all(o.status == "trained" for o in obs)
    model = fit_curves([trial_curve(t) for t in trials] + prior)
    for o, t in zip(obs, trials):
        assert o.values["error"] == pytest.approx(model.predict(trial_curve(t), E).error)
    hopeless, promising = obs
    assert hopeless.values["error"] > 0.3 > 0.15 > promising.values["error"]
    # prior curves that never reach the study's last epoch are not whole curves: nothing predicted
    short = [{e: v for e, v in c.items() if e <= 3} for c in prior]
    assert [o.status for o in read_observations(trials, space, plain=False, prior_curves=short)] == ["pruned", "pruned"]


def test_the_start_up_spreads_away_from_stopped_trials_it_cannot_predict_yet():
    """Stopped trials the curve model cannot predict yet still count as tried: the start-up's greedy
    maximin keeps away from them, so it cannot propose the same corner again and again (a digits
    study with an aggressive pruner proposed 14 networks in a row at chance after epoch 1)."""
    from hwtune.search._pool import ProposalState
    from hwtune.search._proposer import Proposer
    from hwtune.search._targets import resolve_targets
    from hwtune.space import SearchSpace, parse_objectives

    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "epochs": E})
    targets = resolve_targets(parse_objectives({"minimize": "error"}), [], ["minimize"], [])
    trials = [_trial(0, "trained", [0.5, 0.3], 0.3), _trial(1, "trained", [0.4, 0.2], 0.5)]
    trials += [_trial(2 + i, "pruned", [0.9], lr) for i, lr in enumerate((0.001, 0.0012, 0.0015))]  # the far corner, stopped
    obs = read_observations(trials, space, False)
    proposer = Proposer(ProposalState(n_startup=8), space, targets, obs, None, np.random.default_rng(0))
    assert len(proposer.stopped) == 3 and len(proposer.trained) == 2
    (prop,) = proposer.propose(1)
    assert proposer.info[0]["startup"]
    # far from every tried network in log(lr): between the stopped corner and the trained ones
    tried = np.log([0.3, 0.5, 0.001, 0.0012, 0.0015])
    assert np.min(np.abs(tried - np.log(prop["lr"]))) > 0.5
    blind = Proposer(ProposalState(n_startup=8), space, targets, [o for o in obs if o.status != "pruned"], None, np.random.default_rng(0))
    (corner,) = blind.propose(1)
    assert corner["lr"] < 0.002  # what the start-up proposed when stopped trials were invisible to it


def test_stopped_trials_feed_the_samplers_quality_model():
    """The proposer's error GP is fitted on trained trials and on stopped ones at their predicted error."""
    from hwtune.search._pool import ProposalState
    from hwtune.search._proposer import Proposer
    from hwtune.search._targets import resolve_targets
    from hwtune.space import SearchSpace, parse_objectives

    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "epochs": E})
    targets = resolve_targets(parse_objectives({"minimize": "error"}), [], ["minimize"], [])
    trials = _study_trials(8)
    with_curves = Proposer(ProposalState(), space, targets, read_observations(trials, space, False), None, np.random.default_rng(0))
    without = Proposer(ProposalState(), space, targets, read_observations(trials, space, False, curves=False), None, np.random.default_rng(0))
    gp, gp0 = with_curves._fit_quality()["error"], without._fit_quality()["error"]
    assert gp.n == 10 and gp0.n == 8
    # the GP now knows that lr = 0.9 is bad: its predicted log error there is far above the one without the stopped trial
    x = with_curves.inputs.surrogate([{"lr": 0.9, "epochs": E}])
    assert gp.predict(x)[0][0] > gp0.predict(x)[0][0] + 1.0


def test_the_width_is_calibrated_on_the_study_s_own_whole_curves():
    """Curves whose last epoch jumps (as real SGD curves do) make the model widen its predictions; curves
    that follow its shape leave them as they are. The factor is never below 1."""
    rng = np.random.default_rng(5)
    clean = synthetic(30, rng)
    assert max(CurveModel().fit(clean, E).scale.values()) < 1.25
    jumpy = [dict(c) for c in synthetic(30, rng)]
    for c in jumpy[::3]:  # a third of the networks end far from where their curve pointed
        c[E] = min(1.0, c[E] * float(rng.choice([0.4, 2.5])))
    model = CurveModel().fit(jumpy, E)
    assert min(model.scale.values()) >= 1.0
    assert model.scale[5] > 1.5, model.scale
    c = synthetic(1, rng)[0]
    wide, raw = model.predict(prefix(c, 5), E), model._predict(prefix(c, 5), E, scaled=False)
    assert wide.log_mean == pytest.approx(raw.log_mean) and wide.log_sd == pytest.approx(model.scale[5] * raw.log_sd)
    assert model.predict({}, E).log_sd == pytest.approx(model._predict({}, E, scaled=False).log_sd)  # nothing seen: the population, as fitted
