"""A search space: named params with roles, conditions, loading from plain dicts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from hwtune.exceptions import ConfigError
from hwtune.space._params import (
    ROLES,
    CategoricalParam,
    Condition,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["SearchSpace"]

_KEYS = {
    "int": {"type", "low", "high", "log", "step", "role", "condition"},
    "float": {"type", "low", "high", "log", "step", "role", "condition"},
    "categorical": {"type", "choices", "role", "condition"},
    "fixed": {"type", "value", "role", "condition"},
}


class SearchSpace:
    """An ordered collection of named params.

    Params whose ``role`` is ``architecture`` or ``compression`` are *hardware-relevant*: they alone
    decide a network's hardware cost, so a cost measured once for them holds for every training
    setting. ``training`` params only affect training.

    A param with a ``condition`` is active only when the condition holds on params listed before it.
    """

    def __init__(self, params: Mapping[str, Param]) -> None:
        self._params: dict[str, Param] = dict(params)
        seen: list[str] = []
        for name, p in self._params.items():
            p.check(name)
            if p.role not in ROLES:
                raise ConfigError(f"{name}.role", f"unknown role {p.role!r}.", f"use one of {', '.join(ROLES)}.")
            if p.condition is not None and p.condition.param not in seen:
                raise ConfigError(
                    f"{name}.condition",
                    f"refers to {p.condition.param!r}, which is not a param listed before {name!r}.",
                    "list the param it depends on first.",
                )
            seen.append(name)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], field: str = "space", default_roles: Mapping[str, str] | None = None) -> "SearchSpace":
        """Build a space from ``{name: value | {type: int|float|categorical, ...}}``.

        A plain value (number, string, bool) fixes the param. ``default_roles`` gives the role of a
        param whose entry does not say (a model family knows which of its params are architecture).
        """
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(field, "expected a non-empty mapping of param names to ranges.")
        default_roles = default_roles or {}
        params: dict[str, Param] = {}
        for name, entry in spec.items():
            f = f"{field}.{name}"
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f, "param names must be identifiers (letters, digits, underscores).")
            role = default_roles.get(name, "training")
            if not isinstance(entry, Mapping):
                if isinstance(entry, (list, tuple)):
                    raise ConfigError(f, "a bare list is ambiguous.", f"write {{type: categorical, choices: {list(entry)}}}.")
                params[name] = FixedParam(role=role, value=entry)  # type: ignore[arg-type]
                continue
            kind = entry.get("type")
            if kind not in _KEYS:
                raise ConfigError(f"{f}.type", f"unknown or missing type {kind!r}.", "use int, float, categorical (or fixed).")
            unknown = set(entry) - _KEYS[kind]
            if unknown:
                raise ConfigError(f"{f}.{sorted(unknown)[0]}", f"unknown key for a {kind} param.", f"allowed keys: {', '.join(sorted(_KEYS[kind]))}.")
            role = entry.get("role", role)
            if role not in ROLES:
                raise ConfigError(f"{f}.role", f"unknown role {role!r}.", f"use one of {', '.join(ROLES)}.")
            cond = Condition.parse(entry["condition"], f"{f}.condition") if "condition" in entry else None
            if kind == "fixed":
                params[name] = FixedParam(role=role, condition=cond, value=entry.get("value"))
                continue
            if kind == "categorical":
                choices = entry.get("choices")
                if not isinstance(choices, list):
                    raise ConfigError(f"{f}.choices", f"expected a list, got {choices!r}.")
                params[name] = CategoricalParam(role=role, condition=cond, choices=tuple(choices))
                continue
            for key in ("low", "high"):
                if key not in entry:
                    raise ConfigError(f"{f}.{key}", "missing.", f"give {key} for a {kind} param.")
                v = entry[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{f}.{key}", f"expected a number, got {v!r}.")
                if kind == "int" and not float(v).is_integer():
                    raise ConfigError(f"{f}.{key}", f"expected an integer, got {v!r}.", "use type: float for real values.")
            log = entry.get("log", False)
            if not isinstance(log, bool):
                raise ConfigError(f"{f}.log", f"expected true or false, got {log!r}.")
            if kind == "int":
                step = entry.get("step", 1)
                if isinstance(step, bool) or not isinstance(step, int):
                    raise ConfigError(f"{f}.step", f"expected an integer, got {step!r}.")
                params[name] = IntParam(role=role, condition=cond, low=int(entry["low"]), high=int(entry["high"]), log=log, step=step)
            else:
                step = entry.get("step")
                if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))):
                    raise ConfigError(f"{f}.step", f"expected a number, got {step!r}.")
                params[name] = FloatParam(
                    role=role, condition=cond, low=float(entry["low"]), high=float(entry["high"]), log=log,
                    step=None if step is None else float(step),
                )
        try:
            return cls(params)
        except ConfigError as e:
            if not e.field.startswith(field):
                raise ConfigError(f"{field}.{e.field}", e.problem, e.fix) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (round-trips through :meth:`from_dict`), stored with the study."""
        out: dict[str, Any] = {}
        for name, p in self._params.items():
            if isinstance(p, FixedParam):
                d: dict[str, Any] = {"type": "fixed", "value": p.value}
            elif isinstance(p, CategoricalParam):
                d = {"type": "categorical", "choices": list(p.choices)}
            else:
                d = {"type": "int" if isinstance(p, IntParam) else "float", "low": p.low, "high": p.high, "log": p.log}
                if p.step not in (None, 1):
                    d["step"] = p.step
            d["role"] = p.role
            if p.condition is not None:
                d["condition"] = str(p.condition)
            out[name] = d
        return out

    # -- access ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def items(self) -> Iterator[tuple[str, Param]]:
        return iter(self._params.items())

    def hardware_names(self) -> list[str]:
        """Names of params that decide hardware cost (architecture and compression)."""
        return [n for n, p in self._params.items() if p.role != "training"]

    # -- sampling ----------------------------------------------------------------------------
    def suggest(self, trial: "optuna.trial.BaseTrial") -> dict[str, Any]:
        """Ask ``trial`` for every active param, in order; returns all params incl. fixed ones."""
        params: dict[str, Any] = {}
        for name, p in self._params.items():
            if p.condition is not None and not p.condition.holds(params):
                continue
            if isinstance(p, FixedParam):
                params[name] = p.value
            elif isinstance(p, IntParam):
                params[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, FloatParam):
                params[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
            else:
                params[name] = trial.suggest_categorical(name, p.choices)
        return params

    def complete(self, searched: Mapping[str, Any]) -> dict[str, Any]:
        """Add fixed values to searched params (e.g. Optuna's ``trial.params``), dropping inactive ones."""
        params: dict[str, Any] = {}
        for name, p in self._params.items():
            if p.condition is not None and not p.condition.holds(params):
                continue
            if isinstance(p, FixedParam):
                params[name] = p.value
            elif name in searched:
                params[name] = searched[name]
        return params

    def hardware_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The hardware-relevant part of ``params``."""
        return {n: params[n] for n in self.hardware_names() if n in params}

    def hardware_key(self, params: Mapping[str, Any]) -> str:
        """Canonical text of the hardware-relevant params: equal keys mean equal hardware cost."""
        return json.dumps(self.hardware_params(params), sort_keys=True, default=str)

    def extreme_points(self) -> list[dict[str, Any]]:
        """A few points that stress a model builder: all params at low, all at high, each choice.

        Used to check before a study starts that the model family builds over the whole space.
        """
        points: list[dict[str, Any]] = []
        n_max = max((len(p.corners()) for p in self._params.values()), default=1)
        for i in range(n_max):
            chosen: dict[str, Any] = {}
            for name, p in self._params.items():
                if p.condition is not None and not p.condition.holds(chosen):
                    continue
                c = p.corners()
                chosen[name] = c[min(i, len(c) - 1)]
            points.append(chosen)
        return points
