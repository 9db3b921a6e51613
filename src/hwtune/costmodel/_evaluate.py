"""How good a cost model is: rank correlation, percentage errors, interval coverage, feasibility errors."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwtune.costmodel._base import CostModel, PredictiveDistribution
from hwtune.costmodel._factory import _check_factory
from hwtune.costmodel._features import Featurizer
from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace

__all__ = ["prediction_metrics", "feasibility_errors", "cross_validate", "spearman"]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of a (n,) and b (n,); NaN when either is constant or n < 2."""
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a, b).statistic)


def prediction_metrics(y_true: np.ndarray, pred: PredictiveDistribution, level: float = 0.9) -> dict[str, float]:
    """Accuracy of predictions against measured values.

    Args:
        y_true: measured values, shape (n,).
        pred: predictive distribution of the same n candidates.
        level: level of the interval whose coverage is reported.

    Returns:
        ``spearman`` (median prediction vs truth), ``mdape`` and ``mape`` (median and mean absolute
        percentage error of the median prediction, as fractions), ``coverage`` (share of true values
        inside the central ``level`` interval), ``rel_width`` (median interval width / median
        prediction), ``n``.
    """
    y = np.asarray(y_true, dtype=float)
    med = pred.median()
    lo, hi = pred.interval(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.abs(med - y) / np.abs(y)
        rel_width = (hi - lo) / np.abs(med)
    ape = ape[np.isfinite(ape)]
    return {
        "spearman": spearman(med, y),
        "mdape": float(np.median(ape)) if len(ape) else float("nan"),
        "mape": float(np.mean(ape)) if len(ape) else float("nan"),
        "coverage": float(np.mean((y >= lo) & (y <= hi))),
        "rel_width": float(np.nanmedian(rel_width)),
        "n": float(len(y)),
    }


def feasibility_errors(y_true: np.ndarray, pred: PredictiveDistribution, bounds: Sequence[float]) -> list[dict[str, float]]:
    """How often ``metric <= bound`` is predicted wrongly (predicted feasible when P(<= bound) >= 0.5).

    Args:
        y_true: measured values, shape (n,).
        pred: predictive distribution of the same n candidates.
        bounds: the budgets to check.

    Returns:
        One dict per bound: ``bound``, ``wrong`` (share of candidates misclassified), ``false_feasible``
        and ``false_infeasible`` (shares of all candidates).
    """
    y = np.asarray(y_true, dtype=float)
    med = pred.median()  # P(<= b) >= 0.5 exactly when the median is <= b (no cdf needed)
    out = []
    for b in bounds:
        said = med <= b
        truth = y <= b
        out.append({
            "bound": float(b),
            "wrong": float(np.mean(said != truth)),
            "false_feasible": float(np.mean(said & ~truth)),
            "false_infeasible": float(np.mean(~said & truth)),
        })
    return out


def cross_validate(
    model_factory: Callable[[], CostModel] | str,
    X_params: Sequence[Mapping[str, Any]],
    y: Sequence[float] | np.ndarray,
    folds: int = 5,
    *,
    featurizer: Featurizer | SearchSpace | None = None,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, Any]:
    """K-fold cross-validation of a cost model on measured candidates.

    Args:
        model_factory: callable returning a fresh unfitted model, or a model name (then
            ``featurizer`` is required).
        X_params: n param dicts.
        y: n measured values, shape (n,).
        folds: number of folds (at most n; leave-one-out when equal to n).
        featurizer: space or featurizer, when ``model_factory`` is a name.
        seed: shuffling seed.
        level: interval level for ``coverage``.

    Returns:
        :func:`prediction_metrics` of the pooled out-of-fold predictions plus ``folds``, ``model``
        (the model name) and ``predictions``: ``median``, ``low``, ``high``, ``y`` arrays of shape (n,)
        in the order of the inputs.
    """
    from sklearn.model_selection import KFold

    factory = _check_factory(model_factory, featurizer)
    X_params = [dict(p) for p in X_params]
    yv = np.asarray(y, dtype=float).reshape(-1)
    n = len(X_params)
    if len(yv) != n:
        raise ConfigError("y", f"got {len(yv)} values for {n} candidates.")
    if n < 4:
        raise ConfigError("y", f"cross-validation needs at least 4 measured candidates, got {n}.", "measure more candidates first.")
    if folds < 2:
        raise ConfigError("folds", f"need at least 2 folds, got {folds}.")
    k = min(folds, n)
    med = np.empty(n)
    lo = np.empty(n)
    hi = np.empty(n)
    loc = np.empty(n)
    scale = np.empty(n)
    dof = np.empty(n)
    name = "?"
    log = False
    for tr, te in KFold(k, shuffle=True, random_state=seed).split(np.arange(n)):
        model = factory()
        name = model.name
        model.fit([X_params[i] for i in tr], yv[tr])
        pd = model.predictive([X_params[i] for i in te])
        med[te] = pd.median()
        lo[te], hi[te] = pd.interval(level)
        loc[te], scale[te], dof[te] = pd.loc, pd.scale, pd.dof
        log = pd.log
    pooled = PredictiveDistribution(loc, scale, dof, log)
    out: dict[str, Any] = dict(prediction_metrics(yv, pooled, level))
    out.update({"folds": k, "model": name, "level": level})
    out["predictions"] = {"median": med, "low": lo, "high": hi, "y": yv}
    if not math.isfinite(out["spearman"]):
        out["spearman"] = float("nan")
    return out
