"""``HyperParameters``: the ``hp`` a KerasTuner ``build_fn(hp)`` is written against.

``hp.Int``, ``hp.Float``, ``hp.Choice``, ``hp.Boolean`` and ``hp.Fixed`` take KerasTuner's arguments
and return the trial's value (its default while the space is being discovered). Each call also records
the param, so that one call of ``build_fn`` with the defaults gives hwtune the search space; the role
of a param is where it was first asked for: inside ``build_fn`` it is *architecture* (its hardware cost
is measured before training), inside a ``fit`` override it is *training*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hwtune.exceptions import ConfigError
from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam
from hwtune.space._params import Param

__all__ = ["HyperParameters"]


class HyperParameters:
    """KerasTuner's ``hp``: recorded while discovering the space, then holding one trial's values.

    Args:
        values: the trial's values by name (missing ones take their defaults).
        role: the role of params first recorded through this object (``architecture`` or ``training``).
    """

    def __init__(self, values: Mapping[str, Any] | None = None, role: str = "architecture") -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.role = role
        self.space: dict[str, Param] = {}

    def _record(self, name: str, param: Param, default: Any) -> Any:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"hp {name!r}", "a hyperparameter name must be an identifier (letters, digits, underscores).", "rename it, e.g. 'units_1'.")
        known = self.space.get(name)
        if known is not None and known != param:
            raise ConfigError(f"hp {name}", f"{name!r} is declared twice with different ranges ({known} and {param}).", "declare each hyperparameter once (or give both calls the same arguments).")
        self.space[name] = param
        if name not in self.values:
            self.values[name] = default
        return self.values[name]

    def Int(self, name: str, min_value: int, max_value: int, step: int | None = None, sampling: str = "linear", default: int | None = None, **_: Any) -> int:
        log = _log(name, sampling)
        p = IntParam(role=self.role, low=int(min_value), high=int(max_value), log=log, step=1 if log or step is None else int(step))  # type: ignore[arg-type]
        return int(self._record(name, p, int(min_value) if default is None else int(default)))

    def Float(self, name: str, min_value: float, max_value: float, step: float | None = None, sampling: str = "linear", default: float | None = None, **_: Any) -> float:
        log = _log(name, sampling)
        p = FloatParam(role=self.role, low=float(min_value), high=float(max_value), log=log, step=None if log or step is None else float(step))  # type: ignore[arg-type]
        return float(self._record(name, p, float(min_value) if default is None else float(default)))

    def Choice(self, name: str, values: Sequence[Any], ordered: bool | None = None, default: Any = None, **_: Any) -> Any:
        choices = tuple(values)
        if not choices:
            raise ConfigError(f"hp {name}", "hp.Choice needs at least one value.", "give values=[...].")
        if len(choices) == 1:
            return self._record(name, FixedParam(role=self.role, value=choices[0]), choices[0])  # type: ignore[arg-type]
        return self._record(name, CategoricalParam(role=self.role, choices=choices), choices[0] if default is None else default)  # type: ignore[arg-type]

    def Boolean(self, name: str, default: bool = False, **_: Any) -> bool:
        return bool(self._record(name, CategoricalParam(role=self.role, choices=(False, True)), bool(default)))  # type: ignore[arg-type]

    def Fixed(self, name: str, value: Any, **_: Any) -> Any:
        return self._record(name, FixedParam(role=self.role, value=value), value)  # type: ignore[arg-type]

    def get(self, name: str) -> Any:
        if name not in self.values:
            raise KeyError(f"hyperparameter {name!r} is not defined")
        return self.values[name]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __repr__(self) -> str:
        return f"HyperParameters({self.values!r})"


def _log(name: str, sampling: str | None) -> bool:
    s = (sampling or "linear").lower()
    if s not in ("linear", "log"):
        raise ConfigError(f"hp {name}.sampling", f"sampling {sampling!r} is not supported.", "use sampling='linear' or 'log'.")
    return s == "log"
