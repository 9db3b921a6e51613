"""Turning hardware-relevant params into a feature matrix for the cost models."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam, SearchSpace
from hwtune.space._candidates import Encoder, _choice_indices

__all__ = ["Featurizer", "DerivedFn"]

_RANGES: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
"""Derived-feature ranges over a space, by (derived callable, space): computed once per process."""

DerivedFn = Callable[[Mapping[str, Any]], Mapping[str, float]]
"""``derived(params) -> {feature name: value}``: features a model family computes without training
(FLOPs, parameter count, activation sizes, layer counts)."""


class Featurizer:
    """Feature matrix of the hardware-relevant params of a search space.

    Columns, in order: for each hardware-relevant searched param (``space.hardware_names()``, fixed
    params left out), a one-hot block for a categorical (one column per choice), or one column in
    [0, 1] for an int/float (scaled over [low, high], in log space when the param is log); a 0/1
    "active" column after each conditional param (an inactive param has zeros in its own columns);
    then the derived features, sorted by name (``log1p`` applied when ``log_derived``).

    With few observations, fewer features predict better: when the derived features describe the
    cost well (layer counts by type, FLOPs), ``include_params=False`` leaves the param columns out.

    Args:
        space: the search space.
        derived: optional callable giving extra features from a (complete) param dict.
        log_derived: apply ``log1p`` to derived features (they must then be > -1); useful for
            quantities that span decades such as FLOPs.
        derived_name: a label stored with saved models, so that a later study can check that it
            supplies the same derived features.
        include_params: include the param columns (needs ``derived`` when False).
    """

    def __init__(
        self,
        space: SearchSpace,
        derived: DerivedFn | None = None,
        *,
        log_derived: bool = False,
        derived_name: str | None = None,
        include_params: bool = True,
    ) -> None:
        if not include_params and derived is None:
            raise ConfigError("include_params", "without params and without derived features there is nothing to learn from.", "pass derived= or keep include_params=True.")
        self.include_params = bool(include_params)
        self.space = space
        self.derived = derived
        self.log_derived = log_derived
        self.derived_name = derived_name or (getattr(derived, "__name__", "derived") if derived else None)
        self.param_names: list[str] = [n for n in space.hardware_names() if not isinstance(space[n], FixedParam)]
        names: list[str] = []
        for n in self.param_names:
            p = space[n]
            if isinstance(p, CategoricalParam):
                names.extend(f"{n}={c!r}" for c in p.choices)
            else:
                names.append(n)
            if p.condition is not None:
                names.append(f"{n}:active")
        self._param_columns = names if include_params else []
        self._derived_keys: list[str] | None = None
        self._derived_range: tuple[np.ndarray, np.ndarray] | None = None
        self._derived_cache: dict[tuple[Any, ...], list[float]] = {}
        self._encoder = Encoder(space, self.param_names)

    # -- columns -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Names of the columns (derived ones known after the first :meth:`transform`)."""
        return self._param_columns + [f"derived:{k}" for k in (self._derived_keys or [])]

    @property
    def n_param_features(self) -> int:
        """Number of columns that come from the params themselves (not derived)."""
        return len(self._param_columns)

    def transform(self, params_list: Sequence[Mapping[str, Any]], validate: bool = True) -> np.ndarray:
        """Features of candidates (a param at a time over all candidates: thousands per proposal).

        Args:
            params_list: n param dicts (extra keys, e.g. training params, are ignored).
            validate: check every value first (off only for candidates drawn from the space itself).

        Returns:
            Array of shape (n, d) with d = ``len(feature_names)``.

        Raises:
            ConfigError: a hardware-relevant param is missing, out of its range or not a choice.
        """
        params_list = list(params_list)
        for i, p in enumerate(params_list):
            if not isinstance(p, Mapping):
                raise ConfigError(f"candidates[{i}]", f"expected a dict of params, got {type(p).__name__}.")
        if not params_list:
            return np.zeros((0, len(self.feature_names)))
        if self.include_params:
            if validate:
                self._check(params_list)
            P = self._encoder.encode(params_list)
        else:
            P = np.zeros((len(params_list), 0))
        if self.derived is None:
            return P
        D = np.array([self._cached_derived_row(p, i) for i, p in enumerate(params_list)], dtype=float)
        return np.hstack([P, D.reshape(len(params_list), -1)])

    def _check(self, params_list: Sequence[Mapping[str, Any]]) -> None:
        """Every hardware-relevant param present (unless conditional), a choice, or a finite number
        (a param at a time; a bad value found is checked again alone for a precise error)."""
        for n in self.param_names:
            p = self.space[n]
            col = [c.get(n) for c in params_list]
            if p.condition is None and None in col:
                i = col.index(None)
                raise ConfigError(
                    f"candidates[{i}].{n}",
                    "hardware-relevant param is missing.",
                    f"pass every param of {self.param_names} (the cost depends on each).",
                )
            if isinstance(p, CategoricalParam):
                present = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
                bad = np.flatnonzero(present & (_choice_indices(p, col) < 0))
                if len(bad):
                    self._choice_index(p, n, col[bad[0]], int(bad[0]))
                continue
            assert isinstance(p, (IntParam, FloatParam))
            try:
                if all(type(v) in (int, float) or v is None for v in col):
                    x = np.array([np.nan if v is None else v for v in col], dtype=float)
                    present = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
                    if np.isfinite(x[present]).all() and (not p.log or (x[present] > 0).all()):
                        continue
            except (TypeError, ValueError):
                pass
            for i, v in enumerate(col):  # the slow path names the first bad value
                if v is not None:
                    self._scale(p, n, v, i)

    def derived_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest value ``(k,)`` and range ``(k,)`` of each derived feature over the search space (the
        whole space when it has at most 20,000 configurations, else 2,000 seeded random draws); for
        models whose priors assume inputs in about [0, 1]."""
        if self._derived_range is None:
            import json

            from hwtune.space._candidates import enumerate_space, random_configs

            key = (self.derived, json.dumps(self.space.to_dict(), sort_keys=True, default=str))
            try:
                cached = _RANGES.get(key)
            except TypeError:  # an unhashable callable: computed per featurizer
                key, cached = None, None
            if cached is None:
                configs = enumerate_space(self.space, 20_000) or random_configs(self.space, 2000, np.random.default_rng(0))
                D = np.array([self._derived_row(c, i) for i, c in enumerate(configs)], dtype=float)
                lo, hi = D.min(0), D.max(0)
                cached = (lo, np.where(hi > lo, hi - lo, 1.0))
                if key is not None:
                    if len(_RANGES) > 16:
                        _RANGES.clear()
                    _RANGES[key] = cached
            self._derived_range = cached
        return self._derived_range

    @staticmethod
    def _choice_index(p: CategoricalParam, name: str, value: Any, i: int) -> int:
        for j, c in enumerate(p.choices):
            if c == value and isinstance(c, bool) == isinstance(value, bool):
                return j
        raise ConfigError(
            f"candidates[{i}].{name}",
            f"{value!r} is not one of the choices {list(p.choices)}.",
            "use a value from the search space (the cost model was built for it).",
        )

    @staticmethod
    def _scale(p: IntParam | FloatParam, name: str, value: Any, i: int) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"candidates[{i}].{name}", f"expected a number, got {value!r}.")
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"candidates[{i}].{name}", f"expected a finite number, got {value!r}.")
        lo, hi = float(p.low), float(p.high)
        if p.log:
            if v <= 0:
                raise ConfigError(f"candidates[{i}].{name}", f"log-scaled param needs a value > 0, got {value!r}.")
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)

    def _cached_derived_row(self, params: Mapping[str, Any], i: int) -> list[float]:
        """:meth:`_derived_row`, remembered per architecture (a sampler screens the same ones again
        and again; derived features depend on the hardware-relevant params only)."""
        key = tuple(map(params.get, self.param_names))
        try:
            return self._derived_cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: no caching
            return self._derived_row(params, i)
        row = self._derived_row(params, i)
        if len(self._derived_cache) >= 200_000:
            self._derived_cache.clear()
        self._derived_cache[key] = row
        return row

    def _derived_row(self, params: Mapping[str, Any], i: int) -> list[float]:
        assert self.derived is not None
        try:
            d = dict(self.derived(params))
        except Exception as e:  # noqa: BLE001 - the user's callable; name it in the error
            raise ConfigError(
                f"candidates[{i}]",
                f"derived features ({self.derived_name}) failed: {type(e).__name__}: {e}.",
                "fix the derived-feature function or leave it out.",
            ) from e
        if self._derived_keys is None:
            self._derived_keys = sorted(d)
        elif sorted(d) != self._derived_keys:
            raise ConfigError(
                f"candidates[{i}]",
                f"derived features changed names: got {sorted(d)}, expected {self._derived_keys}.",
                "return the same keys for every candidate.",
            )
        vals = []
        for k in self._derived_keys:
            v = float(d[k])
            if self.log_derived:
                v = math.log1p(v) if v > -1 else float("nan")
            if not math.isfinite(v):
                raise ConfigError(f"candidates[{i}].derived:{k}", f"non-finite derived feature {d[k]!r}.")
            vals.append(v)
        return vals

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description (the callable itself is not stored, only its label and keys)."""
        return {
            "space": self.space.to_dict(),
            "derived_name": self.derived_name,
            "derived_keys": self._derived_keys,
            "log_derived": self.log_derived,
            "include_params": self.include_params,
        }
