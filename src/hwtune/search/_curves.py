"""Learning curves: a trial's final validation error predicted from its first epochs, with an uncertainty.

One model, shared by the ``curve`` pruner (when to stop) and hwtune's sampler (what a stopped trial
would have reached): both fit it on the same data, the per-epoch validation errors every trial of the
study stored (``hwtune:curve``; Optuna's intermediate values on studies recorded before it was stored
for every pruner), finished, pruned and running trials alike.

The model (a hierarchical, "pooled" power law in log error): trial ``i``'s log error after epoch ``e`` is

    y_i(e) = b_i + a_i * h(e) + noise,   noise ~ N(0, s2),   (b_i, a_i) ~ N(mu, Sigma)

with one shape ``h`` for the whole study, chosen among power laws ``e ** -alpha`` and exponentials
``exp(-lambda (e - 1))`` by marginal likelihood. ``mu``, ``Sigma`` and ``s2`` are fitted by EM on every
curve (complete and partial: a prefix is just a curve with missing epochs, and stopping on the
observed values leaves the likelihood valid). A trial with a single epoch is predicted through the
population's learned relation between early and final errors (``Sigma``'s correlation); every further
epoch narrows its own posterior. ``Sigma`` is shrunk towards a broad prior worth 4 curves of 3 epochs or
more: fitted on a handful of whole curves alone, that correlation can be confidently wrong (see
``tests/search/test_curves.py``, a real study where it was). Its final error at the study's ``epochs`` ``E`` is

    log error(E) ~ N(x^T m_i, x^T S_i x + s2),   x = (1, h(E)),

``m_i``, ``S_i`` the posterior of ``(b_i, a_i)``; its sd is then widened, per last observed epoch, by
the factor that makes the study's own whole curves fall where it says (``CurveModel._calibrate``:
one shape and Gaussian noise understate real curves' late jumps). Cost: a fit is 8 EM steps of every shape at once, then
the two likeliest shapes to convergence, all vectorized over ``(shapes, trials)`` (14-27 ms at 100
curves on the loaded 2-core dev machine); fits are cached by their data. NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np

from hwtune.vocabulary import CURVE_ATTR, PARAMS_ATTR

__all__ = ["CurveModel", "CurvePrediction", "trial_curve", "fit_curves", "horizon_of", "CURVE_PREDICTION_ATTR", "MODEL_NAME"]

MODEL_NAME = "curve:pooled-powerlaw"
"""The source label of a predicted final error (``predicted:curve:pooled-powerlaw``)."""
CURVE_PREDICTION_ATTR = "hwtune:curve_prediction"
"""Trial user attribute the ``curve`` pruner writes when it stops a trial: ``{epoch, final_epoch,
error, log_mean, log_sd, p_better, reference, source}`` (its prediction of the final error)."""

_FLOOR = 1e-4
_SIGMA0 = np.diag([1.5, 1.5])
"""Broad prior covariance of (final log error, amplitude): final errors anywhere from about 1 % to chance."""
_PRIOR_CURVES = 4.0
_CALIBRATION_PRIOR = 3.0
"""The model's own predictive width counts as this many whole curves when it is calibrated."""
_SHAPES: tuple[tuple[str, float], ...] = (
    ("power", 0.125), ("power", 0.25), ("power", 0.5), ("power", 0.75), ("power", 1.0), ("power", 1.5), ("power", 2.0), ("power", 3.0),
    ("exp", 0.15), ("exp", 0.3), ("exp", 0.7), ("exp", 1.5),
)


def _shape(kind: str, rate: float, e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, dtype=float)
    return e**-rate if kind == "power" else np.exp(-rate * (e - 1.0))


def trial_curve(t: Any) -> dict[int, float]:
    """Validation error per epoch of a stored trial (``hwtune:curve``, else Optuna's intermediate values).

    Non-finite values and epochs below 1 are left out.
    """
    raw = t.user_attrs.get(CURVE_ATTR)
    if not isinstance(raw, Mapping) or not raw:
        raw = getattr(t, "intermediate_values", None) or {}
    out: dict[int, float] = {}
    for k, v in raw.items():
        try:
            e, fv = int(k), float(v)
        except (TypeError, ValueError):
            continue
        if e >= 1 and math.isfinite(fv):
            out[e] = fv
    return out


def horizon_of(params: Mapping[str, Any] | None, curves: Sequence[Mapping[int, float]] = (), default: int | None = None) -> int | None:
    """The epoch a trial trains to: its ``epochs`` param, else ``default`` (the study's), else the
    longest curve seen."""
    e = (params or {}).get("epochs")
    if isinstance(e, (int, float)) and not isinstance(e, bool) and e >= 1:
        return int(e)
    if default is not None:
        return int(default)
    lengths = [max(c) for c in curves if c]
    return max(lengths) if lengths else None


def trial_horizon(t: Any, default: int | None = None) -> int | None:
    """The epoch a stored trial trains to (its ``epochs`` param, fixed ones included, else ``default``)."""
    params = t.user_attrs.get(PARAMS_ATTR) or getattr(t, "params", None) or {}
    return horizon_of(params, (), default)


@dataclass(frozen=True)
class CurvePrediction:
    """A trial's final validation error as the curve model predicts it (log space is Gaussian).

    Attributes:
        log_mean, log_sd: predictive mean and std of ``log(error)`` at ``final_epoch`` (noise included).
        final_epoch: the epoch predicted for; ``last_epoch``: the last one observed.
    """

    log_mean: float
    log_sd: float
    final_epoch: int
    last_epoch: int

    @property
    def error(self) -> float:
        """The median predicted final error."""
        return float(math.exp(self.log_mean))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Central interval of the final error."""
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return math.exp(self.log_mean - z * self.log_sd), min(1.0, math.exp(self.log_mean + z * self.log_sd))

    def prob_below(self, error: float) -> float:
        """P(final error < ``error``)."""
        if not error > 0:
            return 0.0
        z = (math.log(max(error, _FLOOR)) - self.log_mean) / max(self.log_sd, 1e-9)
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "log_mean": self.log_mean, "log_sd": self.log_sd, "final_epoch": self.final_epoch,
                "last_epoch": self.last_epoch, "source": f"predicted:{MODEL_NAME}"}


class CurveModel:
    """The pooled learning-curve model (see the module docstring).

    Args:
        em_iters: most EM steps of the two likeliest shapes (they stop earlier once converged).
        min_points: fewest observed (trial, epoch) points to fit; below it the model has only its
            weak default prior (:attr:`fitted` is False).
    """

    def __init__(self, em_iters: int = 40, min_points: int = 6) -> None:
        self.em_iters = em_iters
        self.min_points = min_points
        self.shape: tuple[str, float] = ("power", 1.0)
        self.mu = np.array([math.log(0.1), 1.0])
        self.Sigma = np.diag([1.0, 1.0])
        self.s2 = 0.05
        self.n_curves = 0
        self.n_complete = 0
        self.fitted = False
        self.log_evidence = -math.inf
        self.scale: dict[int, float] = {}
        """Last observed epoch -> factor on the predictive sd, from the study's own whole curves (:meth:`_calibrate`)."""

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, curves: Sequence[Mapping[int, float]], horizon: int | None = None) -> CurveModel:
        """Fit on validation-error curves (epoch -> error); ``horizon``: the study's epochs (counts complete curves)."""
        curves = [c for c in curves if c]
        self.n_curves = len(curves)
        if horizon is not None:
            self.n_complete = sum(1 for c in curves if max(c) >= horizon)
        if not curves:
            return self
        T = max(max(c) for c in curves)
        rows = np.concatenate([np.full(len(c), i) for i, c in enumerate(curves)])
        cols = np.fromiter((e - 1 for c in curves for e in c), dtype=int, count=len(rows))
        vals = np.fromiter((v for c in curves for v in c.values()), dtype=float, count=len(rows))
        Y = np.zeros((len(curves), T))
        M = np.zeros((len(curves), T), dtype=bool)
        Y[rows, cols] = np.log(np.clip(vals, _FLOOR, 1.0))
        M[rows, cols] = True
        if M.sum() < self.min_points:
            last = [Y[i, np.flatnonzero(M[i])[-1]] for i in range(len(curves))]
            self.mu = np.array([float(np.mean(last)), 0.5])
            return self
        epochs = np.arange(1, T + 1, dtype=float)
        H = np.stack([_shape(kind, rate, epochs) for kind, rate in _SHAPES])
        # every shape a few EM steps, then the two likeliest to convergence
        mu, Sigma, s2, ll = _em(Y, M, H, 8)
        top = np.argsort(-np.where(np.isfinite(ll), ll, -np.inf))[:2]
        mu, Sigma, s2, ll = _em(Y, M, H[top], self.em_iters, (mu[top], Sigma[top], s2[top]))
        j = int(np.argmax(np.where(np.isfinite(ll), ll, -np.inf)))
        k = int(top[j])
        self.shape, self.mu, self.Sigma, self.s2, self.log_evidence = _SHAPES[k], mu[j], Sigma[j], float(s2[j]), float(ll[j])
        self.fitted = True
        self.scale = self._calibrate(curves, T)
        return self

    def _calibrate(self, curves: Sequence[Mapping[int, float]], T: int) -> dict[int, float]:
        """Per last observed epoch ``e``: how much wider the predictive must be to be honest on this study's
        whole curves (trials that reached epoch ``T``).

        Each whole curve's first ``e`` epochs predict its own epoch ``T``; ``z`` is the standardized miss.
        The factor is ``sqrt((3 + sum z**2) / (3 + n))`` (the model's own width counts as 3 curves), never
        below 1. Why: one shape per study and Gaussian noise miss curves that plateau near chance and then
        drop, or jump at the last epoch; on 41 real MNIST curves the 95 % interval after 5 epochs held 31 of
        them (36 with this factor; ``tests/search/test_curves.py``). In-sample (a curve is part of the fit
        that predicts it), so it can only understate the misses. It does not make a single Gaussian
        bimodal: a curve at chance after epoch 1 that will either stay there or learn late is still
        predicted in between (``benchmarks/train_pruning_replay.py`` and docs/benchmarks.md measure what
        that costs the pruner).
        """
        whole = [c for c in curves if c.get(T) is not None and len(c) >= 2]
        if not whole:
            return {}
        # every prefix of every whole curve at once: cumulative sums over epochs 1..T-1 of each epoch's terms
        epochs = np.arange(1, T, dtype=float)
        M = np.array([[k in c for k in range(1, T)] for c in whole], dtype=float)  # (N, T-1)
        Y = np.log(np.clip(np.array([[c.get(k, 1.0) for k in range(1, T)] for c in whole], dtype=float), _FLOOR, 1.0))
        G = np.stack([np.ones_like(epochs), _shape(*self.shape, epochs)], 1)  # (T-1, 2)
        Si = np.linalg.inv(self.Sigma)
        P = Si + np.cumsum(M[:, :, None, None] * (G[:, :, None] * G[:, None, :])[None], 1) / self.s2  # (N, T-1, 2, 2)
        b = Si @ self.mu + np.cumsum((M * Y)[:, :, None] * G[None], 1) / self.s2  # (N, T-1, 2)
        S = _inv2(P)
        x = np.array([1.0, float(_shape(*self.shape, np.array([float(T)]))[0])])
        mean = np.einsum("nkij,nkj,i->nk", S, b, x)
        sd = np.sqrt(np.einsum("i,nkij,j->nk", x, S, x) + self.s2)
        final = np.log(np.clip([c[T] for c in whole], _FLOOR, 1.0))
        z2 = ((final[:, None] - mean) / np.maximum(sd, 1e-9)) ** 2 * M  # a prefix ends at an epoch the curve has
        counts, sums = M.sum(0), z2.sum(0)
        return {k + 1: max(1.0, math.sqrt((_CALIBRATION_PRIOR + sums[k]) / (_CALIBRATION_PRIOR + counts[k]))) for k in range(T - 1) if counts[k]}

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, curve: Mapping[int, float], final_epoch: int) -> CurvePrediction:
        """The final error at ``final_epoch`` of a trial whose curve so far is ``curve`` (may be empty),
        its width calibrated on the study's whole curves (:meth:`_calibrate`)."""
        return self._predict(curve, final_epoch, scaled=True)

    def _predict(self, curve: Mapping[int, float], final_epoch: int, *, scaled: bool) -> CurvePrediction:
        pts = sorted((int(e), float(v)) for e, v in curve.items() if math.isfinite(v) and int(e) >= 1)
        x = np.array([1.0, float(_shape(*self.shape, np.array([float(final_epoch)]))[0])])
        Si = np.linalg.inv(self.Sigma)
        P, b = Si.copy(), Si @ self.mu
        if pts:
            e = np.array([p[0] for p in pts], dtype=float)
            y = np.log(np.clip([p[1] for p in pts], _FLOOR, 1.0))
            G = np.stack([np.ones_like(e), _shape(*self.shape, e)], 1)
            P += G.T @ G / self.s2
            b += G.T @ y / self.s2
        S = np.linalg.inv(P)
        m = S @ b
        var = float(x @ S @ x) + self.s2
        last = pts[-1][0] if pts else 0
        if pts and last >= final_epoch:  # already there: its own last error, with the noise of one reading
            var = self.s2
            m_final = float(np.log(np.clip(pts[-1][1], _FLOOR, 1.0)))
            return CurvePrediction(m_final, math.sqrt(var), final_epoch, last)
        factor = 1.0
        if scaled and self.scale and last > 0:  # an epoch no whole curve was cut at takes the nearest one's
            factor = self.scale.get(last) or self.scale[min(self.scale, key=lambda e: abs(e - last))]
        return CurvePrediction(float(x @ m), factor * math.sqrt(max(var, 1e-12)), int(final_epoch), last)

    def describe(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "shape": f"{self.shape[0]}:{self.shape[1]:g}", "noise_sd": math.sqrt(self.s2),
                "curves": self.n_curves, "complete": self.n_complete, "fitted": self.fitted}


def _inv2(A: np.ndarray) -> np.ndarray:
    """Inverses of ``(..., 2, 2)`` symmetric positive-definite matrices."""
    a, b, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
    det = a * d - b * b
    out = np.empty_like(A)
    out[..., 0, 0], out[..., 1, 1] = d / det, a / det
    out[..., 0, 1] = out[..., 1, 0] = -b / det
    return out


def _em(
    Y: np.ndarray, M: np.ndarray, H: np.ndarray, iters: int, init: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM of the hierarchical linear model, for ``K`` shapes at once; ``Y``, ``M`` ``(N, T)``, ``H`` ``(K, T)``;
    ``init``: a starting ``(mu, Sigma, s2)`` per shape.

    Returns ``mu (K, 2)``, ``Sigma (K, 2, 2)``, ``s2 (K,)`` and the log marginal likelihood ``(K,)``.
    """
    N = Y.shape[0]
    Mf = M.astype(float)
    n_i = Mf.sum(1)  # (N,)
    # sufficient statistics per shape and trial: G^T G (K,N,2,2), G^T y (K,N,2), y^T y (N,)
    s0 = np.broadcast_to(n_i, (H.shape[0], N))
    s1, s2h = H @ Mf.T, (H * H) @ Mf.T  # (K, N)
    GtG = np.stack([np.stack([s0, s1], -1), np.stack([s1, s2h], -1)], -2)
    Ym = Y * Mf
    Gty = np.stack([np.broadcast_to(Ym.sum(1), (H.shape[0], N)), H @ Ym.T], -1)
    yty = (Ym * Y).sum(1)
    last = Y[np.arange(N), M.shape[1] - 1 - np.argmax(M[:, ::-1], axis=1)]
    K = H.shape[0]
    if init is None:
        mu = np.tile([float(last.mean()), 1.0], (K, 1))
        Sigma = np.tile(np.diag([max(float(last.var()), 0.05), 1.0]), (K, 1, 1))
        s2 = np.full(K, 0.02)
    else:
        mu, Sigma, s2 = init
    ridge = np.diag([1e-4, 1e-4])
    total = n_i.sum()
    # few long curves say little about how early errors map to final ones: the population's covariance is
    # shrunk towards a broad prior, worth _PRIOR_CURVES curves of at least 3 epochs
    w = _PRIOR_CURVES / (_PRIOR_CURVES + float((n_i >= 3).sum()))
    for it in range(iters):
        mu_old, s2_old = mu, s2
        Si = _inv2(Sigma)  # (K,2,2)
        S = _inv2(Si[:, None] + GtG / s2[:, None, None, None])
        b = np.einsum("kij,kj->ki", Si, mu)[:, None] + Gty / s2[:, None, None]
        m = np.einsum("knij,knj->kni", S, b)
        mu = m.mean(1)
        d = m - mu[:, None]
        Sigma = (1.0 - w) * (S + d[..., :, None] * d[..., None, :]).mean(1) + w * _SIGMA0 + ridge
        mm = S + m[..., :, None] * m[..., None, :]
        res = yty[None] - 2 * (m * Gty).sum(-1) + (GtG * mm).sum((-1, -2))
        s2 = np.maximum(res.sum(1) / total, 1e-4)
        if it >= 2 and np.max(np.abs(mu - mu_old)) < 1e-4 and np.max(np.abs(s2 / s2_old - 1.0)) < 1e-3:
            break  # converged for every shape
    Si = _inv2(Sigma)
    P = Si[:, None] + GtG / s2[:, None, None, None]
    S = _inv2(P)
    r_y = yty[None] - 2 * np.einsum("kni,ki->kn", Gty, mu) + np.einsum("knij,ki,kj->kn", GtG, mu, mu)
    Gr = Gty - np.einsum("knij,kj->kni", GtG, mu)
    quad = r_y / s2[:, None] - np.einsum("kni,knij,knj->kn", Gr, S, Gr) / (s2**2)[:, None]
    logdet_Sig = np.log(Sigma[:, 0, 0] * Sigma[:, 1, 1] - Sigma[:, 0, 1] ** 2)
    logdet_P = np.log(P[..., 0, 0] * P[..., 1, 1] - P[..., 0, 1] ** 2)
    logdet_C = logdet_Sig[:, None] + logdet_P + n_i[None] * np.log(s2)[:, None]
    ll = -0.5 * (quad + logdet_C + n_i[None] * math.log(2 * math.pi)).sum(1)
    return mu, Sigma, s2, ll


_CACHE: dict[Any, CurveModel] = {}


def fit_curves(curves: Sequence[Mapping[int, float]], horizon: int | None = None) -> CurveModel:
    """A :class:`CurveModel` fitted on ``curves``, cached by the data (the pruner and the sampler of a
    process fit the same study's curves many times between changes; the order of the curves is not
    part of the data)."""
    data = [c for c in curves if c]
    key = tuple(sorted(tuple(sorted((int(e), round(float(v), 10)) for e, v in c.items())) for c in data))
    model = _CACHE.get(key)
    if model is None:
        model = CurveModel().fit(data, horizon)
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = model
    elif horizon is not None:
        model.n_complete = sum(1 for c in data if max(c) >= horizon)
    return model
