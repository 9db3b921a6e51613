"""The proposal round keeps unmeasured architectures in play when the cost model's screen passes
almost none of them (the default study once tuned one network's training params for 35 trials)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from hwtune.search._proposer import MIN_FRESH_ARCHITECTURES, Proposer


def _gate(log_pf: np.ndarray, arch: list[tuple], measured: set[tuple]) -> np.ndarray:
    me = SimpleNamespace(state=SimpleNamespace(min_feasibility=1 / 3, pool_size=10_000))
    pool = SimpleNamespace(rows=None, must=set())
    idx, _ = Proposer._gate(me, pool, log_pf, arch, measured)  # type: ignore[arg-type]
    return idx


def test_the_screen_keeps_the_likeliest_unmeasured_architectures_when_it_passes_only_a_known_one() -> None:
    # candidates 0-2: the one architecture measured within budget (three training settings, P = 1);
    # 3-12: ten unmeasured architectures the young cost model gives P 0.05-0.30 (all below 1/3)
    arch = [("A",)] * 3 + [(f"N{i}",) for i in range(10)]
    p = np.array([1.0, 1.0, 1.0] + [0.05 + 0.025 * i for i in range(10)])
    idx = _gate(np.log(p), arch, measured={("A",)})
    fresh = [arch[i] for i in idx if arch[i] != ("A",)]
    assert set(idx) >= {0, 1, 2}  # what passes the screen stays
    assert len(set(fresh)) == MIN_FRESH_ARCHITECTURES
    assert set(fresh) == {(f"N{i}",) for i in range(10 - MIN_FRESH_ARCHITECTURES, 10)}  # the likeliest ones


def test_the_screen_adds_nothing_when_enough_unmeasured_architectures_pass() -> None:
    arch = [("A",)] + [(f"N{i}",) for i in range(8)]
    p = np.array([1.0] + [0.5] * 5 + [0.01] * 3)
    idx = _gate(np.log(p), arch, measured={("A",)})
    assert list(idx) == [0, 1, 2, 3, 4, 5]
    assert math.isclose(float(np.exp(np.log(p))[idx].min()), 0.5)


def _gate_with(log_pf: np.ndarray, arch: list[tuple], measured: set[tuple], degenerate: np.ndarray) -> np.ndarray:
    me = SimpleNamespace(state=SimpleNamespace(min_feasibility=1 / 3, pool_size=10_000))
    pool = SimpleNamespace(rows=None, must=set())
    idx, _ = Proposer._gate(me, pool, log_pf, arch, measured, degenerate)  # type: ignore[arg-type]
    return idx


def test_candidates_the_prior_marks_degenerate_are_never_kept_while_others_remain() -> None:
    # a young cost model that has seen only big networks over budget: it passes nothing, and the
    # likeliest cells are the cheapest -- pooling-only cells the prior ranks among the worst of the space
    arch = [(f"N{i}",) for i in range(10)]
    p = np.array([0.30, 0.28, 0.26, 0.24, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02])
    degenerate = np.array([True, True, True, True, False, False, False, False, False, False])
    plain = _gate(np.log(p), arch, set())
    assert set(plain) >= {0, 1, 2, 3}  # without the prior: the four cheapest
    idx = _gate_with(np.log(p), arch, set(), degenerate)
    assert not set(idx) & {0, 1, 2, 3} and len(idx) >= MIN_FRESH_ARCHITECTURES
    every = _gate_with(np.log(p), arch, set(), np.ones(10, dtype=bool))  # all degenerate: the prior is ignored
    assert set(every) == set(plain)


def _startup_choice(error_prior: object) -> list[int]:
    """The start-up's two proposals among 8 untried candidates whose predicted latency is 0.1..0.8 of
    the limit, which a prior ranks best when small (column of prior scores: lower is better)."""
    ratio = np.linspace(0.1, 0.8, 8)
    limit = SimpleNamespace(metric="latency_ms", below=True, bound=1.0)
    me = SimpleNamespace(
        targets=SimpleNamespace(objectives=[SimpleNamespace(hardware=False)], quality_constraints=[], hardware_constraints=[limit]),
        state=SimpleNamespace(n_startup=4, error_prior=error_prior, explore_every=0, n_mc=8),
        trained=[], pending=[], stopped=[], hw_names=("w",), rng=np.random.default_rng(0),
        inputs=SimpleNamespace(_prior_scale=lambda: ([1.0],), all_categorical=True),
    )
    me._large_within_budget = lambda hw: Proposer._large_within_budget(me, hw)  # type: ignore[arg-type]
    me._prior_score = lambda X: Proposer._prior_score(me, X)  # type: ignore[arg-type]
    X = np.column_stack([ratio, ratio])  # the last column: the prior's score
    configs = [{"w": i} for i in range(8)]
    hw_pred = {"latency_ms": (ratio, np.full(8, 0.01))}
    chosen, _, startup = Proposer._choose(me, 2, X, configs, np.zeros(8), hw_pred, {}, [])  # type: ignore[arg-type]
    assert startup
    return chosen


def test_with_a_prior_the_start_up_follows_the_prior_not_the_size() -> None:
    """Without a prior, "large within budget" stands in for quality at start-up; with one, the prior's
    ranking replaces it, even when its favourites are small (on NB201 devices whose latency counts
    operations, the large cells within budget were pooling-heavy ones: issue 19)."""
    assert set(_startup_choice(error_prior=None)) <= {4, 5, 6, 7}  # the upper half of the budget
    assert set(_startup_choice(error_prior=object())) == {0, 1}  # the prior's best quarter
