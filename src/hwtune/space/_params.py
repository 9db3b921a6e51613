"""Parameter types of a search space: int, float (linear or log), categorical, conditional."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Union

from hwtune.exceptions import ConfigError

if TYPE_CHECKING:
    import optuna.distributions as od

__all__ = ["Role", "Condition", "IntParam", "FloatParam", "CategoricalParam", "FixedParam", "Param", "ROLES"]

Role = Literal["architecture", "compression", "training"]
ROLES: tuple[str, ...] = ("architecture", "compression", "training")

_COND_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|<=|>=|<|>)\s*([^<>=!\s].*?)\s*$")
_COND_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Condition:
    """A parameter is active only when another one compares true, e.g. ``conv_layers >= 2``."""

    param: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str, field_name: str) -> "Condition":
        m = _COND_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise ConfigError(
                field_name,
                f"cannot parse condition {text!r}.",
                "write '<param> <op> <value>', e.g. 'conv_layers >= 2' or \"optimizer == 'sgd'\".",
            )
        name, op, raw = m.groups()
        raw = raw.strip()
        value: Any
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            value = raw[1:-1]
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        return cls(name, op, value)

    def holds(self, params: dict[str, Any]) -> bool:
        """Whether the condition is true for the params chosen so far (absent param: false)."""
        if self.param not in params:
            return False
        return self.test(params[self.param])

    def test(self, value: Any) -> bool:
        """Whether the condition is true when its param has ``value`` (incomparable types: false)."""
        try:
            return bool(_COND_OPS[self.op](value, self.value))
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"{self.param} {self.op} {self.value!r}"


@dataclass(frozen=True)
class _Base:
    role: Role = "training"
    condition: Condition | None = None


@dataclass(frozen=True)
class IntParam(_Base):
    """An integer in [low, high], optionally log-scaled or stepped."""

    low: int = 0
    high: int = 1
    log: bool = False
    step: int = 1

    def check(self, name: str) -> None:
        if self.low > self.high:
            raise ConfigError(f"{name}", f"inverted range: low={self.low} > high={self.high}.", "swap low and high.")
        if self.low == self.high:
            raise ConfigError(f"{name}", f"empty range: low == high == {self.low}.", f"write '{name}: {self.low}' to fix the value, or widen the range.")
        if self.log and self.low <= 0:
            raise ConfigError(f"{name}.low", f"log scale needs low > 0, got {self.low}.", "raise low to at least 1 or set log: false.")
        if self.step < 1:
            raise ConfigError(f"{name}.step", f"step must be >= 1, got {self.step}.")
        if self.log and self.step != 1:
            raise ConfigError(f"{name}.step", "log scale and step cannot be combined.", "drop step or set log: false.")

    def distribution(self) -> "od.BaseDistribution":
        import optuna.distributions as od  # Optuna only where a distribution is asked for

        return od.IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def corners(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class FloatParam(_Base):
    """A float in [low, high], optionally log-scaled or stepped."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    step: float | None = None

    def check(self, name: str) -> None:
        for attr in ("low", "high"):
            if not math.isfinite(getattr(self, attr)):
                raise ConfigError(f"{name}.{attr}", "must be a finite number.")
        if self.low > self.high:
            raise ConfigError(f"{name}", f"inverted range: low={self.low} > high={self.high}.", "swap low and high.")
        if self.low == self.high:
            raise ConfigError(f"{name}", f"empty range: low == high == {self.low}.", f"write '{name}: {self.low}' to fix the value, or widen the range.")
        if self.log and self.low <= 0:
            raise ConfigError(f"{name}.low", f"log scale needs low > 0, got {self.low}.", "use a positive low or set log: false.")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ConfigError(f"{name}.step", "step must be > 0 and cannot be combined with log.")

    def distribution(self) -> "od.BaseDistribution":
        import optuna.distributions as od  # Optuna only where a distribution is asked for

        return od.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def corners(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class CategoricalParam(_Base):
    """One of a list of choices (numbers, strings, booleans)."""

    choices: tuple[Any, ...] = field(default_factory=tuple)

    def check(self, name: str) -> None:
        if len(self.choices) == 0:
            raise ConfigError(f"{name}.choices", "empty list of choices.", "give at least two choices.")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ConfigError(f"{name}.choices", f"duplicate choices in {list(self.choices)}.", "list each choice once.")
        for c in self.choices:
            if not isinstance(c, (int, float, str, bool)) and c is not None:
                raise ConfigError(f"{name}.choices", f"choice {c!r} is not a number, string or boolean.")

    def distribution(self) -> "od.BaseDistribution":
        import optuna.distributions as od  # Optuna only where a distribution is asked for

        return od.CategoricalDistribution(self.choices)

    def corners(self) -> list[Any]:
        return list(self.choices)


@dataclass(frozen=True)
class FixedParam(_Base):
    """A value that is not searched but passed to the model builder or trainer."""

    value: Any = None

    def check(self, name: str) -> None:
        return None

    def distribution(self) -> None:
        return None

    def corners(self) -> list[Any]:
        return [self.value]


Param = Union[IntParam, FloatParam, CategoricalParam, FixedParam]
