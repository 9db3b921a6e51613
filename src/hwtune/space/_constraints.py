"""Constraint and objective text: ``latency_ms <= 5``, ``minimize: [error, latency_ms]``."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from hwtune.exceptions import ConfigError
from hwtune.space._metrics import METRICS, metric_info

__all__ = ["Constraint", "Objective", "parse_constraint", "parse_constraints", "parse_objectives"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """A bound on one metric, e.g. ``latency_ms <= 5``.

    Attributes:
        metric: a name of the metric vocabulary.
        op: one of ``<=``, ``<``, ``>=``, ``>``.
        bound: the limit, in the metric's unit.
    """

    metric: str
    op: str
    bound: float

    @property
    def is_hardware(self) -> bool:
        """True when the constraint can be checked before training (a hardware metric)."""
        return METRICS[self.metric].kind == "hardware"

    def satisfied(self, value: float) -> bool:
        """Whether ``value`` meets the constraint (NaN never does)."""
        return not math.isnan(value) and _OPS[self.op](value, self.bound)

    def violation(self, value: float) -> float:
        """Relative violation: <= 0 when satisfied, > 0 by how much (as a share of the bound).

        This is the sign convention of Optuna's ``constraints_func``.
        """
        scale = abs(self.bound) if self.bound != 0 else 1.0
        if self.op in ("<=", "<"):
            v = (value - self.bound) / scale
        else:
            v = (self.bound - value) / scale
        if not self.satisfied(value) and v <= 0:  # strict bound hit exactly
            v = 1e-12
        return v

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str, field: str = "constraints") -> Constraint:
    """Parse ``"<metric> <op> <number>"``; errors name the field and the fix."""
    if not isinstance(text, str):
        raise ConfigError(field, f"expected text like 'latency_ms <= 5', got {text!r}.")
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ConfigError(
            field,
            f"cannot parse constraint {text!r}.",
            "write '<metric> <op> <number>' with op one of <=, <, >=, >, e.g. 'latency_ms <= 5'.",
        )
    name, op, number = m.groups()
    metric_info(name, field)
    try:
        bound = float(number)
    except ValueError:
        raise ConfigError(field, f"{number!r} in {text!r} is not a number.") from None
    if not math.isfinite(bound):
        raise ConfigError(field, f"bound of {text!r} must be finite.")
    return Constraint(name, op, bound)


def parse_constraints(items: Sequence[str] | str | None, field: str = "constraints") -> list[Constraint]:
    """Parse a list of constraint texts (or one text)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out = [parse_constraint(t, f"{field}[{i}]") for i, t in enumerate(items)]
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(out):
        if (c.metric, c.op) in seen:
            raise ConfigError(f"{field}[{i}]", f"{c.metric} {c.op} is given twice.", "keep one bound per metric and direction.")
        seen.add((c.metric, c.op))
    return out


@dataclass(frozen=True)
class Objective:
    """One metric to optimize and its direction."""

    metric: str
    direction: Literal["minimize", "maximize"]

    def __str__(self) -> str:
        return f"{self.direction} {self.metric}"


def parse_objectives(spec: Any, field: str = "objective") -> list[Objective]:
    """Parse ``{"minimize": "error"}``, ``{"minimize": ["error", "latency_ms"]}``, ``"minimize: error"``.

    A list of such items is accepted too (mixing directions).
    """
    if isinstance(spec, str):
        if ":" not in spec:
            raise ConfigError(field, f"cannot parse objective {spec!r}.", "write 'minimize: error' or 'maximize: accuracy'.")
        direction, _, rest = spec.partition(":")
        rest = rest.strip()
        names: Any = [s.strip() for s in rest.strip("[]").split(",")] if rest.startswith("[") else rest
        spec = {direction.strip(): names}
    if isinstance(spec, list) and all(isinstance(s, (dict, str)) for s in spec) and spec and not all(isinstance(s, str) and ":" not in s for s in spec):
        out: list[Objective] = []
        for i, s in enumerate(spec):
            out.extend(parse_objectives(s, f"{field}[{i}]"))
        return _check_unique(out, field)
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(field, f"expected 'minimize: <metric>' or a mapping, got {spec!r}.", "write e.g. {minimize: error}.")
    out = []
    for direction, names in spec.items():
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"{field}.{direction}", "unknown direction.", "use 'minimize' or 'maximize'.")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{field}.{direction}", f"expected a metric name or a list of them, got {names!r}.")
        for n in names:
            metric_info(n, f"{field}.{direction}")
            out.append(Objective(n, direction))  # type: ignore[arg-type]
    return _check_unique(out, field)


def _check_unique(objs: list[Objective], field: str) -> list[Objective]:
    names = [o.metric for o in objs]
    if len(set(names)) != len(names):
        raise ConfigError(field, f"a metric appears twice in {names}.", "list each metric once.")
    return objs
