"""The cost-model interface: predictive distributions of a hardware metric, fitting, persistence."""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
from scipy import special

from hwtune.exceptions import ConfigError, HwtuneError
from hwtune.space import SearchSpace
from hwtune.costmodel._features import DerivedFn, Featurizer

__all__ = ["CostModel", "CostModelError", "PredictiveDistribution", "Target", "FORMAT"]

Target = Literal["log", "linear"]
FORMAT = "hwtune-costmodel/1"
MIN_DOF = 3.0
"""Degrees of freedom of the Student-t predictive are floored here, so that its std is finite."""


class CostModelError(HwtuneError):
    """A cost model cannot do what was asked (not fitted, cannot be loaded...)."""


@dataclass(frozen=True)
class PredictiveDistribution:
    """Predictive distribution of a metric for n candidates.

    In the model's latent space (``log(value)`` when ``log`` else ``value``) the distribution is a
    Student-t with location ``loc``, scale ``scale`` and ``dof`` degrees of freedom (a Gaussian when
    ``dof`` is infinite). The t accounts for the noise level being estimated from few observations,
    which is what keeps the intervals calibrated at k = 10.

    Attributes:
        loc: shape (n,).
        scale: shape (n,), > 0.
        dof: shape (n,), >= 3 (or inf).
        log: whether the latent space is the log of the metric.
    """

    loc: np.ndarray
    scale: np.ndarray
    dof: np.ndarray
    log: bool
    positive: bool = False
    """The metric cannot be negative (every hardware cost): quantiles, intervals and the median of a
    linear latent space are clipped at 0. A value >= 0 lies in the clipped interval exactly when it
    lies in the unclipped one, so the interval's coverage is kept (the mass it cut held no value);
    probabilities (``cdf``, ``log_prob``) are those of the latent t. A log latent space is positive anyway."""

    def __len__(self) -> int:
        return len(self.loc)

    def _latent(self, value: float | np.ndarray) -> np.ndarray:
        v = np.asarray(value, dtype=float)
        if not self.log:
            return np.broadcast_to(v, self.loc.shape).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), -np.inf)
        return np.broadcast_to(out, self.loc.shape).astype(float)

    def cdf(self, value: float | np.ndarray) -> np.ndarray:
        """P(metric <= value), shape (n,)."""
        z = (self._latent(value) - self.loc) / self.scale
        dof = np.broadcast_to(np.asarray(self.dof, dtype=float), z.shape)
        finite = np.isfinite(dof)
        out = special.ndtr(z)
        if finite.any():
            out = np.where(finite, special.stdtr(np.where(finite, dof, 1.0), z), out)
        return out

    def log_prob(self, bound: float, below: bool = True) -> np.ndarray:
        """log P(metric <= bound) (``below``) or log P(metric >= bound), shape (n,), accurate far in the tails."""
        z = (self._latent(bound) - self.loc) / self.scale
        z = z if below else -z
        dof = np.broadcast_to(np.asarray(self.dof, dtype=float), z.shape)
        out = special.log_ndtr(z)
        finite = np.isfinite(dof)
        if finite.any():
            t = special.stdtr(np.where(finite, dof, 1.0), z)
            out = np.where(finite, np.log(np.maximum(t, 1e-300)), out)
        return out

    def quantile(self, q: float) -> np.ndarray:
        """Value below which the metric lies with probability ``q``, shape (n,) in metric units (>= 0 when ``positive``)."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must be in (0, 1), got {q}")
        dof = np.broadcast_to(np.asarray(self.dof, dtype=float), self.loc.shape)
        factor = np.empty(self.loc.shape)
        for d in np.unique(dof):  # a model has one dof, or a few: compute each t quantile once
            factor[dof == d] = special.ndtri(q) if np.isinf(d) else special.stdtrit(d, q)
        lat = self.loc + self.scale * factor
        if self.log:
            return np.exp(lat)
        return np.maximum(lat, 0.0) if self.positive else lat

    def median(self) -> np.ndarray:
        """The median, shape (n,): the point prediction used for ranking and percentage errors."""
        if self.log:
            return np.exp(self.loc)
        return np.maximum(self.loc, 0.0) if self.positive else self.loc.copy()

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval holding the metric with probability ``level``: (low, high), each (n,)."""
        a = (1.0 - level) / 2.0
        return self.quantile(a), self.quantile(1.0 - a)

    def latent_std(self) -> np.ndarray:
        """Std of the latent t, shape (n,): ``scale * sqrt(dof / (dof - 2))``."""
        d = np.asarray(self.dof, dtype=float)
        finite = np.where(np.isinf(d), 3.0, d)
        factor = np.where(np.isinf(d), 1.0, np.sqrt(finite / np.maximum(finite - 2.0, 1e-12)))
        return self.scale * factor

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std in metric units, each (n,).

        Linear latent space: the t's mean and std. Log latent space: the moments of a lognormal
        whose log has the same mean and std as the latent t (the log-t itself has no mean).
        """
        s = self.latent_std()
        if not self.log:
            return self.loc.copy(), s
        mean = np.exp(self.loc + s**2 / 2.0)
        return mean, mean * np.sqrt(np.expm1(s**2))


class CostModel(ABC):
    """Predicts one hardware metric of a candidate from its hardware-relevant params.

    Subclasses implement :meth:`_fit` and :meth:`_predict` on feature matrices; this class handles the
    target transform (log or linear), input checks, tiny training sets and persistence.

    Persistence stores the training params and values and the model's settings as JSON, and
    :func:`hwtune.costmodel.load_cost_model` refits on load (exact and free of pickled code).

    Args:
        featurizer: a :class:`Featurizer` or a :class:`SearchSpace` (then one is built with
            ``derived``).
        target: ``"log"`` fits log(metric) (multiplicative errors), ``"linear"`` fits the metric
            itself (costs that add up over layers).
        derived: derived-feature callable, used only when ``featurizer`` is a space.
    """

    name: ClassVar[str] = "base"
    default_target: ClassVar[Target] = "log"
    min_fit: ClassVar[int] = 3
    """Below this many observations the model predicts a wide constant (see :meth:`fit`)."""

    def __init__(
        self,
        featurizer: Featurizer | SearchSpace,
        *,
        target: Target | None = None,
        derived: DerivedFn | None = None,
    ) -> None:
        if isinstance(featurizer, SearchSpace):
            featurizer = Featurizer(featurizer, derived)
        if not isinstance(featurizer, Featurizer):
            raise ConfigError("featurizer", f"expected a Featurizer or SearchSpace, got {type(featurizer).__name__}.")
        target = target or self.default_target
        if target not in ("log", "linear"):
            raise ConfigError("target", f"unknown target {target!r}.", "use 'log' or 'linear'.")
        self.featurizer = featurizer
        self.target: Target = target
        self._X_params: list[dict[str, Any]] | None = None
        self._y: np.ndarray | None = None
        self._constant: tuple[float, float, float] | None = None
        self._fitted = False

    # -- what subclasses provide --------------------------------------------------------------
    @abstractmethod
    def _fit(self, F: np.ndarray, z: np.ndarray) -> None:
        """Fit on features F (n, d) and latent targets z (n,)."""

    @abstractmethod
    def _predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent (loc, scale, dof), each (m,), for features F (m, d)."""

    @classmethod
    def input_columns(cls, featurizer: Featurizer, d: int, **config: Any) -> np.ndarray:
        """Columns of the featurizer's ``(n, d)`` rows that a model of this class built with ``config``
        reads (all by default): rows equal on them get equal predictions, so a caller screening many
        candidates predicts each distinct row once."""
        return np.arange(d)

    def config(self) -> dict[str, Any]:
        """Constructor settings stored by :meth:`save` (JSON-able)."""
        return {"target": self.target}

    def features(self, X_params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Feature matrix (n, d) of candidates (the featurizer's by default)."""
        return self.featurizer.transform(X_params)

    # -- fitting ------------------------------------------------------------------------------
    @property
    def n_observations(self) -> int:
        """Number of observations the model was fitted on."""
        return 0 if self._y is None else len(self._y)

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def fit(self, X_params: Sequence[Mapping[str, Any]], y: Sequence[float] | np.ndarray) -> "CostModel":
        """Fit on measured candidates.

        With fewer than :attr:`min_fit` observations the model predicts a constant (their mean) with
        a wide uncertainty (a factor e in log space, or the mean itself in linear space), so a study
        never screens candidates out on such evidence.

        Args:
            X_params: n param dicts.
            y: n measured values (metric units), shape (n,).

        Returns:
            self.
        """
        X_params = [dict(p) for p in X_params]
        F = self.features(X_params)
        self.fit_features(F, y)
        self._X_params = X_params
        return self

    def fit_features(self, F: np.ndarray, y: Sequence[float] | np.ndarray) -> "CostModel":
        """Fit on a precomputed feature matrix F (n, d) (from :meth:`features`) and values y (n,).

        A model fitted this way predicts with :meth:`predictive_features` and cannot be saved.
        """
        F = np.asarray(F, dtype=float)
        yv = self._check_y(y, len(F))
        z = self._to_latent(yv)
        self._X_params = None
        self._y = yv
        self._constant = None
        if len(z) < self.min_fit:
            spread = 1.0 if self.target == "log" else max(abs(float(np.mean(yv))), 1e-12)
            if len(z) > 1:
                spread = max(spread, float(np.std(z, ddof=1)))
            self._constant = (float(np.mean(z)), spread, MIN_DOF)
        elif F.shape[1] == 0:  # nothing to learn from (no hardware-relevant params): mean and spread
            spread = max(float(np.std(z, ddof=1)) * math.sqrt(1.0 + 1.0 / len(z)), 1e-12)
            self._constant = (float(np.mean(z)), spread, max(len(z) - 1.0, MIN_DOF))
        else:
            self._fit(F, z)
        self._fitted = True
        return self

    def _check_y(self, y: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
        yv = np.asarray(y, dtype=float).reshape(-1)
        if len(yv) != n:
            raise ConfigError("y", f"got {len(yv)} values for {n} candidates.", "pass one measured value per candidate.")
        if n == 0:
            raise ConfigError("y", "no observations.", "measure at least one candidate before fitting.")
        if not np.all(np.isfinite(yv)):
            raise ConfigError("y", "contains NaN or infinite values.", "drop candidates whose measurement failed.")
        if self.target == "log" and np.any(yv <= 0):
            raise ConfigError(
                "y",
                f"a log-target model needs values > 0, got min {yv.min():g}.",
                "use target='linear' for a metric that can be zero or negative.",
            )
        return yv

    def _to_latent(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.target == "log" else y.astype(float)

    # -- prediction ---------------------------------------------------------------------------
    def predictive(self, X_params: Sequence[Mapping[str, Any]]) -> PredictiveDistribution:
        """Predictive distribution for candidates (n param dicts)."""
        self._require_fitted()
        return self.predictive_features(self.features(list(X_params)))

    def predictive_features(self, F: np.ndarray) -> PredictiveDistribution:
        """Predictive distribution for a precomputed feature matrix F (n, d)."""
        self._require_fitted()
        F = np.asarray(F, dtype=float)
        n = len(F)
        if self._constant is not None:
            loc = np.full(n, self._constant[0])
            scale = np.full(n, self._constant[1])
            dof = np.full(n, self._constant[2])
        else:
            loc, scale, dof = self._predict(F)
            scale = np.maximum(np.asarray(scale, dtype=float), 1e-12)
            dof = np.maximum(np.broadcast_to(np.asarray(dof, dtype=float), (n,)), MIN_DOF)
        # every hardware cost is >= 0: a linear-target predictive's intervals are clipped at 0
        return PredictiveDistribution(np.asarray(loc, dtype=float), scale, np.array(dof, dtype=float), self.target == "log", positive=True)

    def predict(self, X_params: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std in metric units, each shape (n,). See :meth:`PredictiveDistribution.mean_std`.

        For ranking and percentage errors prefer :meth:`median` (a log-target model's mean is pulled
        up by its uncertainty).
        """
        return self.predictive(X_params).mean_std()

    def median(self, X_params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Median prediction in metric units, shape (n,)."""
        return self.predictive(X_params).median()

    def quantile(self, X_params: Sequence[Mapping[str, Any]], q: float) -> np.ndarray:
        """Predictive ``q``-quantile in metric units, shape (n,)."""
        return self.predictive(X_params).quantile(q)

    def interval(self, X_params: Sequence[Mapping[str, Any]], level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval (low, high), each (n,)."""
        return self.predictive(X_params).interval(level)

    def prob_below(self, X_params: Sequence[Mapping[str, Any]], bound: float) -> np.ndarray:
        """Probability that the metric is <= ``bound``, shape (n,)."""
        return self.predictive(X_params).cdf(bound)

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise CostModelError(f"{type(self).__name__} is not fitted; call fit() with measured candidates first.")

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data: settings, featurizer description and training data (refit on load)."""
        if self._fitted and self._X_params is None:
            raise CostModelError("a model fitted with fit_features() has no params to save; fit it with fit().")
        return {
            "format": FORMAT,
            "class": type(self).__name__,
            "name": self.name,
            "config": self.config(),
            "featurizer": self.featurizer.to_dict(),
            "X_params": self._X_params or [],
            "y": [] if self._y is None else [float(v) for v in self._y],
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (read back with :func:`hwtune.costmodel.load_cost_model`)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))
        return p

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, n_observations={self.n_observations})"


def read_json(path: Path, what: str, kind: str) -> Any:
    """The JSON in ``path``, or a :class:`CostModelError` saying which file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CostModelError(f"no {what} at {path}.") from None
    except json.JSONDecodeError as e:
        raise CostModelError(f"{path} is not a {kind} (invalid JSON: {e}).") from None


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in a cost-model file")


def standardize(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean (d,) and scale (d,) of F (n, d); constant columns get scale 1."""
    mean = F.mean(axis=0) if len(F) else np.zeros(F.shape[1])
    scale = F.std(axis=0) if len(F) else np.ones(F.shape[1])
    scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
    return mean, scale


def t_dof(n: int, effective_params: float) -> float:
    """Degrees of freedom left for the noise estimate: ``n - effective_params - 1`` (>= :data:`MIN_DOF`)."""
    d = n - effective_params - 1.0
    return float(max(d, MIN_DOF)) if math.isfinite(d) else MIN_DOF
