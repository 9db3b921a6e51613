"""``hwtune bench``: whole searches on a tabulated benchmark, through the real study loop, in seconds.

Each method runs as a :class:`hwtune.Study` (in-memory storage) driven by the simulated NB201 backend
(:mod:`hwtune.bench._nb201_problem`): training = looking the accuracy up (cost 1), measuring on the
device = looking the latency up (cost 0, counted). Budgets count trained networks
(``Study.optimize(n_trained=...)``).

Three modes:

- ``constrained``: maximize accuracy under ``latency_ms <= limit``. Metrics: regret (accuracy points)
  to the exact best feasible network after N trained, trainings wasted on over-budget networks,
  measurements made, proposal time.
- ``cheapest``: minimize latency under ``error <= bound``. Metric: latency regret (ms) of the
  cheapest feasible trained network to the exact cheapest feasible one.
- ``pareto``: minimize ``[error, latency_ms]``. Metric: hypervolume of the trained networks' front as a
  share of the exact front's, with the reference point (median error of the space, largest latency).

Baselines ("measure first" = the study loop's gating: over-budget networks are recorded infeasible
and never trained; "learned" = the constraint is known only after training, as plain Optuna would
have it; "unaware" = ignores the constraint):

``random-unaware``, ``random-measure-first``, ``tpe-learned``, ``tpe-measure-first``,
``gp-learned``, ``gp-measure-first`` (Optuna's GPSampler sees only completed trials, so an over-budget
trial is shown to it as a completed one with error 1.0 and its constraint violation), and
for the other modes ``random``, ``tpe``, ``gp``, ``nsga2``.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from hwtune.vocabulary import METRICS_ATTR, trial_status

__all__ = [
    "BenchResult",
    "MethodResult",
    "RunResult",
    "run_bench",
    "run_method",
    "regret_svg",
    "EXTRA_METHODS",
    "CONSTRAINED_METHODS",
    "CHEAPEST_METHODS",
    "PARETO_METHODS",
    "CHECKPOINTS",
]

CHECKPOINTS = (10, 25, 50, 100)
CONSTRAINED_METHODS = (
    "hwtune",
    "random-unaware",
    "random-measure-first",
    "tpe-learned",
    "tpe-measure-first",
    "gp-learned",
    "gp-measure-first",
)
CHEAPEST_METHODS = ("hwtune", "random", "tpe", "gp", "nsga2")
PARETO_METHODS = ("hwtune", "random", "nsga2", "tpe", "gp")
EXTRA_METHODS = ("hwtune-plain", "hwtune-noprior")
"""``hwtune-plain``: hwtune without the model family's cell features (one-hot encoding only) and
without the prior; ``hwtune-noprior``: hwtune without the prior.

``hwtune`` itself starts from what is published about the same cells on the *other* two tasks
(:func:`hwtune.tabular.nb201_error_prior` with the problem's own task left out: its column is the
answer), as a user searching the NB201 cell on a new data set would: transfer of the error surrogate
across tasks of one space. The baselines know nothing of it."""


# ---------------------------------------------------------------------------------------------------
# samplers of the baselines
# ---------------------------------------------------------------------------------------------------
class _TimedSampler:
    """Wraps a sampler and adds up the seconds spent proposing, per trial."""

    def __new__(cls, inner: Any) -> Any:
        from optuna.samplers import BaseSampler

        class Timed(BaseSampler):
            def __init__(self, inner: BaseSampler) -> None:
                self.inner = inner
                self.seconds: dict[int, float] = {}

            def _t(self, trial: Any, fn: Callable[..., Any], *a: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*a)
                finally:
                    self.seconds[trial.number] = self.seconds.get(trial.number, 0.0) + time.perf_counter() - t0

            def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
                return self._t(trial, self.inner.infer_relative_search_space, study, trial)

            def sample_relative(self, study: Any, trial: Any, space: Any) -> Any:
                return self._t(trial, self.inner.sample_relative, study, trial, space)

            def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
                return self._t(trial, self.inner.sample_independent, study, trial, name, dist)

            def before_trial(self, study: Any, trial: Any) -> None:
                self._t(trial, self.inner.before_trial, study, trial)

            def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
                self.inner.after_trial(study, trial, state, values)

            def reseed_rng(self) -> None:
                self.inner.reseed_rng()

            def use_cost_models(self, costs: Any) -> None:
                use = getattr(self.inner, "use_cost_models", None)
                if callable(use):  # hwtune's sampler screens with the study's cost model
                    use(costs)

        return Timed(inner)


HWTUNE_OPTIONS: dict[str, Any] = {}
"""Extra ``HwSampler`` options of the ``hwtune`` methods (for ablations; empty = the defaults)."""
HWTUNE_COST_MODEL: str = "auto"
"""The study's cost model in the ``hwtune`` methods (``auto``: the library's default)."""

GP_FILL: Any = 1.0
"""Objective value shown to GPSampler for an over-budget trial: a number (default 1.0: the error of an
untrained network; with it the bench reproduces the peer measurements of issue 5 exactly), or
``"worst"`` (the worst completed value)."""


def _infeasible_as_complete(inner: Any) -> Any:
    """Shows the wrapped sampler every trial pruned over budget (measured, never trained) as a
    completed trial with objective :data:`GP_FILL` (error 1.0) and its constraint violations: the way
    to tell Optuna's GPSampler, which reads completed trials only, that a measured network is
    infeasible."""
    from optuna.samplers import BaseSampler
    from optuna.trial import TrialState

    class View:
        def __init__(self, study: Any) -> None:
            self._study = study

        def __getattr__(self, name: str) -> Any:
            return getattr(self._study, name)

        def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[Any]:
            trials = self._study._get_trials(deepcopy=False, states=None, use_cache=use_cache)
            done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
            worst = None
            if GP_FILL != "worst":
                worst = [float(GP_FILL)] * len(self._study.directions)
            elif done:
                signs = [1.0 if d.name == "MINIMIZE" else -1.0 for d in self._study.directions]
                worst = [s * max(s * t.values[i] for t in done) for i, s in enumerate(signs)]
            out = []
            for t in trials:
                if t.state == TrialState.PRUNED and trial_status(t) == "over_budget" and t.constraints:
                    if worst is None:
                        continue
                    t = copy.copy(t)
                    t.state = TrialState.COMPLETE
                    t.values = list(worst)
                out.append(t)
            if states is not None:
                out = [t for t in out if t.state in states]
            return out

        def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
            return self._get_trials(deepcopy=deepcopy, states=states)

    class InfeasibleAsComplete(BaseSampler):
        def __init__(self, inner: BaseSampler) -> None:
            self.inner = inner

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self.inner.infer_relative_search_space(View(study), trial)

        def sample_relative(self, study: Any, trial: Any, space: Any) -> Any:
            return self.inner.sample_relative(View(study), trial, space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return self.inner.sample_independent(View(study), trial, name, dist)

        def before_trial(self, study: Any, trial: Any) -> None:
            self.inner.before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return InfeasibleAsComplete(inner)


def _latency_violation(limit: float) -> Callable[[Any], list[float]]:
    """``constraints_func`` of the "learned" baselines: the latency measured after training."""

    def f(t: Any) -> list[float]:
        lat = (t.user_attrs.get(METRICS_ATTR) or {}).get("latency_ms")
        return [0.0 if lat is None else (lat - limit) / abs(limit)]

    return f


def _make_sampler(method: str, seed: int, problem: Any, mode: str, objectives: Any, constraints: list[str]) -> Any:
    import optuna

    from hwtune.search import HwSampler, make_sampler
    from hwtune.tabular import nb201_error_prior

    method = method.split("@")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method in ("hwtune", "hwtune-plain", "hwtune-noprior"):  # screens with the study's cost model (see run_method)
            prior = nb201_error_prior(exclude=problem.task) if method == "hwtune" else None
            return HwSampler(problem.space, objectives, constraints, seed=seed, error_prior=prior, **HWTUNE_OPTIONS)
        base = method.split("-")[0]
        learned = method.endswith("-learned")
        cf = _latency_violation(problem.limit) if learned else None
        if base == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if base == "tpe":
            if cf is None:
                return make_sampler("tpe", seed)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True, constraints_func=cf)
        if base == "gp":
            gp = optuna.samplers.GPSampler(seed=seed, constraints_func=cf) if cf else optuna.samplers.GPSampler(seed=seed)
            return _infeasible_as_complete(gp) if method == "gp-measure-first" else gp
        if base == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    raise ValueError(f"unknown method {method!r}")


# ---------------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """One method, one seed."""

    method: str
    seed: int
    curve: list[float]
    """Regret (constrained: accuracy points; cheapest: ms) or hypervolume share (pareto) after each trained network."""
    wasted: int
    measurements: int
    trained: int
    trials: int
    proposal_ms: float
    seconds: float


def _hypervolume_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume (minimization) of ``points`` ``(n, 2)`` within the box below ``ref``."""
    p = points[np.all(points < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[np.argsort(p[:, 0])]
    hv, best_y = 0.0, ref[1]
    for x, y in p:
        if y < best_y:
            hv += (ref[0] - x) * (best_y - y)
            best_y = y
    return hv


def run_method(problem: Any, method: str, seed: int, budget: int, mode: str = "constrained", max_trials: int | None = None) -> RunResult:
    """Run one whole search through :class:`hwtune.Study` and score it."""
    import optuna

    from hwtune.bench._nb201_problem import SimulatedNB201, nb201_cell_features

    Study = _fast_study_class()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    measure_first = not (method.endswith("-learned") or method.endswith("-unaware"))
    if mode == "constrained":
        objectives: Any = "minimize: error"
        constraints = [f"latency_ms <= {problem.limit!r}"] if measure_first else []
    elif mode == "cheapest":
        objectives = "minimize: latency_ms"
        constraints = [f"error <= {problem.error_bound!r}"]
    elif mode == "pareto":
        objectives = {"minimize": ["error", "latency_ms"]}
        constraints = []
    else:
        raise ValueError(f"unknown mode {mode!r}")
    sim = SimulatedNB201(problem, measure_first=measure_first)
    sampler = _TimedSampler(_make_sampler(method, seed, problem, mode, objectives, constraints))
    hwtune = method.startswith("hwtune")
    base, _, cost_model = method.partition("@")  # "hwtune@linear": hwtune with another cost model
    # hwtune screens with the study's one cost model (on the cell features for "hwtune"); the loop's
    # own skip is off (skip_threshold 0) so that only the samplers differ between methods
    study = Study(
        f"bench-{method}-{seed}", problem.space, objectives=objectives, constraints=constraints or None,
        storage=None, sampler=sampler, seed=seed, cost_model=(cost_model or HWTUNE_COST_MODEL) if hwtune else None, skip_threshold=0.0,
        cost_features=nb201_cell_features if base in ("hwtune", "hwtune-noprior") else None,
        description={"benchmark": problem.describe(), "accuracy": "published:NATS-Bench", "latency": f"measured:{problem.device} (HELP)"},
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(sim.build_model, sim.train_and_evaluate, measure=sim.measure, n_trained=budget,
                       n_trials=max_trials or 30 * budget + 500)
    seconds = time.perf_counter() - t0
    rows = np.array(sim.trained_rows, dtype=int)
    P = problem
    if mode == "constrained":
        feas = P.feasible[rows]
        best = np.maximum.accumulate(np.where(feas, P.acc[rows], -np.inf)) if len(rows) else np.zeros(0)
        worst = P.best_feasible_accuracy - float(P.acc.min())
        curve = np.where(np.isfinite(best), P.best_feasible_accuracy - best, worst)
        wasted = int((~feas).sum())
    elif mode == "cheapest":
        ok = P.err[rows] <= P.error_bound
        best = np.minimum.accumulate(np.where(ok, P.lat[rows], np.inf)) if len(rows) else np.zeros(0)
        target = P.cheapest_feasible_latency
        worst = float(P.lat.max()) - target
        curve = np.where(np.isfinite(best), best - target, worst)
        wasted = int((~ok).sum())
    else:
        ref, true_hv = _pareto_reference(P)
        pts = np.stack([P.err[rows], P.lat[rows]], 1)
        curve = np.array([_hypervolume_2d(pts[: i + 1], ref) / true_hv for i in range(len(rows))])
        wasted = 0
    secs = list(sampler.seconds.values())
    return RunResult(
        method, seed, [float(v) for v in curve], wasted, sim.n_measurements, len(rows),
        len(study.optuna_study.trials), 1000.0 * float(np.median(secs)) if secs else 0.0, seconds,
    )


def _fast_study_class() -> Any:
    """``Study`` with a cheaper ``counts()`` (same statuses, :func:`hwtune.vocabulary.trial_status`,
    each finished trial read once).

    ``Study.counts()`` runs after every trial over every trial, so a 1,000-trial search would spend
    much of its time there; the bench keeps the loop as is otherwise.
    """
    from hwtune.study import Study

    class BenchStudy(Study):
        _done: dict[int, str]

        def counts(self) -> dict[str, int]:
            done = self.__dict__.setdefault("_done", {})
            c: dict[str, int] = {}
            for s in done.values():
                c[s] = c.get(s, 0) + 1
            trials = self.optuna_study.get_trials(deepcopy=False)
            start = self.__dict__.get("_prefix", 0)  # trials[:start] are finished and counted
            for i in range(start, len(trials)):
                if trials[i].number in done and i == self.__dict__.get("_prefix", 0):
                    self._prefix = i + 1
                else:
                    break
            for t in trials[self.__dict__.get("_prefix", 0):]:
                if t.number in done:
                    continue
                s = trial_status(t)
                if t.state.is_finished():
                    done[t.number] = s
                c[s] = c.get(s, 0) + 1
            return c

    return BenchStudy


def _pareto_reference(P: Any) -> tuple[np.ndarray, float]:
    cache = getattr(P, "_hv_cache", None)
    if cache is None:
        ref = np.array([float(np.median(P.err)), float(P.lat.max()) * 1.0001])
        pts = np.stack([P.err, P.lat], 1)
        cache = (ref, _hypervolume_2d(pts, ref))
        P._hv_cache = cache
    return cache


# ---------------------------------------------------------------------------------------------------
# many runs
# ---------------------------------------------------------------------------------------------------
@dataclass
class MethodResult:
    method: str
    runs: list[RunResult]
    higher_is_better: bool = False

    def at(self, n: int) -> float:
        """Median over seeds after ``n`` trained networks (NaN when some run trained fewer)."""
        vals = [r.curve[n - 1] for r in self.runs if len(r.curve) >= n]
        return float(np.median(vals)) if len(vals) == len(self.runs) and vals else float("nan")

    def worst_decile(self, n: int) -> float:
        """The worst-decile seed after ``n`` trained networks: the worst of the ``ceil(seeds / 10)``
        worst seeds (of 10 seeds, the worst one; NaN when some run trained fewer). A user runs one
        seed, not the median of ten: this is the bad day."""
        vals = [r.curve[n - 1] for r in self.runs if len(r.curve) >= n]
        if not vals or len(vals) != len(self.runs):
            return float("nan")
        ordered = sorted(vals, reverse=not self.higher_is_better)  # worst first
        k = max(1, math.ceil(len(ordered) / 10))
        return float(ordered[k - 1])

    def median_curve(self) -> list[float]:
        n = min(len(r.curve) for r in self.runs) if self.runs else 0
        return [float(np.median([r.curve[i] for r in self.runs])) for i in range(n)]

    def summary(self, checkpoints: Sequence[int]) -> dict[str, Any]:
        return {
            "method": self.method,
            **{f"at_{n}": self.at(n) for n in checkpoints},
            **{f"worst_decile_{n}": self.worst_decile(n) for n in checkpoints},
            "wasted": float(np.median([r.wasted for r in self.runs])),
            "measurements": float(np.median([r.measurements for r in self.runs])),
            "measurements_per_trained": float(np.median([r.measurements / max(1, r.trained) for r in self.runs])),
            "trials": float(np.median([r.trials for r in self.runs])),
            "proposal_ms": float(np.median([r.proposal_ms for r in self.runs])),
            "seconds_per_run": float(np.median([r.seconds for r in self.runs])),
        }


@dataclass
class BenchResult:
    problem: str
    mode: str
    budget: int
    seeds: list[int]
    methods: dict[str, MethodResult] = field(default_factory=dict)
    exact: dict[str, float] = field(default_factory=dict)

    @property
    def checkpoints(self) -> list[int]:
        return [n for n in CHECKPOINTS if n <= self.budget]

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "mode": self.mode,
            "budget": self.budget,
            "seeds": self.seeds,
            "exact": self.exact,
            "metric": {"constrained": "accuracy regret (points)", "cheapest": "latency regret (ms)", "pareto": "hypervolume share"}[self.mode],
            "summary": [m.summary(self.checkpoints) for m in self.methods.values()],
            "median_curves": {k: m.median_curve() for k, m in self.methods.items()},
            "runs": {k: [r.__dict__ for r in m.runs] for k, m in self.methods.items()},
        }


def _worker(args: tuple[Any, ...]) -> RunResult:
    problem_kwargs, method, seed, budget, mode = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001
        pass
    from hwtune.bench._nb201_problem import NB201Problem

    return run_method(NB201Problem(**problem_kwargs), method, seed, budget, mode)


def run_bench(
    problem_kwargs: dict[str, Any],
    methods: Sequence[str],
    *,
    seeds: Sequence[int],
    budget: int = 100,
    mode: str = "constrained",
    jobs: int = 1,
    progress: Callable[[RunResult], None] | None = None,
) -> BenchResult:
    """Run every method on every seed; ``jobs > 1`` runs them in that many processes."""
    from hwtune.bench._nb201_problem import NB201Problem

    problem = NB201Problem(**problem_kwargs)
    res = BenchResult(problem.describe(), mode, budget, list(seeds))
    if mode == "constrained":
        res.exact = {"best_feasible_accuracy": problem.best_feasible_accuracy, "limit_ms": problem.limit,
                     "feasible_share": float(problem.feasible.mean())}
    elif mode == "cheapest":
        res.exact = {"cheapest_feasible_latency_ms": problem.cheapest_feasible_latency, "error_bound": problem.error_bound}
    else:
        ref, hv = _pareto_reference(problem)
        res.exact = {"reference_error": float(ref[0]), "reference_latency_ms": float(ref[1]), "hypervolume": hv}
    tasks = [(problem_kwargs, m, s, budget, mode) for m in methods for s in seeds]
    runs: list[RunResult] = []
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for r in pool.imap(_worker, tasks):
                runs.append(r)
                if progress:
                    progress(r)
    else:
        for t in tasks:
            r = run_method(problem, t[1], t[2], budget, mode)
            runs.append(r)
            if progress:
                progress(r)
    for m in methods:
        res.methods[m] = MethodResult(m, [r for r in runs if r.method == m], higher_is_better=mode == "pareto")
    return res


def _nan_to_none(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


from hwtune.bench._plot import regret_svg  # noqa: E402  (the plots live in _plot.py; re-exported here)
