"""hwtune's sampler: determinism, batches, budget screening, the three modes, plain Optuna use."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hwtune.exceptions import ConfigError
from hwtune.search import HwSampler, make_sampler
from hwtune.study import Study

from ._tiny import NAMES, Tiny, space


def _run(sampler: object, tiny: Tiny, n_trained: int, *, objectives: object = "minimize: error",
         constraints: list[str] | None = None, seed: int = 0) -> Study:
    if constraints is None:
        constraints = [f"latency_ms <= {tiny.limit!r}"]
    st = Study("t", space(), objectives=objectives, constraints=constraints or None, storage=None, sampler=sampler, seed=seed, skip_threshold=0.0)  # type: ignore[arg-type]
    st.optimize(tiny.build_model, tiny.train_and_evaluate, measure=tiny.measure, n_trained=n_trained, n_trials=20 * n_trained)
    return st


def _hw(tiny: Tiny, seed: int, **kw: object) -> HwSampler:
    return HwSampler(space(), "minimize: error", [f"latency_ms <= {tiny.limit!r}"], seed=seed, **kw)  # type: ignore[arg-type]


def test_same_seed_same_proposals_other_seed_others():
    runs = []
    for seed in (3, 3, 4):
        tiny = Tiny()
        _run(_hw(tiny, seed), tiny, 12, seed=seed)
        runs.append(tiny.proposed)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_constrained_mode_never_trains_over_budget_and_beats_random():
    regrets, randoms = [], []
    for seed in range(3):
        tiny = Tiny()
        smp = _hw(tiny, seed)
        _run(smp, tiny, 15, seed=seed)
        assert all(tiny.feasible[r] for r in tiny.trained)  # the loop gates, the sampler screens
        assert tiny.n_measurements <= 3 * len(tiny.trained)
        regrets.append(tiny.regret())
        rnd = Tiny()
        _run("random", rnd, 15, seed=seed)
        randoms.append(rnd.regret())
    assert np.median(regrets) <= 0.01
    assert np.median(regrets) < np.median(randoms)


def test_no_proposal_predicted_far_over_budget():
    tiny = Tiny(quantile=0.2)
    smp = _hw(tiny, 1)
    _run(smp, tiny, 15, seed=1)
    screened = [h for h in smp.history if h["p_feasible"] is not None]
    assert len(screened) >= 10  # the cost model was fitted for most proposals
    for h in screened:
        mu, sd = h["predicted"]["latency_ms"]
        if h["gated"]:
            assert h["p_feasible"] >= smp.state.min_feasibility - 1e-9
            assert mu <= tiny.limit + 1.0 * sd + 1e-9  # predicted within budget or within one sd of it
    assert sum(h["gated"] for h in screened) >= len(screened) - 2


def test_batch_proposals_are_distinct_and_avoid_running_and_finished_trials():
    tiny = Tiny()
    smp = _hw(tiny, 0)
    st = _run(smp, tiny, 8)
    study = st.optuna_study
    running = study.ask()  # a trial another worker would be running: the sampler proposes it
    for n in NAMES:
        running.suggest_categorical(n, space()[n].choices)
    assert running.params
    batch = smp.propose(study, 6)
    keys = [tuple(p[n] for n in NAMES) for p in batch]
    assert len(batch) == 6 and len(set(keys)) == 6
    taken = {tuple(t.params[n] for n in NAMES) for t in study.get_trials(deepcopy=False) if len(t.params) == len(NAMES)}
    assert running.params and tuple(running.params[n] for n in NAMES) in taken
    assert not (set(keys) & taken)
    again = smp.propose(study, 6)
    assert [tuple(p[n] for n in NAMES) for p in again] == keys  # deterministic for the same study state


def test_cheapest_mode_finds_cheap_network_within_error_bound():
    found, rnd = [], []
    for seed in range(3):
        tiny = Tiny()
        bound = float(np.quantile(tiny.err, 0.15))
        cheapest = float(tiny.lat[tiny.err <= bound].min())
        for sampler, out in ((HwSampler(space(), "minimize: latency_ms", [f"error <= {bound!r}"], seed=seed), found), ("random", rnd)):
            t = Tiny()
            _run(sampler, t, 20, objectives="minimize: latency_ms", constraints=[f"error <= {bound!r}"], seed=seed)
            ok = [r for r in t.trained if t.err[r] <= bound]
            out.append(min(t.lat[ok]) - cheapest if ok else math.inf)
    assert np.median(found) <= 0.5
    assert np.median(found) < np.median(rnd)


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    p = points[np.all(points < ref, axis=1)]
    p = p[np.argsort(p[:, 0])]
    hv, best = 0.0, ref[1]
    for x, y in p:
        if y < best:
            hv += (ref[0] - x) * (best - y)
            best = y
    return hv


def test_pareto_mode_hypervolume_beats_random():
    ours, rnd = [], []
    obj = {"minimize": ["error", "latency_ms"]}
    for seed in range(3):
        for sampler, out in ((HwSampler(space(), obj, [], seed=seed), ours), ("random", rnd)):
            t = Tiny()
            ref = np.array([float(np.median(t.err)), float(t.lat.max())])
            _run(sampler, t, 20, objectives=obj, constraints=[], seed=seed)
            pts = np.stack([t.err[t.trained], t.lat[t.trained]], 1)
            out.append(_hv(pts, ref) / _hv(np.stack([t.err, t.lat], 1), ref))
    assert np.median(ours) > np.median(rnd)
    assert np.median(ours) > np.median(rnd) + 0.05


def test_reads_space_objectives_constraints_from_the_study_by_name():
    tiny = Tiny()
    st = Study("by-name", space(), constraints=[f"latency_ms <= {tiny.limit!r}"], storage=None, sampler="hwtune", seed=0)
    st.optimize(tiny.build_model, tiny.train_and_evaluate, measure=tiny.measure, n_trained=12, n_trials=200)
    assert all(tiny.feasible[r] for r in tiny.trained)
    assert tiny.n_measurements <= 3 * len(tiny.trained)
    assert isinstance(make_sampler("hwtune", 0), HwSampler)
    assert isinstance(make_sampler("hwtune", 0, space=space(), objectives="minimize: error", constraints=["latency_ms <= 2"]), HwSampler)


def test_plain_optuna_mixed_conditional_space_with_constraints():
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["lin", "rbf"])
        x = trial.suggest_float("x", -3.0, 3.0)
        if kind == "rbf":
            g = trial.suggest_float("gamma", 1e-3, 10.0, log=True)
            val = (x - 1.0) ** 2 + abs(math.log10(g))
        else:
            val = (x + 1.0) ** 2 + 0.5
        n = trial.suggest_int("n", 1, 8)
        trial.set_constraint("n_small", n - 5.0)  # feasible when n <= 5
        return val + 0.1 * n

    study = optuna.create_study(sampler=HwSampler(seed=0, n_startup=4))
    study.optimize(objective, n_trials=25)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 25
    for t in done:
        assert -3 <= t.params["x"] <= 3 and 1 <= t.params["n"] <= 8
        assert ("gamma" in t.params) == (t.params["kind"] == "rbf")
    feasible = [t.value for t in done if t.params["n"] <= 5]
    late = [t for t in done[10:]]
    assert sum(t.params["n"] <= 5 for t in late) >= 0.7 * len(late)  # it learned the constraint
    assert min(feasible) < 0.7  # the optimum of a branch (0.6 for "lin", 0.1 for "rbf")


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="min_feasibility"):
        HwSampler(min_feasibility=1.5)
    with pytest.raises(ConfigError, match="surrogate_inputs"):
        HwSampler(surrogate_inputs="nope")


def test_reseed_changes_every_later_proposal_not_only_the_first():
    """``reseed_rng`` (Optuna calls it for parallel jobs) gives a new stream for all later proposals."""
    runs = []
    for reseed in (False, False, True):
        tiny = Tiny()
        smp = _hw(tiny, 5)
        if reseed:
            smp.reseed_rng()
        _run(smp, tiny, 10, seed=5)
        runs.append(tiny.proposed)
    assert runs[0] == runs[1]  # same seed, no reseed: the same proposals
    later = [a != b for a, b in zip(runs[0][1:], runs[2][1:])]
    assert sum(later) >= len(later) // 2  # beyond the first trial, most proposals differ


def _prior_of(tiny: Tiny, sign: float = 1.0):
    def prior(params: dict) -> dict:
        return {"published": sign * math.log(tiny.err[tiny.row(params)])}

    return prior


def test_an_error_prior_shapes_the_start_up_and_the_search():
    """A prior that knows the errors: the first networks come from its best quarter and the best
    feasible network is found within a few trained networks; without it, later."""
    with_prior, without = [], []
    for seed in range(3):
        tiny = Tiny()
        _run(_hw(tiny, seed, error_prior=_prior_of(tiny)), tiny, 6, seed=seed)
        first = tiny.trained[0]
        ranks = np.argsort(np.argsort(tiny.err[tiny.feasible]))
        feasible_rows = np.flatnonzero(tiny.feasible)
        assert ranks[list(feasible_rows).index(first)] < 0.5 * len(feasible_rows)  # among the prior's better half of what fits
        with_prior.append(tiny.regret())
        plain = Tiny()
        _run(_hw(plain, seed), plain, 6, seed=seed)
        without.append(plain.regret())
    assert np.median(with_prior) <= np.median(without)


def test_a_misleading_prior_does_not_trap_the_search():
    """A prior ranking the networks backwards: the surrogate learns from the trained networks that it is
    wrong, and the search still ends near the best."""
    regrets = []
    for seed in range(3):
        tiny = Tiny()
        _run(_hw(tiny, seed, error_prior=_prior_of(tiny, -1.0)), tiny, 15, seed=seed)
        regrets.append(tiny.regret())
    assert np.median(regrets) <= 0.02


def _share_in_prior_best(tiny: Tiny, rows: list[int], sign: float, share: float = 0.15) -> float:
    """The share of ``rows`` that the prior (``sign``) ranks in its best ``share`` of the feasible networks."""
    feasible = np.flatnonzero(tiny.feasible)
    score = sign * np.log(tiny.err[feasible])
    cut = np.quantile(score, share)
    return float(np.mean([sign * math.log(tiny.err[r]) <= cut for r in rows]))


def test_with_a_prior_the_search_focuses_on_its_best_share_until_the_data_contradicts_it():
    """After the start-up (3 networks with a prior), proposals come from the prior's best 10 % of the
    candidates while fewer than ``prior_focus`` networks are trained; with ``prior_focus=0`` they do
    not; a backwards prior, contradicted by the first trained networks, narrows nothing."""
    focused, free, backwards = [], [], []
    for seed in range(3):
        for out, kw, sign in ((focused, {}, 1.0), (free, {"prior_focus": 0}, 1.0), (backwards, {}, -1.0)):
            tiny = Tiny()
            _run(_hw(tiny, seed, error_prior=_prior_of(tiny, sign), **kw), tiny, 12, seed=seed)
            out.append(_share_in_prior_best(tiny, tiny.trained[3:], sign))
    assert min(focused) >= 0.8
    assert np.median(free) < 0.8
    assert np.median(backwards) < 0.8


def test_bad_prior_focus_options_name_their_field():
    with pytest.raises(ConfigError, match="sampler.prior_focus"):
        HwSampler(space(), "minimize: error", prior_focus=-1)
    with pytest.raises(ConfigError, match="sampler.prior_focus_share"):
        HwSampler(space(), "minimize: error", prior_focus_share=0.0)
