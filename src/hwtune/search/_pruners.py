"""When to stop a trial early: Optuna's pruners by name, and a pruner for Pareto studies.

Every trained trial reports its validation error after each epoch. A study file names its pruner:

```yaml
pruner: hyperband                       # or median, successive_halving, cost_median, curve, none
pruner: {name: hyperband, min_resource: 1, reduction_factor: 3}
pruner: {name: curve, threshold: 0.05}
```

=====================  ================================  ============================================
name                   Optuna class                      options (defaults)
=====================  ================================  ============================================
none                   ``NopPruner``
median                 ``MedianPruner``                  n_startup_trials (5), n_warmup_steps (0), interval_steps (1), n_min_trials (1)
successive_halving     ``SuccessiveHalvingPruner``       min_resource (auto), reduction_factor (4), min_early_stopping_rate (0), bootstrap_count (0)
hyperband              ``HyperbandPruner``               min_resource (1), max_resource (the fixed ``epochs``, else auto), reduction_factor (3), bootstrap_count (0)
cost_median            :class:`CostAwarePruner`          cost_ratio (2), percentile (50), min_peers (3), n_warmup_steps (0), interval_steps (1)
curve                  :class:`CurvePruner`              threshold (0.05), min_complete (4), max_stop_ratio (4), cost_ratio (2), n_warmup_steps (0), interval_steps (1), max_resource (the fixed ``epochs``), prior_studies ([]), prior_curves ([]), forecast (false)
=====================  ================================  ============================================

``curve`` predicts each trial's final error from its learning curve with the study's pooled curve
model (:mod:`hwtune.search._curves`, the one hwtune's sampler reads stopped trials with) and stops it
when the probability that it beats its reference is below ``threshold`` (rule in
:class:`CurvePruner`); it works on single-objective and Pareto studies. A second study of a task can
start from the first's curves and stop the records the rest of its budget will likely beat:

```yaml
pruner: {name: curve, prior_studies: [mnist-cnn-1], forecast: true}
```

Optuna's pruners work on single-objective studies only (Optuna refuses ``Trial.report`` in a
multi-objective study). For Pareto studies hwtune has :class:`CostAwarePruner`, whose rule is:

    At epoch ``e`` a trial with validation error ``v`` and hardware cost ``c`` (the study's hardware
    objectives, e.g. ``latency_ms``, measured before training) is compared with its *peers*: the other
    trials of the study that reported epoch ``e`` and whose every cost is within a factor
    ``cost_ratio`` of ``c`` (``c / r <= c_peer <= c * r``). With at least ``min_peers`` peers, the
    trial is pruned when ``v`` is worse than the ``percentile``-th percentile of the peers' errors at
    epoch ``e`` (the median by default). Not before epoch ``n_warmup_steps + 1``; then every
    ``interval_steps`` epochs.

Rationale: a trial can only reach the Pareto front by being more accurate than the trials that cost
about as much; a trial that, at the same epoch, is worse than most of its cost peers is unlikely to.
Trials of very different cost are never compared, so a cheap network is never stopped for being less
accurate than an expensive one. The rule needs the cost before training, which hwtune always has.

This module knows nothing of PyTorch.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from hwtune.exceptions import ConfigError
from hwtune.search._curve_forecast import StudyBudget, final_best_probability, load_prior_curves, parse_prior_curves
from hwtune.search._curves import (
    CURVE_PREDICTION_ATTR,
    fit_curves,
    trial_curve,
    trial_horizon,
)
from hwtune.vocabulary import (
    CONFIG_ATTR,
    COST_ATTR,
    CURVE_ATTR,
    METRICS_ATTR,
    STATUS_ATTR,
)

__all__ = ["PRUNERS", "make_pruner", "record_epoch", "CostAwarePruner", "CurvePruner", "CURVE_ATTR", "COST_ATTR"]


def _num(field: str, v: Any, *, low: float | None = None, high: float | None = None, integer: bool = False, open_low: bool = False) -> Any:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and integer:
        ok = float(v).is_integer()
    if ok and low is not None:
        ok = v > low if open_low else v >= low
    if ok and high is not None:
        ok = v <= high
    if not ok:
        rng = f"{'>' if open_low else '>='} {low:g}" if low is not None else ""
        if high is not None:
            rng += f"{' and ' if rng else ''}<= {high:g}"
        raise ConfigError(field, f"expected {'a whole number' if integer else 'a number'} {rng}, got {v!r}.", "correct the value.")
    return int(v) if integer else float(v)


def _resource(field: str, v: Any) -> Any:
    if v == "auto":
        return "auto"
    return _num(field, v, low=1, integer=True)


def record_epoch(trial: optuna.Trial, epoch: int, error: float, cost: float | Sequence[float]) -> tuple[list[float], dict[str, float]]:
    """Store ``error`` at ``epoch`` in the trial's curve (``hwtune:curve``) and, once, its hardware
    cost(s) (``hwtune:cost``), which the cost-aware pruners compare by; returns (costs, curve)."""
    costs = [float(cost)] if isinstance(cost, (int, float)) else [float(c) for c in cost]
    curve = dict(trial.user_attrs.get(CURVE_ATTR) or {})
    curve[str(epoch)] = float(error)
    if COST_ATTR not in trial.user_attrs:
        trial.set_user_attr(COST_ATTR, costs)
    trial.set_user_attr(CURVE_ATTR, curve)
    return costs, curve


class CostAwarePruner(BasePruner):
    """Prune on error among trials of comparable hardware cost (for Pareto studies; rule in the module docstring).

    Optuna cannot prune multi-objective studies, so this pruner is not asked by Optuna (its
    :meth:`prune` always answers ``False``); the study loop calls :meth:`should_prune_at` after each
    epoch with the trial, the epoch, the validation error and the trial's hardware cost.

    Args:
        cost_ratio: peers cost at most this factor more or less (> 1).
        percentile: prune when worse than this percentile of the peers' errors (0-100; 50 = median).
        min_peers: fewest peers needed to decide.
        n_warmup_steps: never prune at or before this epoch.
        interval_steps: decide every this many epochs after the warm-up.
    """

    def __init__(self, cost_ratio: float = 2.0, percentile: float = 50.0, min_peers: int = 3, n_warmup_steps: int = 0, interval_steps: int = 1, *, field: str = "pruner") -> None:
        self.cost_ratio = _num(f"{field}.cost_ratio", cost_ratio, low=1.0, open_low=True)
        self.percentile = _num(f"{field}.percentile", percentile, low=0.0, high=100.0)
        self.min_peers = _num(f"{field}.min_peers", min_peers, low=1, integer=True)
        self.n_warmup_steps = _num(f"{field}.n_warmup_steps", n_warmup_steps, low=0, integer=True)
        self.interval_steps = _num(f"{field}.interval_steps", interval_steps, low=1, integer=True)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return False

    def comparable(self, a: Sequence[float], b: Sequence[float]) -> bool:
        """Whether every cost of ``a`` is within ``cost_ratio`` of the same cost of ``b``."""
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if x <= 0 or y <= 0:
                if x != y:
                    return False
            elif max(x, y) / min(x, y) > self.cost_ratio:
                return False
        return True

    def decide(self, trials: Sequence[FrozenTrial], number: int, epoch: int, error: float, cost: Sequence[float]) -> bool:
        """The rule on stored trials: should trial ``number`` stop at ``epoch`` with ``error`` and ``cost``?"""
        if epoch <= self.n_warmup_steps or (epoch - self.n_warmup_steps - 1) % self.interval_steps:
            return False
        if not math.isfinite(error):
            return True
        key = str(epoch)
        peers = []
        for t in trials:
            if t.number == number:
                continue
            curve, c = t.user_attrs.get(CURVE_ATTR), t.user_attrs.get(COST_ATTR)
            if not curve or c is None or key not in curve:
                continue
            if self.comparable([float(x) for x in c], cost):
                peers.append(float(curve[key]))
        if len(peers) < self.min_peers:
            return False
        peers.sort()
        # linear interpolation between closest ranks (numpy's default percentile)
        pos = (len(peers) - 1) * self.percentile / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, len(peers) - 1)
        threshold = peers[lo] + (peers[hi] - peers[lo]) * (pos - lo)
        return error > threshold

    def should_prune_at(self, trial: optuna.Trial, epoch: int, error: float, cost: float | Sequence[float]) -> bool:
        """Record ``error`` at ``epoch`` (and the cost) on ``trial``, then apply the rule.

        Args:
            trial: the running Optuna trial.
            epoch: epoch just finished (from 1).
            error: validation error after it.
            cost: the trial's hardware cost(s), known before training (e.g. its ``latency_ms``).
        """
        costs, _ = record_epoch(trial, epoch, error, cost)
        trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        return self.decide(trials, trial.number, epoch, float(error), costs)

    def __repr__(self) -> str:
        return (f"CostAwarePruner(cost_ratio={self.cost_ratio:g}, percentile={self.percentile:g}, min_peers={self.min_peers}, "
                f"n_warmup_steps={self.n_warmup_steps}, interval_steps={self.interval_steps})")


class CurvePruner(BasePruner):
    """Stop a trial when its predicted final error is unlikely to beat its reference (learning curves).

    After each epoch the study's pooled curve model (:func:`hwtune.search._curves.fit_curves`, fitted on
    the curves of every finished, pruned and running trial) predicts the trial's validation error at
    the study's last epoch as a log-normal; the trial stops when ``P(final error < reference) <
    threshold``. The reference depends on what the study wants, read from its ``hwtune:config``:

    - one quality objective (``minimize: error``; hardware limits are constraints): the best error of
      the trained trials (all of them met the limits before training);
    - a Pareto study (``minimize: [error, latency_ms]``): the best error of the trained trials that cost
      **no more** than this one and at least ``1 / cost_ratio`` of it on every hardware objective (a
      trial is off the front only if a cheaper one is more accurate; networks of very different cost
      are never compared, so a cheap network is never stopped for an expensive one's accuracy);
    - a hardware objective under an error constraint (``minimize: latency_ms``, ``error <= 0.05``): the bound.

    No decision before ``min_complete`` trials have reached their last epoch (the model needs whole
    curves to learn how early errors map to final ones), while the study holds ``max_stop_ratio`` or
    more stopped trials per trial trained to its last epoch (then the next trial runs to the end: a
    model fitted on few whole curves can be confidently wrong, and stopping everything would keep it
    so — a study on MNIST stopped 57 trials at epoch 1 after 4 whole curves before this rule), at or
    before epoch ``n_warmup_steps``, off the ``interval_steps`` grid, or at the last epoch (stopping then
    saves nothing). A stopped trial keeps
    the prediction in ``hwtune:curve_prediction``; the sampler predicts it the same way.

    What a second study of a task can add (:mod:`hwtune.search._curve_forecast`): ``prior_studies``
    (earlier studies of the same task and training setting, in the same storage) or ``prior_curves``
    join the curve model and count as whole curves for ``min_complete`` and ``max_stop_ratio``, so the
    rule decides from the first network on. ``forecast``: in a single-objective study, a trial stops
    when it is unlikely to beat the best so far *and* every network the rest of the study's budget will
    try (forecast from the budget the loop runs with, :meth:`bind`, and the distribution of final errors
    of the study and its prior); before the first whole network of the study, when nothing is yet to
    beat, only the networks to come count. The budget is unknown outside the loop: then it is the plain rule.

    Like :class:`CostAwarePruner`, Optuna never asks it (:meth:`prune` answers ``False``): the study
    loop calls :meth:`should_prune_at` after each epoch with the trial's hardware cost.

    Args:
        threshold: stop below this probability of beating the reference (0 < threshold < 1).
        min_complete: whole curves needed before deciding.
        max_stop_ratio: most stopped trials per trial trained to its last epoch (> 0).
        cost_ratio: Pareto studies: the cheapest peer compared costs at least ``1 / cost_ratio`` as much (> 1).
        n_warmup_steps: never stop at or before this epoch.
        interval_steps: decide every this many epochs after the warm-up.
        max_resource: the last epoch (default: the study's fixed ``epochs``, else each trial's ``epochs``
            param, else the longest curve).
        prior_studies: names of earlier studies of the same task in the study's storage (read when the
            loop starts, :meth:`bind`).
        prior_curves: learning curves given directly, each a list of validation errors from epoch 1.
        forecast: stop records the rest of the study's budget will likely beat (single-objective studies).
    """

    def __init__(
        self,
        threshold: float = 0.05,
        min_complete: int = 4,
        max_stop_ratio: float = 4.0,
        cost_ratio: float = 2.0,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        max_resource: int | None = None,
        prior_studies: Sequence[str] = (),
        prior_curves: Sequence[Any] = (),
        forecast: bool = False,
        *,
        n_objectives: int = 1,
        field: str = "pruner",
    ) -> None:
        ok = not isinstance(threshold, bool) and isinstance(threshold, (int, float)) and 0.0 < threshold < 1.0
        if not ok:
            raise ConfigError(f"{field}.threshold", f"expected a probability > 0 and < 1, got {threshold!r}.", "use e.g. 0.05.")
        self.threshold = float(threshold)
        self.min_complete = _num(f"{field}.min_complete", min_complete, low=1, integer=True)
        self.max_stop_ratio = _num(f"{field}.max_stop_ratio", max_stop_ratio, low=0.0, open_low=True)
        self.cost_ratio = _num(f"{field}.cost_ratio", cost_ratio, low=1.0, open_low=True)
        self.n_warmup_steps = _num(f"{field}.n_warmup_steps", n_warmup_steps, low=0, integer=True)
        self.interval_steps = _num(f"{field}.interval_steps", interval_steps, low=1, integer=True)
        self.max_resource = None if max_resource is None else _num(f"{field}.max_resource", max_resource, low=1, integer=True)
        self.n_objectives = n_objectives
        if isinstance(prior_studies, str) or not isinstance(prior_studies, Sequence) or not all(isinstance(n, str) and n for n in prior_studies):
            raise ConfigError(f"{field}.prior_studies", f"expected a list of study names, got {prior_studies!r}.", "write e.g. prior_studies: [mnist-cnn-1].")
        self.prior_studies = list(prior_studies)
        self.prior_curves = parse_prior_curves(f"{field}.prior_curves", prior_curves)
        if not isinstance(forecast, bool):
            raise ConfigError(f"{field}.forecast", f"expected true or false, got {forecast!r}.", "write forecast: true.")
        self.forecast = forecast
        self.budget: StudyBudget | None = None
        """The study's budget, set by :meth:`bind` (the study loop); ``None``: unknown, no forecast."""
        self._field = field
        self._loaded: list[dict[int, float]] = []
        self.last_decision: dict[str, Any] = {}
        """What the last call saw: prediction, reference, probability (for tests and reports)."""
        self._goals: dict[Any, tuple[str, float | None]] = {}

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return False

    def read_priors(self, storage: Any, own: str | None = None) -> None:
        """Read ``prior_studies`` from ``storage`` (the study loop does before it measures anything,
        so that a wrong name fails first); ``own``: the study's name, refused as a prior."""
        if self.prior_studies:
            self._loaded = load_prior_curves(storage, self.prior_studies, f"{self._field}.prior_studies", own)

    def bind(self, study: optuna.Study, budget: StudyBudget | None = None) -> None:
        """Called by the study loop as a run starts: read ``prior_studies`` from the study's storage
        again (they may have grown) and keep the run's budget for ``forecast``."""
        self.read_priors(study._storage, study.study_name)
        if budget is not None:
            self.budget = budget.start(study.get_trials(deepcopy=False))

    @property
    def priors(self) -> list[dict[int, float]]:
        """Every prior curve: the ones given and the ones read from ``prior_studies``."""
        return self.prior_curves + self._loaded

    # -- what the study wants -----------------------------------------------------------------
    def goal(self, config: Mapping[str, Any] | None) -> tuple[str, float | None]:
        """``("best" | "pareto" | "bound" | "none", error bound)`` from a study's ``hwtune:config``."""
        from hwtune.space import parse_constraints
        from hwtune.space._metrics import METRICS

        objectives = [str(o).partition(" ")[2].strip() for o in (config or {}).get("objectives") or []]
        bound = None
        try:
            for c in parse_constraints(list((config or {}).get("constraints") or [])):
                b = None
                if c.metric == "error" and c.op in ("<=", "<"):
                    b = float(c.bound)
                elif c.metric == "accuracy" and c.op in (">=", ">"):
                    b = 1.0 - float(c.bound)
                if b is not None:
                    bound = b if bound is None else min(bound, b)
        except (ConfigError, TypeError, ValueError):  # relative or unreadable limits: none of them is an error bound
            pass
        quality = [m for m in objectives if m in ("error", "accuracy")]
        hardware = [m for m in objectives if m in METRICS and METRICS[m].kind == "hardware"]
        if not objectives:  # no hwtune definition: the study's objective count
            return ("pareto" if self.n_objectives > 1 else "best"), bound
        if quality and hardware:
            return "pareto", bound
        if quality:
            return "best", bound
        return ("bound", bound) if bound is not None else ("none", None)

    # -- the rule -----------------------------------------------------------------------------
    def comparable(self, own: Sequence[float], peer: Sequence[float]) -> bool:
        """Whether ``peer`` costs no more than ``own`` and at least ``1 / cost_ratio`` of it, on every cost."""
        if len(own) != len(peer):
            return False
        for c, p in zip(own, peer):
            if c <= 0 or p <= 0:
                if c != p:
                    return False
            elif not (c / self.cost_ratio <= p <= c):
                return False
        return True

    def decide(
        self,
        trials: Sequence[FrozenTrial],
        number: int,
        epoch: int,
        curve: Mapping[int, float],
        cost: Sequence[float],
        horizon: int | None,
        goal: tuple[str, float | None] = ("best", None),
    ) -> bool:
        """The rule on stored trials: should trial ``number``, whose curve so far is ``curve``, stop at ``epoch``?"""
        self.last_decision = {"epoch": epoch}
        if epoch <= self.n_warmup_steps or (epoch - self.n_warmup_steps - 1) % self.interval_steps:
            return False
        error = curve.get(epoch)
        if error is None or not math.isfinite(error):
            return error is not None
        kind, bound = goal
        curves = {t.number: trial_curve(t) for t in trials if t.number != number}
        curves[number] = dict(curve)
        if horizon is None:
            horizon = max((max(c) for c in curves.values() if c), default=epoch)
        if epoch >= horizon or kind == "none":
            return False
        complete = [t for t in trials if t.number != number and _trained(t) and curves.get(t.number) and max(curves[t.number]) >= horizon]
        priors = self.priors
        prior_whole = [c for c in priors if max(c) >= horizon]
        if len(complete) + len(prior_whole) < self.min_complete:
            return False
        stopped = sum(1 for t in trials if t.number != number and t.state == TrialState.PRUNED and t.user_attrs.get(STATUS_ATTR, "pruned") == "pruned")
        if stopped >= self.max_stop_ratio * (len(complete) + len(prior_whole)):
            self.last_decision = {"epoch": epoch, "stopped": stopped, "complete": len(complete)}
            return False
        if kind == "bound":
            reference = bound
        else:
            peers = complete if kind == "best" else [
                t for t in complete if t.user_attrs.get(COST_ATTR) is not None and self.comparable(cost, [float(x) for x in t.user_attrs[COST_ATTR]])
            ]
            finals = [_final_error(t, curves[t.number], horizon) for t in peers]
            reference = min((e for e in finals if e is not None), default=None)
        remaining = self.budget.remaining_networks(trials, number) if self.forecast and kind == "best" and self.budget is not None else None
        if reference is None and not remaining:
            return False
        model = fit_curves(list(curves.values()) + priors, horizon)
        pred = model.predict(curve, horizon)
        p = pred.prob_below(reference if reference is not None else math.inf)
        self.last_decision = {**pred.to_dict(), "epoch": epoch, "reference": reference, "p_better": p, "goal": kind, "model": model.describe()}
        if remaining:
            own = self._finals([c for n, c in curves.items() if n != number], model, horizon)
            p = final_best_probability(pred, reference if reference is not None else math.inf, own, remaining, self._finals(priors, model, horizon))
            self.last_decision.update(p_final_best=p, remaining_networks=remaining)
        return p < self.threshold

    @staticmethod
    def _finals(curves: Sequence[Mapping[int, float]], model: Any, horizon: int) -> list[float]:
        """Final errors of ``curves`` at ``horizon``: measured where a curve has that epoch, else the
        model's median (whole curves alone would leave out the bad networks stopped early)."""
        return [float(c[horizon]) if horizon in c else model.predict({e: v for e, v in c.items() if e < horizon}, horizon).error for c in curves if c]

    def should_prune_at(self, trial: optuna.Trial, epoch: int, error: float, cost: float | Sequence[float]) -> bool:
        """Record ``error`` at ``epoch`` (and the cost) on ``trial``, then apply the rule.

        Args:
            trial: the running Optuna trial.
            epoch: epoch just finished (from 1).
            error: validation error after it.
            cost: the trial's hardware cost(s), known before training (e.g. its ``latency_ms``).
        """
        costs, curve = record_epoch(trial, epoch, error, cost)
        study = trial.study
        key = getattr(study, "_study_id", id(study))
        if key not in self._goals:
            try:
                cfg = study.user_attrs.get(CONFIG_ATTR)
            except Exception:
                cfg = None
            self._goals[key] = self.goal(cfg if isinstance(cfg, Mapping) else None)
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        horizon = self.max_resource or trial_horizon(trial)
        if self._goals[key][0] == "best" and len(study.directions) == 1:  # Optuna's samplers (TPE) read stopped trials' intermediate values
            minimize = study.directions[0] == optuna.study.StudyDirection.MINIMIZE
            trial.report(float(error) if minimize else 1.0 - float(error), epoch)
        stop = self.decide(trials, trial.number, epoch, {int(k): float(v) for k, v in curve.items()}, costs, horizon, self._goals[key])
        if stop and "p_better" in self.last_decision:
            trial.set_user_attr(CURVE_PREDICTION_ATTR, {k: v for k, v in self.last_decision.items() if k != "model"})
        return stop

    def __repr__(self) -> str:
        return (f"CurvePruner(threshold={self.threshold:g}, min_complete={self.min_complete}, max_stop_ratio={self.max_stop_ratio:g}, cost_ratio={self.cost_ratio:g}, "
                f"n_warmup_steps={self.n_warmup_steps}, interval_steps={self.interval_steps}, max_resource={self.max_resource}, "
                f"prior_studies={self.prior_studies}, prior_curves={len(self.prior_curves)}, forecast={self.forecast})")


def _trained(t: FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.user_attrs.get(STATUS_ATTR, "trained") == "trained"


def _final_error(t: FrozenTrial, curve: Mapping[int, float], horizon: int) -> float | None:
    """A trained trial's final validation error: its stored ``error``, else its curve's last epoch."""
    v = (t.user_attrs.get(METRICS_ATTR) or {}).get("error")
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    if curve and max(curve) >= horizon:
        return float(curve[max(curve)])
    return None


def _median(o: Mapping[str, Any], f: str, max_epochs: int | None) -> BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=_num(f"{f}.n_startup_trials", o.get("n_startup_trials", 5), low=0, integer=True),
        n_warmup_steps=_num(f"{f}.n_warmup_steps", o.get("n_warmup_steps", 0), low=0, integer=True),
        interval_steps=_num(f"{f}.interval_steps", o.get("interval_steps", 1), low=1, integer=True),
        n_min_trials=_num(f"{f}.n_min_trials", o.get("n_min_trials", 1), low=1, integer=True),
    )


def _sha(o: Mapping[str, Any], f: str, max_epochs: int | None) -> BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=_resource(f"{f}.min_resource", o.get("min_resource", "auto")),
        reduction_factor=_num(f"{f}.reduction_factor", o.get("reduction_factor", 4), low=2, integer=True),
        min_early_stopping_rate=_num(f"{f}.min_early_stopping_rate", o.get("min_early_stopping_rate", 0), low=0, integer=True),
        bootstrap_count=_num(f"{f}.bootstrap_count", o.get("bootstrap_count", 0), low=0, integer=True),
    )


def _hyperband(o: Mapping[str, Any], f: str, max_epochs: int | None) -> BasePruner:
    min_r = _num(f"{f}.min_resource", o.get("min_resource", 1), low=1, integer=True)
    max_r = _resource(f"{f}.max_resource", o.get("max_resource", max_epochs or "auto"))
    if max_r != "auto" and max_r < min_r:
        raise ConfigError(f"{f}.max_resource", f"max_resource {max_r} is below min_resource {min_r}.", "raise max_resource to the number of epochs.")
    return optuna.pruners.HyperbandPruner(
        min_resource=min_r, max_resource=max_r,
        reduction_factor=_num(f"{f}.reduction_factor", o.get("reduction_factor", 3), low=2, integer=True),
        bootstrap_count=_num(f"{f}.bootstrap_count", o.get("bootstrap_count", 0), low=0, integer=True),
    )


def _cost(o: Mapping[str, Any], f: str, max_epochs: int | None) -> BasePruner:
    return CostAwarePruner(**dict(o), field=f)


def _curve(o: Mapping[str, Any], f: str, max_epochs: int | None) -> BasePruner:
    opts = dict(o)
    opts.setdefault("max_resource", max_epochs)
    return CurvePruner(**opts, field=f)


_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "successive_halving": ("min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
    "cost_median": ("cost_ratio", "percentile", "min_peers", "n_warmup_steps", "interval_steps"),
    "curve": ("threshold", "min_complete", "max_stop_ratio", "cost_ratio", "n_warmup_steps", "interval_steps", "max_resource",
              "prior_studies", "prior_curves", "forecast"),
}

PRUNERS: dict[str, Callable[[Mapping[str, Any], str, int | None], BasePruner]] = {
    "none": lambda o, f, m: optuna.pruners.NopPruner(),
    "median": _median,
    "successive_halving": _sha,
    "hyperband": _hyperband,
    "cost_median": _cost,
    "curve": _curve,
}
"""Pruner name -> factory ``(options, field, max_epochs) -> pruner``."""

_ALIASES = {"asha": "successive_halving", "sha": "successive_halving", "nop": "none"}


def make_pruner(spec: str | Mapping[str, Any] | BasePruner | None, *, n_objectives: int = 1, max_epochs: int | None = None, field: str = "pruner") -> BasePruner:
    """A pruner from a study-file entry (a name or ``{name: ..., <options>}``) or an instance.

    Args:
        spec: ``"hyperband"``, ``{"name": "hyperband", "min_resource": 1}``, an Optuna pruner, or ``None`` (none).
        n_objectives: objectives of the study; Pareto studies (> 1) accept ``none``, ``cost_median`` and ``curve`` only.
        max_epochs: the study's fixed number of epochs, if fixed (Hyperband's default ``max_resource``).

    Raises:
        ConfigError: unknown name or option, a value out of range, an Optuna pruner on a Pareto study.
    """
    if isinstance(spec, BasePruner):
        pruner = spec
        name = "cost_median" if isinstance(spec, CostAwarePruner) else "curve" if isinstance(spec, CurvePruner) else type(spec).__name__
    else:
        if spec is None:
            spec = "none"
        if isinstance(spec, str):
            name, options = spec, {}
        elif isinstance(spec, Mapping):
            if "name" not in spec:
                raise ConfigError(f"{field}.name", "missing.", f"write {{name: <pruner>, ...}} with one of: {', '.join(PRUNERS)}.")
            name, options = spec["name"], {k: v for k, v in spec.items() if k != "name"}
        else:
            raise ConfigError(field, f"expected a pruner name or {{name: ..., options}}, got {spec!r}.", f"use one of: {', '.join(PRUNERS)}.")
        name = _ALIASES.get(name, name) if isinstance(name, str) else name
        if name not in PRUNERS:
            raise ConfigError(field if isinstance(spec, str) else f"{field}.name", f"unknown pruner {name!r}.", f"use one of: {', '.join(PRUNERS)}.")
        unknown = sorted(set(options) - set(_OPTIONS[name]))
        if unknown:
            allowed = ", ".join(_OPTIONS[name]) or "none"
            raise ConfigError(f"{field}.{unknown[0]}", f"pruner {name!r} has no option {unknown[0]!r}.", f"options of {name}: {allowed}.")
        pruner = PRUNERS[name](options, field, max_epochs)
        if isinstance(pruner, CurvePruner):
            pruner.n_objectives = n_objectives
    if n_objectives > 1 and not isinstance(pruner, (CostAwarePruner, CurvePruner, optuna.pruners.NopPruner)):
        raise ConfigError(
            field,
            f"Optuna's pruners ({name}) cannot stop trials of a Pareto study (several objectives).",
            "use pruner: curve or cost_median, which compare errors among trials of comparable hardware cost, or pruner: none.",
        )
    return pruner
