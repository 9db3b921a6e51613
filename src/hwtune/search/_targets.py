"""What the sampler models: the study's objectives and constraints as targets of its surrogates.

A :class:`Target` is an objective or a constraint in *model space*: errors are modelled as
``log(error)``, accuracy as ``log(1 - accuracy)`` (so that a few broken networks at 90 % error do not
flatten the differences between good ones), every other metric as it is. A constraint's bound is
transformed the same way. On a plain Optuna study (no hwtune definition) the targets are the trial
values (``__value<i>``) and Optuna's constraint values (``__constraint:<name>``, feasible when <= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwtune.space import Constraint, Objective, SearchSpace, parse_objectives
from hwtune.space._metrics import METRICS

__all__ = ["Target", "Targets", "model_transform", "is_hardware", "resolve_targets", "space_from_config", "objectives_from_config"]


def model_transform(metric: str) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """``(f, increasing)``: the surrogate models ``f(value)``."""
    if metric == "error":
        return (lambda v: np.log(np.maximum(np.asarray(v, dtype=float), 1e-6))), True
    if metric == "accuracy":
        return (lambda v: np.log(np.maximum(1.0 - np.asarray(v, dtype=float), 1e-6))), False
    return (lambda v: np.asarray(v, dtype=float)), True


def is_hardware(metric: str) -> bool:
    info = METRICS.get(metric)
    return info is not None and info.kind == "hardware"


@dataclass(frozen=True)
class Target:
    """An objective or constraint as the sampler models it.

    Attributes:
        metric: the metric name (or ``__value<i>`` / ``__constraint:<name>`` on a plain study).
        hardware: known before training (measured or predicted by the cost model).
        lower_better: in model space (after the transform).
        bound: constraints only, in model space.
        below: a constraint holds when the model value is <= ``bound`` (else >=).
        constraint: the study's constraint it came from (hardware constraints are screened with it).
    """

    metric: str
    hardware: bool
    lower_better: bool
    bound: float | None = None
    below: bool = True
    constraint: Constraint | None = None

    def model_value(self, values: Mapping[str, float]) -> float | None:
        """The target's value in model space from a trial's values, or None."""
        if self.metric not in values:
            return None
        v = values[self.metric]
        if self.hardware or self.metric.startswith("__"):
            return v
        f, _ = model_transform(self.metric)
        out = float(f(np.array([v]))[0])
        return out if math.isfinite(out) else None

    def satisfied(self, value: float) -> bool:
        assert self.bound is not None
        return value <= self.bound if self.below else value >= self.bound


@dataclass(frozen=True)
class Targets:
    """The study's objectives and constraints as targets; ``plain`` when read from Optuna's values."""

    objectives: tuple[Target, ...]
    constraints: tuple[Target, ...]
    plain: bool

    @property
    def hardware_constraints(self) -> list[Target]:
        return [c for c in self.constraints if c.hardware]

    @property
    def quality_constraints(self) -> list[Target]:
        return [c for c in self.constraints if not c.hardware]

    @property
    def hardware_metrics(self) -> list[str]:
        """Hardware metrics the cost model must predict (constrained ones, then hardware objectives)."""
        ms = [c.metric for c in self.hardware_constraints] + [t.metric for t in self.objectives if t.hardware]
        return list(dict.fromkeys(ms))

    def hardware_feasible(self, values: Mapping[str, float]) -> bool | None:
        """Whether measured values meet every hardware constraint (None: not all measured)."""
        for c in self.hardware_constraints:
            if c.metric not in values:
                return None
            if not c.satisfied(values[c.metric]):
                return False
        return True

    def feasible(self, values: Mapping[str, float]) -> bool:
        """Whether a trained network's values meet every constraint."""
        for c in self.constraints:
            v = c.model_value(values)
            if v is None or not c.satisfied(v):
                return False
        return True


def resolve_targets(
    objectives: Sequence[Objective] | None,
    constraints: Sequence[Constraint] | None,
    directions: Sequence[Any],
    constraint_keys: Sequence[str],
) -> Targets:
    """Targets of the study's definition; without one, Optuna's ``directions`` and constraint names."""
    if objectives is None:
        objs = tuple(Target(f"__value{i}", False, getattr(d, "name", str(d)).upper() == "MINIMIZE") for i, d in enumerate(directions))
    else:
        objs = tuple(
            Target(o.metric, is_hardware(o.metric), (o.direction == "minimize") == model_transform(o.metric)[1]) for o in objectives
        )
    if constraints is None:
        cons = tuple(Target(f"__constraint:{k}", False, True, 0.0, True) for k in sorted(constraint_keys))
    else:
        out = []
        for c in constraints:
            f, inc = model_transform(c.metric)
            bound = float(f(np.array([c.bound]))[0])
            out.append(Target(c.metric, is_hardware(c.metric), True, bound, (c.op in ("<=", "<")) == inc, c))
        cons = tuple(out)
    return Targets(objs, cons, objectives is None)


def space_from_config(d: Mapping[str, Any]) -> SearchSpace:
    """The space stored in a study's ``hwtune:config``."""
    spec: dict[str, Any] = {}
    roles: dict[str, str] = {}
    for name, e in d.items():
        if isinstance(e, Mapping) and e.get("type") == "fixed":
            spec[name] = e.get("value")
            roles[name] = str(e.get("role", "training"))
        else:
            spec[name] = dict(e)
    return SearchSpace.from_dict(spec, default_roles=roles)


def objectives_from_config(items: Sequence[str]) -> list[Objective]:
    """Objectives stored as ``"minimize error"`` texts."""
    out = []
    for s in items:
        direction, _, metric = str(s).partition(" ")
        out.extend(parse_objectives({direction: metric.strip()}))
    return out
