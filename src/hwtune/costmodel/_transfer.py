"""Transfer from other devices: their costs of the same candidates as features of the target's model."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from hwtune.costmodel._base import CostModel, CostModelError, Target
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._gp import GPCostModel
from hwtune.costmodel._linear import AdditiveCostModel, BayesLinear, LinearCostModel
from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace

__all__ = ["TransferCostModel", "TableSource", "ModelSource", "CachedSource", "Source"]

FALLBACKS: dict[str, type[CostModel]] = {"additive": AdditiveCostModel, "linear": LinearCostModel, "gp": GPCostModel}
"""Models a :class:`TransferCostModel` may fall back on where the source costs are unknown, by name."""

Source = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
"""``source(params_list) -> array (n, m)``: costs of n candidates on m other devices (NaN = unknown)."""


class TableSource:
    """Costs of candidates on other devices, looked up in a table (e.g. earlier studies' measurements).

    Args:
        space: the search space (candidates are matched on their hardware-relevant params).
        params_list: the n tabulated candidates.
        values: their costs, shape (n, m), one column per device; NaN where unknown.
        names: the m device names.

    Calling it returns shape (len(candidates), m); unknown candidates get NaN rows.
    """

    def __init__(
        self,
        space: SearchSpace,
        params_list: Sequence[Mapping[str, Any]],
        values: np.ndarray,
        names: Sequence[str] | None = None,
    ) -> None:
        v = np.asarray(values, dtype=float)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or len(v) != len(params_list):
            raise ConfigError("values", f"expected shape ({len(params_list)}, m), got {np.shape(values)}.")
        self.space = space
        self.values = v
        self.names = list(names) if names is not None else [f"source_{i}" for i in range(v.shape[1])]
        if len(self.names) != v.shape[1]:
            raise ConfigError("names", f"{len(self.names)} names for {v.shape[1]} columns.")
        self._rows = {space.hardware_key(p): i for i, p in enumerate(params_list)}

    def __call__(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.full((len(params_list), self.values.shape[1]), np.nan)
        for i, p in enumerate(params_list):
            r = self._rows.get(self.space.hardware_key(p))
            if r is not None:
                out[i] = self.values[r]
        return out


class ModelSource:
    """Predicted costs on other devices, from their fitted cost models (median predictions).

    A device profiled in an earlier study has measurements for some candidates only; its fitted model
    fills in the rest and smooths its measurement noise, which makes better features than raw values.

    Args:
        models: device name -> fitted :class:`CostModel` of the same metric and space.
    """

    def __init__(self, models: Mapping[str, CostModel]) -> None:
        if not models:
            raise ConfigError("models", "no source models.", "give at least one fitted model of another device.")
        for k, m in models.items():
            if not m.is_fitted:
                raise ConfigError(f"models.{k}", "model is not fitted.", "fit it on that device's measurements first.")
        self.models = dict(models)
        self.names = list(models)

    def __call__(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        params_list = list(params_list)
        return np.column_stack([m.median(params_list) for m in self.models.values()]) if params_list else np.zeros((0, len(self.names)))


class CachedSource:
    """Wraps a costly source (e.g. one that measures each candidate on the local CPU) so that each
    candidate is asked for once; candidates are matched on their hardware-relevant params.

    Args:
        space: the search space.
        fn: ``params_list -> (n, m)`` array, called only with candidates not seen before.
        names: the m column names.
    """

    def __init__(self, space: SearchSpace, fn: Source, names: Sequence[str] | None = None) -> None:
        if not callable(fn):
            raise ConfigError("fn", f"expected a callable, got {type(fn).__name__}.")
        self.space = space
        self.fn = fn
        self.names = list(names) if names is not None else None
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def __call__(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        params_list = list(params_list)
        keys = [self.space.hardware_key(p) for p in params_list]
        todo: dict[str, Mapping[str, Any]] = {}
        for k, p in zip(keys, params_list):
            if k not in self._cache and k not in todo:
                todo[k] = p
        if todo:
            vals = np.asarray(self.fn(list(todo.values())), dtype=float)
            if vals.ndim == 1:
                vals = vals[:, None]
            if len(vals) != len(todo):
                raise CostModelError(f"the source returned {len(vals)} rows for {len(todo)} candidates.")
            for k, row in zip(todo, vals):
                self._cache[k] = row
        if not keys:
            return np.zeros((0, len(self.names or ())))
        return np.vstack([self._cache[k] for k in keys])


class TransferCostModel(CostModel):
    """A cost model of a new device whose features are the same candidates' costs on other devices.

    Devices that run the same operations rank candidates similarly, so a linear map from source-device
    costs to target costs needs few target measurements (Bayesian ridge on standardized source
    costs, optionally together with the target's own param features). Candidates whose source costs
    are unknown (NaN) are predicted by a fallback model fitted on the param features alone.

    Args:
        featurizer: a :class:`Featurizer` or :class:`SearchSpace` (for the fallback and
            ``include_params``).
        source: callable ``params_list -> (n, m)`` array of source costs (e.g. :class:`TableSource`,
            :class:`ModelSource`, or a function that measures on the local CPU).
        target: ``"linear"`` (default; source costs used as they are) or ``"log"`` (logs of both).
        include_params: also use the param features (helps only with many target observations).
        fallback: name of the model used where source costs are missing, one of :data:`FALLBACKS` (``"additive"`` by default).
        derived: derived-feature callable, used only when ``featurizer`` is a space.
    """

    name: ClassVar[str] = "transfer"
    default_target: ClassVar[Target] = "linear"

    def __init__(
        self,
        featurizer: Featurizer | SearchSpace,
        source: Source | None = None,
        *,
        target: Target | None = None,
        include_params: bool = False,
        fallback: str = "additive",
        derived: DerivedFn | None = None,
    ) -> None:
        super().__init__(featurizer, target=target, derived=derived)
        if source is None:
            raise ConfigError(
                "source",
                "a transfer model needs the other devices' costs.",
                "pass source= (a TableSource, a ModelSource or a callable params_list -> (n, m) array).",
            )
        if not callable(source):
            raise ConfigError("source", f"expected a callable, got {type(source).__name__}.")
        if fallback not in FALLBACKS:
            what = "cannot be another transfer model" if fallback == "transfer" else f"unknown fallback {fallback!r}"
            raise ConfigError("fallback", f"{what}.", f"use one of {', '.join(FALLBACKS)}.")
        self.source = source
        self.include_params = bool(include_params)
        self.fallback = fallback
        self._n_param_cols = 0

    def config(self) -> dict[str, Any]:
        return {**super().config(), "include_params": self.include_params, "fallback": self.fallback}

    def features(self, X_params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Columns: the param features (n, p), then the source costs (n, m) (logs for a log target)."""
        X_params = list(X_params)
        P = self.featurizer.transform(X_params)
        S = np.asarray(self.source(X_params), dtype=float)
        if S.ndim != 2 or len(S) != len(X_params):
            raise CostModelError(f"the source returned shape {S.shape}, expected ({len(X_params)}, m).")
        return self.combine(P, S)

    def combine(self, P: np.ndarray, S: np.ndarray) -> np.ndarray:
        """Feature matrix from precomputed param features P (n, p) and source costs S (n, m).

        Lets a benchmark compute both once for many fits (then use :meth:`fit_features`).
        """
        P = np.asarray(P, dtype=float)
        S = np.asarray(S, dtype=float)
        if self.target == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                S = np.where(S > 0, np.log(np.where(S > 0, S, 1.0)), np.nan)
        self._n_param_cols = P.shape[1]
        return np.hstack([P, S])

    def _split(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return F[:, : self._n_param_cols], F[:, self._n_param_cols :]

    def _fit(self, F: np.ndarray, z: np.ndarray) -> None:
        P, S = self._split(F)
        known = np.all(np.isfinite(S), axis=1) if S.shape[1] else np.zeros(len(S), dtype=bool)
        self.fallback_model_ = FALLBACKS[self.fallback](self.featurizer, target=self.target)
        self.fallback_model_.fit_features(P, self._from_latent(z))
        self.engine_ = None
        if known.sum() >= self.min_fit:
            G = np.hstack([P, S])[known] if self.include_params else S[known]
            self.engine_ = BayesLinear().fit(G, z[known])

    def _from_latent(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z) if self.target == "log" else z

    def _predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        P, S = self._split(F)
        fb = self.fallback_model_.predictive_features(P)
        loc, scale, dof = fb.loc.copy(), fb.scale.copy(), fb.dof.copy()
        if self.engine_ is not None:
            known = np.all(np.isfinite(S), axis=1)
            if known.any():
                G = np.hstack([P, S])[known] if self.include_params else S[known]
                loc[known], scale[known], dof[known] = self.engine_.predict(G)
        return loc, scale, dof
