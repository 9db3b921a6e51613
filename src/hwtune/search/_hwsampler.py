"""hwtune's sampler: hardware-aware constrained Bayesian optimization.

The idea of HyperPower (Stamoulis et al., DATE 2018), with today's maths: a network's hardware cost
depends on its architecture only, so it is known (measured, cheaply) or predicted (by a cost model
fitted on those measurements) before any training. The sampler therefore

1. builds a pool of candidates (the whole space when it is small and discrete, else random draws plus
   mutations of the best networks so far), without the ones already tried, running, or sharing the
   architecture of a network measured over budget;
2. predicts each candidate's hardware costs with a cost model fitted on every measurement of the study
   (over-budget networks included: they are measured, never trained, and teach the cost model where
   the budget ends) and keeps only candidates likely within budget (probability of feasibility at least
   ``min_feasibility``);
3. ranks the rest with an acquisition on GP surrogates of the trained networks' metrics:

   - ``minimize: error`` (or any quality metric) under hardware constraints: expected improvement over
     the best feasible network, times the probability of feasibility;
   - ``minimize: <hardware metric>`` under ``error <= x``: expected improvement of the (predicted)
     hardware cost over the cheapest feasible network, times the probability that the error meets its
     bound (a GP on the trained networks' errors);
   - ``minimize: [error, <hardware metric>, ...]``: expected hypervolume improvement (two objectives,
     exact per Monte-Carlo sample; augmented Chebyshev scalarization beyond two);

4. proposes the best candidate; in a batch (``propose(study, q)``) or beside running trials, the chosen
   and running candidates enter the GPs as fantasies at their posterior mean ("kriging believer"), so a
   batch never repeats itself nor a running trial.

Everything is seeded by ``(seed, trial number)``: a study replayed with the same seed gets the same
proposals.

The sampler reads what a hwtune study stores on each trial (user attributes ``hwtune:status``,
``hwtune:hardware``, ``hwtune:metrics``, ``hwtune:params``) and, when it is not given them, the study's
space, objectives and constraints from the study attribute ``hwtune:config``. It also works on a plain
Optuna study: objective values then come from ``trial.values`` and constraints from ``trial.constraints``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.special import log_ndtr, ndtr

from hwtune.exceptions import ConfigError
from hwtune.search._candidates import (
    Encoder,
    enumerate_space,
    mutate_configs,
    random_configs,
    space_from_distributions,
)
from hwtune.search._cost_gp import MeasuredCostModel
from hwtune.search._gp import GaussianProcess, GPHyper
from hwtune.space import CategoricalParam, Constraint, FixedParam, Objective, SearchSpace, parse_constraints, parse_objectives
from hwtune.space._metrics import METRICS

__all__ = ["HwSampler", "PROPOSAL_ATTR"]

# the names a hwtune study stores on its trials (hwtune.study._records; ``search`` may not import ``study``)
_STATUS = "hwtune:status"
_HARDWARE = "hwtune:hardware"
_METRICS = "hwtune:metrics"
_PARAMS = "hwtune:params"
_CONFIG = "hwtune:config"
PROPOSAL_ATTR = "hwtune:proposal"
"""Trial system attribute: the sampler's full proposal (JSON), so that other workers see pending ones."""

_LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)

_ENUMERATIONS: dict[tuple[str, int], tuple[Any, ...]] = {}
"""Enumerated spaces (configurations, keys, row maps, encodings), shared by sampler instances of a process."""


# ---------------------------------------------------------------------------------------------------
# metric transforms: what the GPs model
# ---------------------------------------------------------------------------------------------------
def _model_transform(metric: str) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """``(f, increasing)``: the GP models ``f(value)``. Errors are modelled in log space (a few
    broken networks at 90 % error would otherwise flatten the differences between good ones);
    accuracy as ``log(1 - accuracy)`` (so decreasing); every other metric as it is."""
    if metric == "error":
        return (lambda v: np.log(np.maximum(np.asarray(v, dtype=float), 1e-6))), True
    if metric == "accuracy":
        return (lambda v: np.log(np.maximum(1.0 - np.asarray(v, dtype=float), 1e-6))), False
    return (lambda v: np.asarray(v, dtype=float)), True


def _is_hardware(metric: str) -> bool:
    info = METRICS.get(metric)
    return info is not None and info.kind == "hardware"


def _log_ei(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log expected improvement below ``best`` (minimization), stable far in the tail."""
    sd = np.maximum(sd, 1e-12)
    z = (best - mu) / sd
    out = np.empty_like(z)
    big = z > -6.0
    zb = z[big]
    val = zb * ndtr(zb) + np.exp(-0.5 * zb * zb - _LOG_2PI_HALF)
    out[big] = np.log(np.maximum(val, 1e-300))
    zs = z[~big]  # z Phi(z) + phi(z) ~ phi(z) / z^2 for z -> -inf
    out[~big] = -0.5 * zs * zs - _LOG_2PI_HALF - 2.0 * np.log(-zs)
    return out + np.log(sd)


def _log_prob(mu: np.ndarray, sd: np.ndarray, bound: float, below: bool) -> np.ndarray:
    """log P(value <= bound) (``below``) or log P(value >= bound) under N(mu, sd^2)."""
    z = (bound - mu) / np.maximum(sd, 1e-12)
    return log_ndtr(z if below else -z)


def _hvi_2d(samples: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume improvement (minimization) of each point of ``samples`` ``(..., 2)`` over ``front``
    ``(k, 2)`` (non-dominated) within the box below ``ref`` ``(2,)``."""
    if len(front):
        f = front[np.argsort(front[:, 0])]
        starts = np.concatenate([[-np.inf], f[:, 0]])
        ends = np.concatenate([f[:, 0], [np.inf]])
        levels = np.concatenate([[ref[1]], np.minimum(f[:, 1], ref[1])])
        levels = np.minimum.accumulate(levels)
    else:
        starts, ends, levels = np.array([-np.inf]), np.array([np.inf]), np.array([ref[1]])
    a = samples[..., 0:1]
    b = samples[..., 1:2]
    lo = np.maximum(starts, a)
    hi = np.minimum(ends, ref[0])
    width = np.maximum(hi - lo, 0.0)
    height = np.maximum(levels - b, 0.0)
    return (width * height).sum(-1)


def _pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``Y`` ``(n, m)`` (minimization)."""
    n = len(Y)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(Y[i] <= Y, axis=1) & np.any(Y[i] < Y, axis=1)
        keep &= ~dominated
    return keep


# ---------------------------------------------------------------------------------------------------
# what the sampler reads from a study
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Obs:
    number: int
    params: dict[str, Any]
    status: str  # trained | over_budget | running | pruned | failed | waiting
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    """An objective or constraint as the sampler models it."""

    metric: str
    hardware: bool
    lower_better: bool  # in model space (after the transform)
    bound: float | None = None  # constraints only, in model space
    below: bool = True  # constraint: satisfied when model value <= bound


class HwSampler(BaseSampler):
    """Hardware-aware constrained Bayesian optimization (hwtune's default sampler).

    Args:
        space: the study's search space (default: read from the study's ``hwtune:config``, else built
            from the distributions of finished trials).
        objectives: ``"minimize: error"``, ``{"minimize": ["error", "latency_ms"]}``, or parsed
            :class:`Objective` s (default: from ``hwtune:config``, else the study's directions applied
            to ``trial.values``).
        constraints: constraint texts or :class:`Constraint` s (default: from ``hwtune:config``, else
            every key of ``trial.constraints``, feasible when <= 0).
        seed: seeds every proposal (with the trial number); ``None`` = not reproducible.
        cost_model: the cost model of each hardware metric: ``None`` (default) for a GP on the study's
            own measurements (:class:`MeasuredCostModel`: the features and a linear kernel over them,
            i.e. additive per-layer costs plus a GP residual); a name of ``hwtune.costmodel``'s models
            (``"additive"``, ``"linear"``, ``"gp"``), fed the same measurements and ``features``; or a
            factory ``(space, metric) -> model`` with ``fit(configs, y)`` and ``predict(configs) ->
            (mean, std)``.
        n_startup: trained networks proposed at random (among those likely within budget) before the
            surrogate ranks candidates.
        min_feasibility: candidates whose predicted probability of meeting every hardware constraint is
            below this are never proposed (unless no candidate reaches it: then the most likely one);
            1/3 keeps the expected number of measurements per trained network at most 3.
        pool_size: candidates scored by the surrogate per proposal (a random subset of the likely
            feasible ones when there are more, always with the neighbours of the best networks and the
            best-ranked candidates of the previous proposal). An enumerated space is screened whole by
            the cost model every ``rescreen_every`` proposals (and after each refit of its
            hyperparameters); in between, rows found clearly over budget (probability < 0.001) are
            skipped.
        screen_limit: most rows of an enumerated space whose cost is predicted per proposal when the
            cost model's inputs are all distinct (params without ``features``): beyond it, a random
            subset (with the neighbours of the best and last round's best) is screened each time, which
            bounds the proposal time (15,625 one-hot NB201 cells: 138 -> 80 ms at 100 trained).
        enumerate_limit: spaces with at most this many configurations are enumerated.
        features: optional ``params -> {name: value}`` of features computed without training (FLOPs,
            parameter count, layers on the input-output path...) by the model family. The cost model then
            reads the features alone (``cost_inputs="features"``) and the objective's surrogate the
            features plus the encoded params, each with its own kernel (``surrogate_inputs="both"``).
        cost_inputs, surrogate_inputs: ``"features"`` or ``"both"`` (only with ``features``).
        surrogate_linear: add a linear kernel to the objective's GP (a trend over the inputs, e.g.
            "more convolutions, lower error", that a few networks already reveal); used only when every
            searched param is categorical.
        explore_every: every k-th proposal after the start-up is a random likely-feasible candidate
            instead of the acquisition's best (0: never).
        n_mc: Monte-Carlo samples of the hypervolume improvement (multi-objective).
    """

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any] | None = None,
        objectives: Any = None,
        constraints: Sequence[str | Constraint] | str | None = None,
        *,
        seed: int | None = None,
        cost_model: str | Callable[[SearchSpace, str], Any] | None = None,
        n_startup: int = 5,
        min_feasibility: float = 1.0 / 3.0,
        pool_size: int = 3000,
        screen_limit: int = 6000,
        enumerate_limit: int = 50_000,
        features: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None,
        cost_inputs: str = "features",
        surrogate_inputs: str = "both",
        surrogate_linear: bool = True,
        explore_every: int = 0,
        n_mc: int = 32,
    ) -> None:
        for nm, v in (("cost_inputs", cost_inputs), ("surrogate_inputs", surrogate_inputs)):
            if v not in ("features", "both"):
                raise ConfigError(f"sampler.{nm}", f"unknown value {v!r}.", "use 'features' or 'both'.")
        self.cost_inputs = cost_inputs
        self.surrogate_linear = surrogate_linear
        self.explore_every = explore_every
        self.surrogate_inputs = surrogate_inputs
        if space is not None and not isinstance(space, SearchSpace):
            space = SearchSpace.from_dict(space)
        self._space: SearchSpace | None = space
        self._objectives: list[Objective] | None = None if objectives is None else (
            list(objectives) if isinstance(objectives, (list, tuple)) and objectives and all(isinstance(o, Objective) for o in objectives)
            else parse_objectives(objectives)
        )
        if constraints is None:
            self._constraints: list[Constraint] | None = None
        elif isinstance(constraints, str):
            self._constraints = parse_constraints(constraints)
        else:
            self._constraints = [c if isinstance(c, Constraint) else parse_constraints(c)[0] for c in constraints]
        if not (0.0 < min_feasibility < 1.0):
            raise ConfigError("sampler.min_feasibility", f"must be in (0, 1), got {min_feasibility!r}.")
        if n_startup < 1:
            raise ConfigError("sampler.n_startup", f"must be at least 1, got {n_startup!r}.")
        self._seed = seed
        self._cost_factory = cost_model
        self.n_startup = n_startup
        self.min_feasibility = min_feasibility
        self.pool_size = pool_size
        self.screen_limit = screen_limit
        self.enumerate_limit = enumerate_limit
        self.features = features
        self.n_mc = n_mc
        self._fallback = RandomSampler(seed=seed)
        self._proposals: dict[int, dict[str, Any]] = {}
        self._enum_cache: tuple[int, list[dict[str, Any]] | None, list[str], list[str]] | None = None
        self._enc_cache: dict[str, np.ndarray] = {}
        self._hyper: dict[str, tuple[int, GPHyper]] = {}
        self._cost_models: dict[str, Any] = {}
        self.elite_size = 300
        self.max_cost_points = 300
        self.rescreen_every = 2
        self._screen: tuple[Any, int, np.ndarray] | None = None
        self._round = 0
        self._elite: list[dict[str, Any]] = []
        self._enum_rows: dict[tuple[Any, ...], int] = {}
        self._shared_enc: dict[str, np.ndarray] = {}
        self._hkey_rows: dict[tuple[Any, ...], list[int]] = {}
        self._feat_range: tuple[np.ndarray, np.ndarray] | None = None
        self._enum_features: np.ndarray | None = None
        self._space_from_cfg: tuple[str, SearchSpace] | None = None
        self._space_from_dists: tuple[Any, SearchSpace | None] | None = None
        self.last_info: list[dict[str, Any]] = []
        """What the last proposal round saw of each proposal: probability of meeting the hardware
        constraints, predicted costs ``{metric: (mean, std)}``, whether the gate held (``gated``) and
        whether it was a start-up (space-filling) proposal."""
        self.history: list[dict[str, Any]] = []
        """``last_info`` of every proposal made for a trial (with its ``trial`` number)."""
        self.proposal_seconds: list[float] = []
        """Wall-clock seconds of each proposal computed by this sampler (for benchmarks)."""

    # -- Optuna's sampler interface ------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        prop = self._proposals.get(trial.number)
        if prop is None:
            prop = self._proposal_for(study, trial)
        if param_name in prop:
            v = prop[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(v)):
                    return v
            except (ValueError, TypeError):
                pass
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._proposals.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    # -- public helpers ------------------------------------------------------------------------------
    def propose(self, study: Study, n: int = 1) -> list[dict[str, Any]]:
        """``n`` distinct proposals for parallel workers (none equal to a finished or running trial).

        Use with ``study.enqueue_trial(p)`` for each, or to look at what the sampler would try.
        Returns param dicts (fixed params included).
        """
        rng = self._rng(study, len(study.get_trials(deepcopy=False)), salt=1)
        return self._propose(study, n, rng, exclude_number=None)

    # -- internals -----------------------------------------------------------------------------------
    def _rng(self, study: Study, number: int, salt: int = 0) -> np.random.Generator:
        if self._seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self._seed) & 0xFFFFFFFF, int(number), salt])

    def _proposal_for(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        t0 = time.perf_counter()
        rng = self._rng(study, trial.number)
        props = self._propose(study, 1, rng, exclude_number=trial.number)
        prop = props[0] if props else {}
        self._proposals[trial.number] = prop
        if self.last_info:
            self.history.append({"trial": trial.number, **self.last_info[0]})
        try:
            study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_ATTR, json.dumps(prop, default=str))
        except Exception:  # noqa: BLE001 - sharing the proposal is best effort (e.g. read-only storages)
            pass
        self.proposal_seconds.append(time.perf_counter() - t0)
        return prop

    def _resolve(self, study: Study, trials: Sequence[FrozenTrial]) -> tuple[SearchSpace | None, list[_Target], list[_Target], bool]:
        """Space, objectives and constraints as model targets; ``plain`` when read from trial values."""
        cfg = None
        if self._space is None or self._objectives is None or self._constraints is None:
            try:
                cfg = study.user_attrs.get(_CONFIG)
            except Exception:  # noqa: BLE001
                cfg = None
        space = self._space
        if space is None and cfg and cfg.get("space"):
            text = json.dumps(cfg["space"], sort_keys=True, default=str)
            if self._space_from_cfg is None or self._space_from_cfg[0] != text:
                self._space_from_cfg = (text, _space_from_config(cfg["space"]))
            space = self._space_from_cfg[1]
        if space is None:
            dists: dict[str, BaseDistribution] = {}
            seen = []
            for t in trials:
                for k, d in t.distributions.items():
                    dists.setdefault(k, d)
                if t.state.is_finished() and t.params:
                    seen.append(t.params)
            sig = (repr(sorted(dists.items())), repr([sorted(p) for p in seen]))
            if self._space_from_dists is None or self._space_from_dists[0] != sig:
                self._space_from_dists = (sig, space_from_distributions(dists, seen) if dists else None)
            space = self._space_from_dists[1]
        objectives = self._objectives
        if objectives is None and cfg and cfg.get("objectives"):
            objectives = _objectives_from_config(cfg["objectives"])
        constraints = self._constraints
        if constraints is None and cfg is not None:
            constraints = parse_constraints(list(cfg.get("constraints") or []))
        plain = objectives is None
        targets: list[_Target] = []
        if objectives is None:
            targets = [
                _Target(f"__value{i}", False, d == StudyDirection.MINIMIZE) for i, d in enumerate(study.directions)
            ]
        else:
            for o in objectives:
                f, inc = _model_transform(o.metric)
                targets.append(_Target(o.metric, _is_hardware(o.metric), (o.direction == "minimize") == inc))
        cons: list[_Target] = []
        if constraints is None:
            keys = sorted({k for t in trials for k in t.constraints})
            cons = [_Target(f"__constraint:{k}", False, True, 0.0, True) for k in keys]
        else:
            for c in constraints:
                f, inc = _model_transform(c.metric)
                bound = float(f(np.array([c.bound]))[0])
                below = (c.op in ("<=", "<")) == inc
                cons.append(_Target(c.metric, _is_hardware(c.metric), True, bound, below))
        return space, targets, cons, plain

    def _read(self, study: Study, space: SearchSpace | None, plain: bool, exclude_number: int | None) -> list[_Obs]:
        obs = []
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude_number:
                continue
            ua = t.user_attrs
            params = ua.get(_PARAMS)
            if params is None and t.state in (TrialState.RUNNING, TrialState.WAITING):
                raw = t.system_attrs.get(PROPOSAL_ATTR)
                if raw:
                    try:
                        params = json.loads(raw)
                    except ValueError:
                        params = None
                if params is None and t.state == TrialState.WAITING:
                    params = t.system_attrs.get("fixed_params")
            if params is None:
                params = dict(t.params)
            if space is not None:
                params = space.complete(params) if params else params
            status = ua.get(_STATUS)
            if t.state == TrialState.RUNNING:
                status = "running"
            elif t.state == TrialState.WAITING:
                status = "waiting"
            elif status is None:
                status = {TrialState.COMPLETE: "trained", TrialState.PRUNED: "pruned"}.get(t.state, "failed")
            values: dict[str, float] = {}
            for k, m in (ua.get(_HARDWARE) or {}).items():
                v = m.get("value") if isinstance(m, Mapping) else None
                if isinstance(v, (int, float)) and math.isfinite(v):
                    values[k] = float(v)
            for k, v in (ua.get(_METRICS) or {}).items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    values[k] = float(v)
            if t.state == TrialState.COMPLETE and t.values is not None and plain:
                for i, v in enumerate(t.values):
                    values[f"__value{i}"] = float(v)
            for k, v in t.constraints.items():
                values[f"__constraint:{k}"] = float(v)
            if status == "trained" and "error" in values and "accuracy" not in values:
                values["accuracy"] = 1.0 - values["error"]
            if status == "trained" and "accuracy" in values and "error" not in values:
                values["error"] = 1.0 - values["accuracy"]
            obs.append(_Obs(t.number, params, status, values))
        return obs

    # -- the proposal ---------------------------------------------------------------------------------
    def _propose(self, study: Study, q: int, rng: np.random.Generator, exclude_number: int | None) -> list[dict[str, Any]]:
        self.last_info = []
        trials = study.get_trials(deepcopy=False)
        space, objectives, constraints, plain = self._resolve(study, trials)
        if space is None or len(space) == 0:
            return [{} for _ in range(q)]
        obs = self._read(study, space, plain, exclude_number)
        return _Proposer(self, space, objectives, constraints, obs, rng).propose(q)

    # -- caches used by the proposer --------------------------------------------------------------
    def _enumerated(self, space: SearchSpace) -> tuple[list[dict[str, Any]], list[str], list[str]] | None:
        sid = id(space)
        if self._enum_cache is None or self._enum_cache[0] != sid:
            sig = (json.dumps(space.to_dict(), sort_keys=True, default=str), self.enumerate_limit)
            shared = _ENUMERATIONS.get(sig)
            if shared is None:
                configs = enumerate_space(space, self.enumerate_limit)
                names, hw = list(space), space.hardware_names() or list(space)
                keys = [_key(c, names) for c in configs] if configs is not None else []
                hkeys = [_key(c, hw) for c in configs] if configs is not None else []
                hkey_rows: dict[Any, list[int]] = {}
                for i, h in enumerate(hkeys):
                    hkey_rows.setdefault(h, []).append(i)
                shared = (configs, keys, hkeys, {k: i for i, k in enumerate(keys)}, hkey_rows, {})
                if len(_ENUMERATIONS) > 8:
                    _ENUMERATIONS.clear()
                _ENUMERATIONS[sig] = shared
            configs, keys, hkeys, self._enum_rows, self._hkey_rows, self._shared_enc = shared
            self._enum_cache = (sid, configs, keys, hkeys)
            self._enc_cache = {}
        _, configs, keys, hkeys = self._enum_cache
        return None if configs is None else (configs, keys, hkeys)

    def _feature_range(self, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
        """Scale of the extra features over the whole space (enumerated) or 2,000 random draws."""
        if self._feat_range is None:
            assert self.features is not None
            en = self._enumerated(space)
            configs = en[0] if en is not None else random_configs(space, 2000, np.random.default_rng(0))
            F = _features(self.features, configs)
            if en is not None:
                self._enum_features = F
            lo, hi = F.min(0), F.max(0)
            self._feat_range = (lo, np.where(hi > lo, hi - lo, 1.0))
        return self._feat_range

    def _cost_model(self, space: SearchSpace, metric: str) -> Any:
        m = self._cost_models.get(metric)
        if m is None:
            if self._cost_factory is None:
                m = MeasuredCostModel(space)
            elif isinstance(self._cost_factory, str):  # a model of hwtune.costmodel, by name
                from hwtune.costmodel import make_cost_model

                m = _LibraryCostModel(make_cost_model(self._cost_factory, space, derived=self.features))
            else:
                m = self._cost_factory(space, metric)
            self._cost_models[metric] = m
        return m


class _LibraryCostModel:
    """A model of :mod:`hwtune.costmodel` behind the sampler's interface, with each candidate's
    features computed once and its own predictive distribution used for feasibility."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._rows: dict[str, np.ndarray] = {}
        self._dist: Any = None

    def _features(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        keys = [json.dumps(dict(c), sort_keys=True, default=str) for c in configs]
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        if missing:
            F = self.model.features([dict(configs[i]) for i in missing])
            for i, row in zip(missing, F):
                self._rows[keys[i]] = row
        return np.array([self._rows[k] for k in keys])

    def fit(self, configs: Sequence[Mapping[str, Any]], y: np.ndarray) -> "_LibraryCostModel":
        self.model.fit_features(self._features(configs), y)
        return self

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        self._dist = self.model.predictive_features(self._features(configs))
        return self._dist.mean_std()

    def log_prob(self, bound: float, below: bool) -> np.ndarray:
        """log P(cost <= bound) (or >=) of the candidates of the last :meth:`predict`."""
        p = np.clip(np.asarray(self._dist.cdf(bound), dtype=float), 1e-300, 1.0)
        return np.log(p) if below else np.log(np.clip(1.0 - p, 1e-300, 1.0))


def _key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """Hashable identity of a configuration restricted to ``names`` (absent params are ``None``)."""
    return tuple(map(params.get, names))


def _features(fn: Callable[[Mapping[str, Any]], Mapping[str, float]], configs: Sequence[Mapping[str, Any]], width: int | None = None) -> np.ndarray:
    rows = [[float(v) for _, v in sorted(fn(c).items())] for c in configs]
    return np.array(rows, dtype=float) if rows else np.zeros((0, width or 0))


def _space_from_config(d: Mapping[str, Any]) -> SearchSpace:
    spec: dict[str, Any] = {}
    for name, e in d.items():
        if isinstance(e, Mapping) and e.get("type") == "fixed":
            spec[name] = e.get("value")
        else:
            spec[name] = dict(e)
    return SearchSpace.from_dict(spec)


def _objectives_from_config(items: Sequence[str]) -> list[Objective]:
    out = []
    for s in items:
        direction, _, metric = str(s).partition(" ")
        out.extend(parse_objectives({direction: metric.strip()}))
    return out


# ---------------------------------------------------------------------------------------------------
class _Proposer:
    """One proposal round: fit the models on the study's data, score a pool, pick ``q``."""

    def __init__(
        self,
        sampler: HwSampler,
        space: SearchSpace,
        objectives: list[_Target],
        constraints: list[_Target],
        obs: list[_Obs],
        rng: np.random.Generator,
    ) -> None:
        self.s = sampler
        self.space = space
        self.objectives = objectives
        self.constraints = constraints
        self.obs = obs
        self.rng = rng
        self.hw_names = space.hardware_names() or list(space)
        self.hw_constraints = [c for c in constraints if c.hardware]
        self.q_constraints = [c for c in constraints if not c.hardware]
        self.enc = {"all": Encoder(space), "hw": Encoder(space, self.hw_names)}
        self.trained = [o for o in obs if o.status == "trained"]
        self.pending = [o for o in obs if o.status in ("running", "waiting") and o.params]
        self.enum = sampler._enumerated(space)
        self.key_row = sampler._enum_rows if self.enum is not None else None
        self.all_names = list(space)
        # a linear kernel's prior variance grows towards the corners of numeric params (EI would chase
        # them); over one-hot columns every configuration has the same norm, so the trend is safe
        self.all_categorical = all(isinstance(p, (CategoricalParam, FixedParam)) for _, p in space.items())
        self._must_rows: set[int] = set()
        self._full_screen = True

    def key(self, c: Mapping[str, Any]) -> tuple[Any, ...]:
        return _key(c, self.all_names)

    def hkey(self, c: Mapping[str, Any]) -> tuple[Any, ...]:
        return _key(c, self.hw_names)

    # -- data --------------------------------------------------------------------------------------
    def _hw_feasible(self, values: Mapping[str, float]) -> bool | None:
        for c in self.hw_constraints:
            if c.metric not in values:
                return None
            if not _satisfied(c, values[c.metric]):
                return False
        return True

    def _feasible_trained(self, o: _Obs) -> bool:
        for c in self.constraints:
            v = self._model_value(c.metric, o)
            if v is None or not _satisfied(c, v):
                return False
        return True

    def _model_value(self, metric: str, o: _Obs) -> float | None:
        if metric not in o.values:
            return None
        if _is_hardware(metric) or metric.startswith("__"):
            return o.values[metric]
        f, _ = _model_transform(metric)
        return float(f(np.array([o.values[metric]]))[0])

    # -- inputs ------------------------------------------------------------------------------------
    def _uses_params(self, kind: str) -> bool:
        """Whether the inputs of a model include the encoded params (else the features alone)."""
        if self.s.features is None:
            return True
        mode = self.s.surrogate_inputs if kind == "all" else self.s.cost_inputs
        return mode == "both"

    def _blocks(self, kind: str) -> list[int] | None:
        if self.s.features is None or not self._uses_params(kind):
            return None
        lo, _ = self.s._feature_range(self.space)
        return [len(lo), self.enc[kind].dim]

    def _inputs(self, configs: Sequence[Mapping[str, Any]], kind: str) -> np.ndarray:
        """Model inputs ``(n, k + d)``: scaled extra features (if any), then the encoded params."""
        if self.enum is not None and configs:
            rows = [self.key_row.get(self.key(c)) for c in configs]  # type: ignore[union-attr]
            if all(r is not None for r in rows):
                return self._enum_inputs(kind)[np.array(rows, dtype=int)]
        return self._encode(configs, kind)

    def _encode(self, configs: Sequence[Mapping[str, Any]], kind: str, F: np.ndarray | None = None, X: np.ndarray | None = None) -> np.ndarray:
        if X is None:
            X = self.enc[kind].encode(configs)
        if self.s.features is not None:
            lo, rg = self.s._feature_range(self.space)
            if F is None:
                F = _features(self.s.features, configs, len(lo))
            Fs = np.clip((F - lo) / rg, -0.5, 1.5)
            X = np.hstack([Fs, X]) if self._uses_params(kind) else Fs
        return X

    def _enum_unique(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Distinct rows of the enumerated inputs and, for each configuration, its distinct row."""
        key = "unique:" + kind
        X = self._enum_inputs(kind)
        if key not in self.s._enc_cache or self.s._enc_cache[key + ":n"].shape[0] != X.shape[1]:
            Xu, inv = np.unique(X, axis=0, return_inverse=True)
            self.s._enc_cache[key] = inv.reshape(-1)
            self.s._enc_cache[key + ":n"] = Xu.T
        return self.s._enc_cache[key + ":n"].T, self.s._enc_cache[key]

    def _width(self, kind: str) -> int:
        k = len(self.s._feature_range(self.space)[0]) if self.s.features is not None else 0
        return k + (self.enc[kind].dim if self._uses_params(kind) else 0)

    def _enum_inputs(self, kind: str) -> np.ndarray:
        shared = self.s._shared_enc  # the encoded params alone, shared by every sampler of the process
        if "params:" + kind not in shared:
            assert self.enum is not None
            shared["params:" + kind] = self.enc[kind].encode(self.enum[0])
        cache = self.s._enc_cache
        if kind not in cache or cache[kind].shape[1] != self._width(kind):
            assert self.enum is not None
            if self.s.features is not None and "features" not in cache:
                self.s._feature_range(self.space)
                cache["features"] = self.s._enum_features
            cache[kind] = self._encode(self.enum[0], kind, cache.get("features"), X=self.s._shared_enc["params:" + kind])
        return cache[kind]

    # -- models ------------------------------------------------------------------------------------
    def _gp(self, name: str, X: np.ndarray, y: np.ndarray, blocks: list[int] | None) -> GaussianProcess:
        n = len(y)
        last = self.s._hyper.get(name)
        gp = GaussianProcess(blocks=blocks, linear=self.s.surrogate_linear and self.all_categorical)
        same = last is not None and last[1].log_ls.shape[0] == X.shape[1]
        if not same or n < 8 or n >= last[0] + max(2, 0.1 * last[0]):  # type: ignore[index]
            gp.fit(X, y, warm=last[1] if same else None)  # type: ignore[index]
            self.s._hyper[name] = (n, gp.hyper)  # type: ignore[assignment]
        else:
            gp.fit_fixed(X, y, last[1])  # type: ignore[index]
        return gp

    def _fit_quality(self) -> dict[str, GaussianProcess]:
        """GPs of the quality metrics (objectives and constraints) on trained trials."""
        metrics = [t.metric for t in self.objectives if not t.hardware] + [c.metric for c in self.q_constraints]
        out: dict[str, GaussianProcess] = {}
        for m in dict.fromkeys(metrics):
            rows = [o for o in self.trained if m in o.values]
            if len(rows) < 2:
                continue
            X = self._inputs([o.params for o in rows], "all")
            y = np.array([self._model_value(m, o) for o in rows], dtype=float)
            out[m] = self._gp("q:" + m, X, y, self._blocks("all"))
        return out

    def _fit_costs(self) -> dict[str, Any]:
        """Cost models of the hardware metrics (constraints and objectives) on every measurement."""
        metrics = [c.metric for c in self.hw_constraints] + [t.metric for t in self.objectives if t.hardware]
        out: dict[str, Any] = {}
        for m in dict.fromkeys(metrics):
            seen: dict[str, tuple[dict[str, Any], float]] = {}
            for o in self.obs:
                if m in o.values:
                    seen.setdefault(self.hkey(o.params), (o.params, o.values[m]))
            if len(seen) < 3:
                continue
            model = self.s._cost_model(self.space, m)
            configs = [p for p, _ in seen.values()]
            y = np.array([v for _, v in seen.values()])
            cap = self.s.max_cost_points
            if len(y) > cap:  # the measurements nearest the bound, and a random share of the others
                bound = next((c.bound for c in self.hw_constraints if c.metric == m and c.bound), None)
                closeness = np.abs(y / bound - 1.0) if bound else self.rng.random(len(y))
                order = np.argsort(closeness, kind="stable")
                near, far = order[: cap // 2], order[cap // 2 :]
                keep = np.sort(np.concatenate([near, np.random.default_rng(len(y)).choice(far, cap - len(near), replace=False)]))
                configs, y = [configs[i] for i in keep], y[keep]
            if isinstance(model, MeasuredCostModel):
                model.fit_encoded(self._inputs(configs, "hw"), y, blocks=self._blocks("hw"))
            else:
                model.fit(configs, y)
            out[m] = model
        return out

    def _predict_cost(self, model: Any, configs: list[dict[str, Any]], X_hw: np.ndarray, metric: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(model, MeasuredCostModel):
            return model.predict_encoded(X_hw)
        mu, sd = model.predict(configs)
        return np.asarray(mu, dtype=float), np.asarray(sd, dtype=float)

    # -- the pool ----------------------------------------------------------------------------------
    def _pool(self, exclude: set[Any], bad_hw: set[Any], parents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray | None]:
        """Candidates to score: (a random subset of) the eligible space, the neighbours of the best
        networks, and the best-scored candidates of the previous round. Returns the configurations
        and, for an enumerated space, their rows in it."""
        size = self.s.pool_size
        extra = mutate_configs(self.space, parents, 30 * len(parents), self.rng) if parents else []
        extra += list(self.s._elite)
        if self.enum is not None:
            configs_all = self.enum[0]
            key_row = self.key_row
            assert key_row is not None
            mask = np.ones(len(configs_all), dtype=bool)
            for k in exclude:
                r = key_row.get(k)
                if r is not None:
                    mask[r] = False
            for h in bad_hw:
                mask[self.s._hkey_rows.get(h, [])] = False
            extra_rows = [key_row.get(self.key(c)) for c in extra]
            self._must_rows = {r for r in extra_rows if r is not None and mask[r]}
            rows = np.flatnonzero(mask)  # eligible rows: screened by the cost model, then subsampled
            if len(rows) > self.s.screen_limit and (self.s.features is None or self.s.cost_inputs == "both"):
                # every row is a distinct input of the cost model: screen a random subset each round
                must = np.zeros(len(configs_all), dtype=bool)
                must[sorted(self._must_rows)] = True
                pick = self.rng.random(len(rows)) < self.s.screen_limit / len(rows)
                rows = rows[pick | must[rows]]
                self._full_screen, self.s._screen = False, None
                return [configs_all[r] for r in rows], rows
            cache = self.s._screen
            if cache is not None and self._cost_marker() == cache[0] and self.s._round - cache[1] < self.s.rescreen_every:
                # between full screens, only the rows that were not clearly over budget at the last one
                keep = np.zeros(len(configs_all), dtype=bool)
                keep[cache[2]] = True
                keep[sorted(self._must_rows)] = True
                rows = rows[keep[rows]]
                self._full_screen = False
            else:
                self._full_screen = True
            return [configs_all[r] for r in rows], rows
        n_rand = size // 2
        base = random_configs(self.space, n_rand, self.rng) + mutate_configs(self.space, parents, size - n_rand, self.rng)
        out, seen = [], set(exclude)
        for c in base + extra:
            k = self.key(c)
            if k in seen or self.hkey(c) in bad_hw:
                continue
            seen.add(k)
            out.append(c)
        return out, None

    def _cost_marker(self) -> tuple[Any, ...]:
        """Changes when a cost model's hyperparameters are refitted (then every row is screened again)."""
        return tuple((m, getattr(model, "_n_fit", None)) for m, model in sorted(self.s._cost_models.items()))

    def _parents(self, feasible: list[_Obs]) -> list[dict[str, Any]]:
        """The best feasible trained networks (first objective), up to five."""
        if not feasible:
            return []
        t0 = self.objectives[0]
        ys = [self._model_value(t0.metric, o) for o in feasible]
        keyed = [(y if t0.lower_better else -y, i) for i, y in enumerate(ys) if y is not None]
        return [feasible[i].params for _, i in sorted(keyed)[:5]]

    # -- the proposal --------------------------------------------------------------------------------
    def propose(self, q: int) -> list[dict[str, Any]]:
        self.s.last_info = []
        obs_keys = {self.key(o.params) for o in self.obs if o.params}
        measured_hw: dict[str, dict[str, float]] = {}
        for o in self.obs:
            if o.params and any(c.metric in o.values for c in self.hw_constraints):
                measured_hw.setdefault(self.hkey(o.params), o.values)
        bad_hw = {h for h, v in measured_hw.items() if self._hw_feasible(v) is False}
        feasible = [o for o in self.trained if self._feasible_trained(o)]
        costs = self._fit_costs()
        quality = self._fit_quality()
        configs, rows = self._pool(obs_keys, bad_hw, self._parents(feasible))
        if not configs:
            return [dict(c) for c in random_configs(self.space, q, self.rng)]

        def inputs(kind: str, sub: np.ndarray | None = None) -> np.ndarray:
            if rows is not None:
                return self._enum_inputs(kind)[rows if sub is None else rows[sub]]
            return self._encode(configs if sub is None else [configs[i] for i in sub], kind)

        # probability of meeting the hardware constraints; exact for measured architectures
        if costs and rows is not None and all(isinstance(m, MeasuredCostModel) for m in costs.values()):
            # predict each distinct input row once (features repeat a lot)
            Xu, inv_all = self._enum_unique("hw")
            u, inv = np.unique(inv_all[rows], return_inverse=True)
            X_hw = Xu[u]
            hw_pred = {m: tuple(a[inv] for a in self._predict_cost(model, configs, X_hw, m)) for m, model in costs.items()}
        else:
            X_hw = inputs("hw") if costs else np.zeros((len(configs), 0))
            hw_pred = {m: self._predict_cost(model, configs, X_hw, m) for m, model in costs.items()}
        log_pf = np.zeros(len(configs))
        for c in self.hw_constraints:
            if c.metric in hw_pred:
                model = costs[c.metric]
                if isinstance(model, _LibraryCostModel):  # its own predictive distribution (Student-t, log...)
                    log_pf += model.log_prob(c.bound, c.below)  # type: ignore[arg-type]
                else:
                    mu, sd = hw_pred[c.metric]
                    log_pf += _log_prob(mu, sd, c.bound, c.below)  # type: ignore[arg-type]
        if measured_hw:  # measured within budget (over-budget ones are not in the pool)
            if rows is not None:
                known_rows = np.zeros(len(self.enum[0]), dtype=bool)  # type: ignore[index]
                for h in measured_hw:
                    known_rows[self.s._hkey_rows.get(h, [])] = True
                known = known_rows[rows]
            else:
                known = np.array([self.hkey(c) in measured_hw for c in configs])
            log_pf[known] = 0.0

        if rows is not None and costs and self._full_screen:
            self.s._screen = (self._cost_marker(), self.s._round, rows[log_pf >= math.log(1e-3)])
        self.s._round += 1

        # the gate: likely within budget (else the likeliest candidates)
        ok = log_pf >= math.log(self.s.min_feasibility)
        gated = bool(ok.any())
        if not gated:
            ok = log_pf >= np.max(log_pf) - 0.05
        idx = np.flatnonzero(ok)
        if len(idx) > self.s.pool_size:  # keep the neighbours of the best and last round's best
            if rows is not None and self._must_rows:
                must = np.isin(rows[idx], np.fromiter(self._must_rows, dtype=int))
            else:
                must = np.zeros(len(idx), dtype=bool)
            rest = idx[~must]
            n_rest = max(0, self.s.pool_size - int(must.sum()))
            pick = self.rng.choice(rest, size=min(n_rest, len(rest)), replace=False) if n_rest and len(rest) else rest[:0]
            idx = np.sort(np.concatenate([idx[must], pick]))
        log_pf = log_pf[idx]
        hw_pred = {m: (mu[idx], sd[idx]) for m, (mu, sd) in hw_pred.items()}

        needs_quality = any(not t.hardware for t in self.objectives) or self.q_constraints
        flat = needs_quality and all(  # the trained networks do not differ yet: nothing to learn from
            len({round(o.values.get(m, np.nan), 12) for o in self.trained}) < 2 for m in quality
        )
        startup = len(self.trained) + len(self.pending) < self.s.n_startup or (needs_quality and not quality) or flat
        X = inputs("all", idx)
        configs = [configs[i] for i in idx]
        startup_ok = self._large_within_budget(hw_pred) if startup else None
        if startup:  # spread out: far from every trained and pending network (greedy maximin)
            seen = [o.params for o in self.trained] + [o.params for o in self.pending]
            d_min = np.full(len(configs), np.inf)
            if seen:
                from hwtune.search._gp import _sqdist

                d_min = _sqdist(X, self._inputs(seen, "all")).min(1)
        pend_X = self._inputs([o.params for o in self.pending], "all") if self.pending else None
        chosen: list[int] = []
        acq = None
        for _ in range(q):
            avail = np.ones(len(configs), dtype=bool)
            avail[chosen] = False
            if not avail.any():
                break
            explore = (
                not startup and self.s.explore_every > 0
                and (len(self.trained) + len(self.pending) + len(chosen) - self.s.n_startup) % self.s.explore_every == self.s.explore_every - 1
            )
            if explore:  # every k-th proposal: a random likely-feasible candidate (robustness to a misled surrogate)
                cand = np.flatnonzero(avail)
                i = int(cand[int(self.rng.integers(len(cand)))])
            elif startup:
                cand = np.flatnonzero(avail & startup_ok) if startup_ok is not None and (avail & startup_ok).any() else np.flatnonzero(avail)
                if np.isfinite(d_min[cand]).any():
                    cand = cand[d_min[cand] >= d_min[cand].max() - 1e-9]
                i = int(cand[int(self.rng.integers(len(cand)))])
                from hwtune.search._gp import _sqdist

                d_min = np.minimum(d_min, _sqdist(X, X[i : i + 1])[:, 0])
            else:
                assert X is not None
                fant = [pend_X] if pend_X is not None else []
                if chosen:
                    fant.append(X[chosen])
                fant_X = np.vstack(fant) if fant else np.zeros((0, X.shape[1]))
                acq = self._acquisition(X, log_pf, hw_pred, quality, feasible, fant_X)
                acq[~avail] = -np.inf
                top = np.flatnonzero(acq >= acq.max() - 1e-9 * max(1.0, abs(acq.max())))
                i = int(top[int(self.rng.integers(len(top)))])
            chosen.append(i)
        if acq is not None:  # remember the best-ranked candidates for the next round's pool
            order = np.argsort(-acq)[: self.s.elite_size]
            self.s._elite = [configs[j] for j in order if j not in chosen]
        self.s.last_info = [
            {
                "params": dict(configs[i]),
                "p_feasible": float(np.exp(log_pf[i])) if hw_pred else None,
                "predicted": {m: (float(mu[i]), float(sd[i])) for m, (mu, sd) in hw_pred.items()},
                "gated": bool(gated),
                "startup": bool(startup),
            }
            for i in chosen
        ]
        return [dict(configs[i]) for i in chosen]

    def _large_within_budget(self, hw_pred: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
        """Start-up candidates: those predicted to use the upper half of the budget (relative to the
        other likely-feasible candidates). The most accurate network within a hardware budget nearly
        always uses most of it (HyperPower's observation; on NB201, in 95 % of 324 problems, 3 tasks x
        27 devices x 4 limits, the best feasible network's latency is >= 90 % of the limit), while the
        cheapest candidates are often degenerate (disconnected cells)."""
        ratios = []
        for c in self.hw_constraints:
            if c.metric in hw_pred and c.below and c.bound is not None and c.bound > 0:
                ratios.append(hw_pred[c.metric][0] / c.bound)
        if not ratios:
            return None
        r = np.max(np.stack(ratios), axis=0)
        return r >= np.median(r)

    # -- acquisition ---------------------------------------------------------------------------------
    def _acquisition(
        self,
        X: np.ndarray,
        log_pf: np.ndarray,
        hw_pred: dict[str, tuple[np.ndarray, np.ndarray]],
        quality: dict[str, GaussianProcess],
        feasible: list[_Obs],
        fant_X: np.ndarray,
    ) -> np.ndarray:
        # fantasies: pending points at their posterior mean (kriging believer)
        gps: dict[str, GaussianProcess] = {}
        for m, gp in quality.items():
            if len(fant_X):
                mu_f, _ = gp.predict(fant_X)
                gps[m] = gp.conditioned(fant_X, mu_f)
            else:
                gps[m] = gp
        preds: dict[str, tuple[np.ndarray, np.ndarray]] = dict(hw_pred)
        latent_sd: dict[str, np.ndarray] = {}
        for m, gp in gps.items():
            mu, sd = gp.predict(X)
            latent_sd[m] = sd
            preds[m] = (mu, np.sqrt(sd * sd + gp.noise_var))
        score = log_pf.copy()
        for c in self.q_constraints:
            if c.metric in preds:
                mu, sd = preds[c.metric]
                score += _log_prob(mu, sd, c.bound, c.below)  # type: ignore[arg-type]
        objs = self.objectives
        if any(t.metric not in preds for t in objs):
            return score  # a model not fitted yet: feasibility alone
        if len(objs) == 1:
            t = objs[0]
            mu, sd = preds[t.metric]
            sd = latent_sd.get(t.metric, sd)
            sign = 1.0 if t.lower_better else -1.0
            ys = [self._model_value(t.metric, o) for o in feasible]
            ys = [sign * y for y in ys if y is not None]
            if not ys:
                return score  # no feasible network yet: the likeliest feasible one
            return score + _log_ei(sign * mu, sd, min(ys))
        return score + self._log_ehvi(objs, preds, feasible)

    def _log_ehvi(self, objs: list[_Target], preds: dict[str, tuple[np.ndarray, np.ndarray]], feasible: list[_Obs]) -> np.ndarray:
        signs = np.array([1.0 if t.lower_better else -1.0 for t in objs])
        Y = np.array([[self._model_value(t.metric, o) for t in objs] for o in feasible], dtype=float) if feasible else np.zeros((0, len(objs)))
        Y = Y[np.all(np.isfinite(Y), axis=1)] * signs if len(Y) else Y
        mu = np.stack([preds[t.metric][0] for t in objs], 1) * signs
        sd = np.stack([preds[t.metric][1] for t in objs], 1)
        if len(Y) == 0:
            return np.zeros(len(mu))
        front = Y[_pareto_mask(Y)]
        # reference point: for a hardware objective, beyond the worst value seen (the slowest accurate
        # network still extends the front); for a quality objective, the median of the trained
        # networks (a network worse than the typical one is on no useful front, and the cheapest
        # degenerate networks would otherwise draw the search to them)
        ideal, worst = Y.min(0), Y.max(0)
        span = np.where(worst > ideal, worst - ideal, np.maximum(np.abs(worst), 1.0))
        ref = worst + 0.1 * span
        for j, t in enumerate(objs):
            if not t.hardware and len(Y) >= 3:
                ref[j] = float(np.median(Y[:, j]))
        front = front[np.all(front < ref, axis=1)] if len(front) else front
        Z = self.rng.standard_normal((self.s.n_mc, len(objs)))
        if len(objs) == 2:
            out = np.zeros(len(mu))
            for s0 in range(0, len(mu), 1024):
                S = mu[s0 : s0 + 1024, None, :] + sd[s0 : s0 + 1024, None, :] * Z[None, :, :]
                out[s0 : s0 + 1024] = _hvi_2d(S, front, ref).mean(1)
        else:  # augmented Chebyshev scalarization with a random weight (ParEGO)
            w = self.rng.dirichlet(np.ones(len(objs)))
            scale = np.where(ref > ideal, ref - ideal, 1.0)

            def cheb(P: np.ndarray) -> np.ndarray:
                Pn = (P - ideal) / scale
                return np.max(w * Pn, axis=-1) + 0.05 * np.sum(w * Pn, axis=-1)

            best = cheb(front).min()
            S = mu[:, None, :] + sd[:, None, :] * Z[None, :, :]
            out = np.maximum(best - cheb(S), 0.0).mean(1)
        return np.log(np.maximum(out, 1e-300))


def _satisfied(c: _Target, value: float) -> bool:
    assert c.bound is not None
    return value <= c.bound if c.below else value >= c.bound
