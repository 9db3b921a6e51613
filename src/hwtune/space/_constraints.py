"""Constraint and objective text: ``latency_ms <= 5``, ``minimize: [error, latency_ms]``."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from hwtune.exceptions import ConfigError
from hwtune.space._metrics import METRICS, metric_info

__all__ = ["Constraint", "Objective", "UnresolvedLimitError", "parse_constraint", "parse_constraints", "parse_objectives"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+|[qQ][-+0-9.eE]*)\s*$")


class UnresolvedLimitError(ConfigError, AttributeError):
    """A relative limit (``latency_ms <= q30``) was evaluated before it was calibrated on the device.

    Also an ``AttributeError``: ``getattr(c, "bound", None)`` is ``None`` for an unresolved limit
    (``Constraint.limit`` says so directly).
    """


@dataclass(frozen=True)
class Constraint:
    """A bound on one metric, e.g. ``latency_ms <= 5``, or relative to the device, ``latency_ms <= q30``.

    A *relative* limit ``q30`` is the 30 % quantile of the metric over the search space on the study's
    device. It holds no number until it is calibrated (:meth:`resolve`: the study measures a few random
    architectures once, at its start, and stores the absolute number with the study); until then
    :attr:`bound`, :meth:`satisfied` and :meth:`violation` refuse to answer.

    Attributes:
        metric: a name of the metric vocabulary.
        op: one of ``<=``, ``<``, ``>=``, ``>``.
        limit: the absolute limit in the metric's unit (``None`` while a relative limit is unresolved).
        quantile: for a relative limit, the quantile as a share in (0, 1) (``q30`` -> 0.3); else ``None``.
    """

    metric: str
    op: str
    limit: float | None
    quantile: float | None = None

    @property
    def is_hardware(self) -> bool:
        """True when the constraint can be checked before training (a hardware metric)."""
        return METRICS[self.metric].kind == "hardware"

    @property
    def is_relative(self) -> bool:
        """True for a limit relative to the device (``q30``), resolved or not."""
        return self.quantile is not None

    @property
    def is_resolved(self) -> bool:
        """True when the constraint has an absolute limit (always, unless relative and not calibrated)."""
        return self.limit is not None

    @property
    def bound(self) -> float:
        """The absolute limit, in the metric's unit.

        Raises:
            UnresolvedLimitError: for a relative limit that has not been calibrated yet.
        """
        if self.limit is None:
            raise UnresolvedLimitError(
                "constraints",
                f"the relative limit '{self.text}' has no absolute value yet: it must be calibrated on the device "
                "before any trial is checked against it.",
                "run the study through Study.optimize (it calibrates relative limits before the first trial), "
                "or resolve the constraint with Constraint.resolve(value).",
            )
        return self.limit

    @property
    def text(self) -> str:
        """The constraint as written (``latency_ms <= q30``, ``latency_ms <= 1.5``): what a study's
        definition stores and a resume compares."""
        if self.quantile is not None:
            return f"{self.metric} {self.op} q{_percent(self.quantile)}"
        return f"{self.metric} {self.op} {self.bound:g}"

    def resolve(self, limit: float) -> "Constraint":
        """This relative constraint with its calibrated absolute ``limit`` (a new object)."""
        if self.quantile is None:
            raise ValueError(f"'{self.text}' is an absolute limit: there is nothing to resolve.")
        limit = float(limit)
        if not math.isfinite(limit):
            raise ValueError(f"the calibrated limit of '{self.text}' must be finite, got {limit!r}.")
        return Constraint(self.metric, self.op, limit, self.quantile)

    def satisfied(self, value: float) -> bool:
        """Whether ``value`` meets the constraint (NaN never does)."""
        bound = self.bound
        return not math.isnan(value) and _OPS[self.op](value, bound)

    def violation(self, value: float) -> float:
        """Relative violation: <= 0 when satisfied, > 0 by how much (as a share of the bound).

        This is the sign convention of Optuna's ``constraints_func``.

        Raises:
            UnresolvedLimitError: for a relative limit that has not been calibrated yet.
        """
        bound = self.bound
        scale = abs(bound) if bound != 0 else 1.0
        if self.op in ("<=", "<"):
            v = (value - bound) / scale
        else:
            v = (bound - value) / scale
        if not self.satisfied(value) and v <= 0:  # strict bound hit exactly
            v = 1e-12
        return v

    def __str__(self) -> str:
        if self.quantile is None:
            return self.text
        if self.limit is None:
            return f"{self.text} (not calibrated yet)"
        return f"{self.metric} {self.op} {self.limit:.4g} (q{_percent(self.quantile)} on this device)"


def _percent(q: float) -> str:
    return f"{100.0 * q:.6g}"


def parse_constraint(text: str, field: str = "constraints") -> Constraint:
    """Parse ``"<metric> <op> <number>"`` or ``"<metric> <op> q<NN>"`` (a limit relative to the
    device: the NN % quantile of a hardware metric over the space, 0 < NN < 100); errors name the
    field and the fix."""
    if not isinstance(text, str):
        raise ConfigError(field, f"expected text like 'latency_ms <= 5', got {text!r}.")
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ConfigError(
            field,
            f"cannot parse constraint {text!r}.",
            "write '<metric> <op> <number>' with op one of <=, <, >=, >, e.g. 'latency_ms <= 5', "
            "or a limit relative to the device such as 'latency_ms <= q30'.",
        )
    name, op, number = m.groups()
    info = metric_info(name, field)
    if number[:1] in ("q", "Q"):
        try:
            percent = float(number[1:])
        except ValueError:
            percent = math.nan
        if not (0.0 < percent < 100.0):
            raise ConfigError(
                field,
                f"{number!r} in {text!r} is not a quantile.",
                "write q<NN> with 0 < NN < 100, e.g. 'latency_ms <= q30' (the 30 % quantile of the space's latency on this device).",
            )
        if info.kind != "hardware":
            raise ConfigError(
                field,
                f"{text!r}: a relative limit ({number}) is a quantile of a hardware metric measured on the device "
                f"before training; {name} is a {info.kind} metric, known only after training.",
                f"give {name} an absolute number, e.g. '{name} {op} 0.05', or put the relative limit on a hardware metric "
                "such as 'latency_ms <= q30'.",
            )
        return Constraint(name, op, None, percent / 100.0)
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
