"""hwtune's sampler: hardware-aware constrained Bayesian optimization, as an Optuna sampler.

The idea of HyperPower (Stamoulis et al., DATE 2018), with today's maths: a network's hardware cost
depends on its architecture only, so it is known (measured, cheaply) or predicted (by a cost model
fitted on those measurements) before any training. Per proposal the sampler builds a pool of
candidates (:mod:`._pool`), keeps those the study's cost model predicts likely within budget, ranks
them with an acquisition on GP surrogates of the trained networks' metrics (:mod:`._acquisition`) and
proposes the best (:mod:`._proposer`); a batch (:meth:`HwSampler.propose`) or the trials other
workers are running enter the surrogates as fantasies, so a batch never repeats itself.

Optuna's idiom for joint samplers: :meth:`infer_relative_search_space` returns the study's searched
params, :meth:`sample_relative` proposes them together; a param outside that space (a dynamic one on a
plain Optuna study) is drawn at random by :meth:`sample_independent`.

The cost model is the study's own (:class:`hwtune.costmodel.DeviceCostModels`, handed over with
:meth:`use_cost_models`), so the study file's ``cost_model:`` decides what the sampler screens with and
what the loop skips; standalone, the sampler builds one of its own. The space, objectives and
constraints come from the constructor, else from the study attribute ``hwtune:config``, else (a plain
Optuna study) from the distributions, ``trial.values`` and ``trial.constraints``.

Everything is seeded by ``(seed, trial number)``: a study replayed with the same seed gets the same
proposals; :meth:`reseed_rng` draws a new seed.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial

from hwtune.costmodel import COST_MODELS, DeviceCostModels
from hwtune.exceptions import ConfigError
from hwtune.search._calibration import selection_calibration
from hwtune.search._observations import read_observations
from hwtune.search._pool import ProposalState
from hwtune.search._proposer import Proposer
from hwtune.search._targets import Targets, objectives_from_config, resolve_targets, space_from_config
from hwtune.space import Constraint, Objective, SearchSpace, parse_constraints, parse_objectives
from hwtune.space._candidates import space_from_distributions
from hwtune.vocabulary import CONFIG_ATTR, PROPOSAL_ATTR

__all__ = ["HwSampler", "PROPOSAL_ATTR", "publish_proposal"]


def publish_proposal(study: Study, trial: FrozenTrial, prop: dict[str, Any], search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """Store ``prop`` with ``trial`` (``hwtune:proposal``: other workers see it pending; best effort, e.g.
    on a read-only storage) and return the part of it ``search_space`` holds (Optuna's relative params)."""
    try:
        study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_ATTR, json.dumps(prop, default=str))
    except Exception:  # noqa: BLE001
        pass
    out = {}
    for name, dist in search_space.items():
        if name in prop:
            try:
                if dist._contains(dist.to_internal_repr(prop[name])):
                    out[name] = prop[name]
            except (ValueError, TypeError):
                pass
    return out


class HwSampler(BaseSampler):
    """Hardware-aware constrained Bayesian optimization (hwtune's default sampler).

    Args:
        space: the study's search space (default: the study's ``hwtune:config``, else the
            distributions of the trials).
        objectives: ``"minimize: error"``, ``{"minimize": ["error", "latency_ms"]}`` or parsed
            :class:`Objective` s (default: ``hwtune:config``, else the study's directions on ``trial.values``).
        constraints: texts or :class:`Constraint` s (default: ``hwtune:config``, else every key of
            ``trial.constraints``, feasible when <= 0).
        seed: seeds every proposal (with the trial number); ``None`` = not reproducible.
        cost_model: the model of the cost model the sampler builds when no study hands it one
            (:meth:`use_cost_models`): ``"auto"``, a name of :data:`hwtune.costmodel.COST_MODELS`, or
            ``None`` (no screening: every proposal is measured).
        features: the model family's derived features ``params -> {name: value}`` for that own cost
            model (a study's cost model brings its own); the surrogates read them too.
        n_startup: trained networks proposed space-filling (among those likely within budget) before
            the surrogate ranks candidates.
        min_feasibility: candidates whose predicted probability of meeting every hardware constraint
            is below this are never proposed (unless none reaches it: then the likeliest); 1/3 keeps
            the expected number of measurements per trained network at most 3.
        pool_size: candidates scored per proposal (a random subset of the likely feasible ones, always
            with the neighbours of the best networks and last round's best-ranked).
        screen_limit: most rows of an enumerated space screened per proposal when its cost-model
            inputs are all distinct (a random subset plus the neighbours of the best beyond it).
        enumerate_limit: spaces with at most this many configurations are enumerated.
        surrogate_inputs: ``"both"`` (derived features and the encoded params, a kernel each) or
            ``"features"`` (derived features alone); without derived features, the encoded params.
        surrogate_linear: add a linear kernel to the objective's GP (a trend such as "more
            convolutions, lower error"); used only when every searched param is categorical.
        explore_every: every k-th proposal after the start-up is a random likely-feasible candidate (0: never).
        trust_region_every: on a space with int or float params and one quality objective, every k-th proposal
            after the start-up is the acquisition's best within the trust region of the best network
            (numeric params within ``trust_region_radius`` of its, in their (log) range scaled to [0, 1]; at
            most one categorical param different); 0: never.
        trust_region_radius: half-width of that trust region, in (0, 1].
        prior_focus: with an ``error_prior`` and one quality objective, until this many networks are trained (0: never) each
            proposal after the start-up is the acquisition's best among the ``prior_focus_share`` of the
            candidates the prior ranks best, as long as the prior ranks the trained feasible networks as
            their errors do (Spearman > 0; judged from 3 of them).
        prior_focus_share: that share, in (0, 1].
        n_mc: Monte-Carlo samples of the hypervolume improvement (multi-objective).
        error_prior: ``params -> {name: value}``, prior knowledge of a configuration's error (lower =
            better), e.g. the published errors of the same NB201 cell on other tasks
            (:func:`hwtune.tabular.nb201_error_prior`): a kernel block of the quality surrogates (the
            study's trained networks decide how much it counts) and the pool of start-up proposals.
    """

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any] | None = None,
        objectives: Any = None,
        constraints: Sequence[str | Constraint] | str | None = None,
        *,
        seed: int | None = None,
        cost_model: str | None = "auto",
        features: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None,
        n_startup: int = 5,
        min_feasibility: float = 1.0 / 3.0,
        pool_size: int = 3000,
        screen_limit: int = 6000,
        enumerate_limit: int = 50_000,
        surrogate_inputs: str = "both",
        surrogate_linear: bool = True,
        explore_every: int = 0,
        trust_region_every: int = 2,
        trust_region_radius: float = 0.2,
        prior_focus: int = 25,
        prior_focus_share: float = 0.1,
        n_mc: int = 32,
        error_prior: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None,
    ) -> None:
        if surrogate_inputs not in ("features", "both"):
            raise ConfigError("sampler.surrogate_inputs", f"unknown value {surrogate_inputs!r}.", "use 'features' or 'both'.")
        if not (0.0 < min_feasibility < 1.0):
            raise ConfigError("sampler.min_feasibility", f"must be in (0, 1), got {min_feasibility!r}.")
        if trust_region_every < 0:
            raise ConfigError("sampler.trust_region_every", f"must be 0 (never) or a positive count, got {trust_region_every!r}.")
        if not (0.0 < trust_region_radius <= 1.0):
            raise ConfigError("sampler.trust_region_radius", f"must be in (0, 1], got {trust_region_radius!r}.", "the default is 0.2.")
        if prior_focus < 0:
            raise ConfigError("sampler.prior_focus", f"must be 0 (never) or a count of trained networks, got {prior_focus!r}.", "the default is 25.")
        if not (0.0 < prior_focus_share <= 1.0):
            raise ConfigError("sampler.prior_focus_share", f"must be in (0, 1], got {prior_focus_share!r}.", "the default is 0.1.")
        if n_startup < 1:
            raise ConfigError("sampler.n_startup", f"must be at least 1, got {n_startup!r}.")
        if cost_model is not None and cost_model != "auto" and cost_model not in COST_MODELS:
            raise ConfigError("sampler.cost_model", f"unknown cost model {cost_model!r}.", f"use auto, None or one of {', '.join(COST_MODELS)}.")
        self._space = space if space is None or isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
        self._objectives = None if objectives is None else _as_objectives(objectives)
        self._constraints = None if constraints is None else _as_constraints(constraints)
        self._seed = seed
        self.cost_model = cost_model
        self.features = features
        self.state = ProposalState(
            n_startup=n_startup, min_feasibility=min_feasibility, pool_size=pool_size, screen_limit=screen_limit,
            enumerate_limit=enumerate_limit, surrogate_inputs=surrogate_inputs, surrogate_linear=surrogate_linear,
            explore_every=explore_every, trust_region_every=int(trust_region_every),
            trust_region_radius=float(trust_region_radius), prior_focus=int(prior_focus), prior_focus_share=float(prior_focus_share),
            n_mc=n_mc, error_prior=error_prior,
        )
        self._fallback = RandomSampler(seed=seed)
        self._intersection = IntersectionSearchSpace(include_pruned=True)
        self._costs: DeviceCostModels | None = None
        self._bound = False
        self._own_costs: tuple[int, DeviceCostModels | None] | None = None
        self._prior_curves: list[dict[int, float]] = []
        self._config_space: tuple[str, SearchSpace] | None = None
        self.last_info: list[dict[str, Any]] = []
        """What the last round saw of each proposal: P(within budget), predicted costs
        ``{metric: (mean, std)}``, the cost models used, whether the gate held and whether it was a
        start-up (space-filling) proposal."""
        self.history: list[dict[str, Any]] = []
        """``last_info`` of every proposal made for a trial (with its ``trial`` number)."""
        self._metrics_checked = False
        """Settled: a trial records the named objectives, or the warning was given (checked no more)."""
        self.proposal_seconds: list[float] = []
        """Wall-clock seconds of each proposal (for benchmarks)."""

    def use_cost_models(self, costs: DeviceCostModels | None) -> None:
        """Screen with the study's cost model (the one its loop skips with); ``None``: the study has
        none (``cost_model: none``), so nothing is screened."""
        self._costs, self._bound = costs, True

    def use_prior_curves(self, curves: Sequence[Mapping[int, float]]) -> None:
        """Learning curves of earlier studies of the task (``{epoch: validation error}``; the ``curve``
        pruner's ``prior_studies``, handed over by the study loop): fitted with the study's own curves
        to predict the final error of a stopped trial, so the pruner and the sampler read one model
        from the study's first stopped network on."""
        self._prior_curves = [dict(c) for c in curves if c]

    # -- Optuna's sampler interface ------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._known_space(study)
        if space is not None:
            return {n: p.distribution() for n, p in space.items() if p.distribution() is not None}
        return dict(self._intersection.calculate(study))

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        t0 = time.perf_counter()
        props = self._propose(study, 1, self._rng(trial.number), exclude_number=trial.number, search_space=search_space)
        prop = props[0] if props else {}
        if self.last_info:
            self.history.append({"trial": trial.number, **self.last_info[0]})
        out = publish_proposal(study, trial, prop, search_space)
        self.proposal_seconds.append(time.perf_counter() - t0)
        return out

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()
        self._seed = int(np.random.SeedSequence().generate_state(1)[0])

    # -- public helpers ------------------------------------------------------------------------
    def propose(self, study: Study, n: int = 1) -> list[dict[str, Any]]:
        """``n`` distinct proposals for parallel workers (none equal to a finished or running trial).

        Use with ``study.enqueue_trial(p)`` for each, or to look at what the sampler would try.
        Returns param dicts (fixed params included).
        """
        rng = self._rng(len(study.get_trials(deepcopy=False)), salt=1)
        return self._propose(study, n, rng, exclude_number=None)

    # -- internals -----------------------------------------------------------------------------
    def _rng(self, number: int, salt: int = 0) -> np.random.Generator:
        if self._seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self._seed) & 0xFFFFFFFF, int(number), salt])

    def _config(self, study: Study) -> Mapping[str, Any] | None:
        try:
            cfg = study.user_attrs.get(CONFIG_ATTR)
        except Exception:  # noqa: BLE001 - a study without user attributes
            return None
        return cfg if isinstance(cfg, Mapping) else None

    def _known_space(self, study: Study) -> SearchSpace | None:
        """The constructor's space, else the one stored with the study."""
        if self._space is not None:
            return self._space
        cfg = self._config(study)
        if cfg and cfg.get("space"):
            text = json.dumps(cfg["space"], sort_keys=True, default=str)
            if self._config_space is None or self._config_space[0] != text:
                self._config_space = (text, space_from_config(cfg["space"]))
            return self._config_space[1]
        return None

    def _targets(self, study: Study, trials: Sequence[FrozenTrial]) -> Targets:
        cfg = self._config(study) if self._objectives is None or self._constraints is None else None
        objectives = self._objectives
        if objectives is None and cfg and cfg.get("objectives"):
            objectives = objectives_from_config(cfg["objectives"])
        constraints = self._constraints
        if constraints is None and cfg is not None:
            constraints = parse_constraints(list(cfg.get("constraints") or []))
        keys = sorted({k for t in trials for k in t.constraints}) if constraints is None else []
        return resolve_targets(objectives, constraints, study.directions, keys)

    def _cost_models(self, space: SearchSpace, targets: Targets) -> DeviceCostModels | None:
        """The study's cost model, else one of the sampler's own (None: nothing to screen)."""
        if self._bound:
            return self._costs
        if self.cost_model is None or not targets.hardware_metrics:
            return None
        if self._own_costs is None or self._own_costs[0] != id(space):
            cons = [c.constraint for c in targets.hardware_constraints if c.constraint is not None]
            self._own_costs = (id(space), DeviceCostModels(space, targets.hardware_metrics, self.cost_model, derived=self.features, constraints=cons))
        return self._own_costs[1]

    def _propose(
        self,
        study: Study,
        q: int,
        rng: np.random.Generator,
        exclude_number: int | None,
        search_space: Mapping[str, BaseDistribution] | None = None,
    ) -> list[dict[str, Any]]:
        self.last_info = []
        trials = study.get_trials(deepcopy=False)
        space = self._known_space(study)
        if space is None:
            dists = dict(search_space or {})
            if not dists:
                for t in trials:
                    for k, d in t.distributions.items():
                        dists.setdefault(k, d)
            seen = [t.params for t in trials if t.state.is_finished() and t.params]
            space = space_from_distributions(dists, seen) if dists else None
        if space is None or len(space) == 0:
            return [{} for _ in range(q)]
        targets = self._targets(study, trials)
        obs = read_observations(trials, space, targets.plain, exclude_number, prior_curves=self._prior_curves)
        self._warn_if_no_metrics(targets, trials, obs)
        self.state.calibration = selection_calibration(trials, [c.constraint for c in targets.hardware_constraints if c.constraint is not None])
        proposer = Proposer(self.state, space, targets, obs, self._cost_models(space, targets), rng)
        out = proposer.propose(q)
        self.last_info = proposer.info
        return out


    def _warn_if_no_metrics(self, targets: Targets, trials: Sequence[FrozenTrial], obs: Sequence[Any]) -> None:
        """Warn once when objectives were named but no completed trial records them: a plain Optuna
        study given ``objectives="minimize: error"`` stores ``trial.values`` only, so the quality
        surrogate never fits and every proposal stays a start-up one (silently, before this warning)."""
        if targets.plain or self._metrics_checked:
            return
        quality = [t.metric for t in targets.objectives if not t.hardware]
        if not quality or any(m in o.values for o in obs for m in quality):
            self._metrics_checked = True  # a normal hwtune study: settled at its first trained network
            return
        done = sum(1 for t in trials if t.state.name == "COMPLETE" and t.values is not None)
        if done < 2:
            return
        self._metrics_checked = True
        warnings.warn(
            f"sampler.objectives: {', '.join(quality)} named, but none of this study's {done} completed trials "
            "records it (they have Optuna values only), so hwtune's sampler cannot learn and keeps proposing "
            "start-up points. Fix: on a plain Optuna study leave objectives (and constraints) unset, its values "
            "are the objectives; or run the study through hwtune.Study, which records the metrics.",
            UserWarning,
            stacklevel=2,
        )


def _as_objectives(objectives: Any) -> list[Objective]:
    if isinstance(objectives, (list, tuple)) and objectives and all(isinstance(o, Objective) for o in objectives):
        return list(objectives)
    return parse_objectives(objectives)


def _as_constraints(constraints: Sequence[str | Constraint] | str) -> list[Constraint]:
    if isinstance(constraints, str):
        return parse_constraints(constraints)
    return [c if isinstance(c, Constraint) else parse_constraints(c)[0] for c in constraints]


