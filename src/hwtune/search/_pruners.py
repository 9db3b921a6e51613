"""When to stop a trial early: Optuna's pruners by name, and a pruner for Pareto studies.

Every trained trial reports its validation error after each epoch. A study file names its pruner:

```yaml
pruner: hyperband                       # or median, successive_halving, cost_median, none
pruner: {name: hyperband, min_resource: 1, reduction_factor: 3}
```

=====================  ================================  ============================================
name                   Optuna class                      options (defaults)
=====================  ================================  ============================================
none                   ``NopPruner``
median                 ``MedianPruner``                  n_startup_trials (5), n_warmup_steps (0), interval_steps (1), n_min_trials (1)
successive_halving     ``SuccessiveHalvingPruner``       min_resource (auto), reduction_factor (4), min_early_stopping_rate (0), bootstrap_count (0)
hyperband              ``HyperbandPruner``               min_resource (1), max_resource (the fixed ``epochs``, else auto), reduction_factor (3), bootstrap_count (0)
cost_median            :class:`CostAwarePruner`          cost_ratio (2), percentile (50), min_peers (3), n_warmup_steps (0), interval_steps (1)
=====================  ================================  ============================================

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
from hwtune.vocabulary import COST_ATTR, CURVE_ATTR

__all__ = ["PRUNERS", "make_pruner", "CostAwarePruner", "CURVE_ATTR", "COST_ATTR"]


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
        costs = [float(cost)] if isinstance(cost, (int, float)) else [float(c) for c in cost]
        curve = dict(trial.user_attrs.get(CURVE_ATTR) or {})
        curve[str(epoch)] = float(error)
        if COST_ATTR not in trial.user_attrs:
            trial.set_user_attr(COST_ATTR, costs)
        trial.set_user_attr(CURVE_ATTR, curve)
        trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        return self.decide(trials, trial.number, epoch, float(error), costs)

    def __repr__(self) -> str:
        return (f"CostAwarePruner(cost_ratio={self.cost_ratio:g}, percentile={self.percentile:g}, min_peers={self.min_peers}, "
                f"n_warmup_steps={self.n_warmup_steps}, interval_steps={self.interval_steps})")


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


_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "successive_halving": ("min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
    "cost_median": ("cost_ratio", "percentile", "min_peers", "n_warmup_steps", "interval_steps"),
}

PRUNERS: dict[str, Callable[[Mapping[str, Any], str, int | None], BasePruner]] = {
    "none": lambda o, f, m: optuna.pruners.NopPruner(),
    "median": _median,
    "successive_halving": _sha,
    "hyperband": _hyperband,
    "cost_median": _cost,
}
"""Pruner name -> factory ``(options, field, max_epochs) -> pruner``."""

_ALIASES = {"asha": "successive_halving", "sha": "successive_halving", "nop": "none"}


def make_pruner(spec: str | Mapping[str, Any] | BasePruner | None, *, n_objectives: int = 1, max_epochs: int | None = None, field: str = "pruner") -> BasePruner:
    """A pruner from a study-file entry (a name or ``{name: ..., <options>}``) or an instance.

    Args:
        spec: ``"hyperband"``, ``{"name": "hyperband", "min_resource": 1}``, an Optuna pruner, or ``None`` (none).
        n_objectives: objectives of the study; Pareto studies (> 1) accept ``none`` and ``cost_median`` only.
        max_epochs: the study's fixed number of epochs, if fixed (Hyperband's default ``max_resource``).

    Raises:
        ConfigError: unknown name or option, a value out of range, an Optuna pruner on a Pareto study.
    """
    if isinstance(spec, BasePruner):
        pruner = spec
        name = "cost_median" if isinstance(spec, CostAwarePruner) else type(spec).__name__
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
    if n_objectives > 1 and not isinstance(pruner, (CostAwarePruner, optuna.pruners.NopPruner)):
        raise ConfigError(
            field,
            f"Optuna's pruners ({name}) cannot stop trials of a Pareto study (several objectives).",
            "use pruner: cost_median, which prunes on error among trials of comparable hardware cost, or pruner: none.",
        )
    return pruner
