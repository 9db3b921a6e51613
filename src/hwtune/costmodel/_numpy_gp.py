"""A small exact Gaussian process in NumPy/SciPy, sized for Bayesian optimization with <= ~1000 points.

Why not BoTorch/GPyTorch here: hwtune's sampler refits its surrogates at every proposal and must
answer in well under 100 ms at 100 observations on a laptop CPU, on one thread, and ``search`` must not
import PyTorch. An exact GP with analytic marginal-likelihood gradients and warm-started L-BFGS-B does
that in a few milliseconds (see ``benchmarks/search_proposal_time.py``); the maths is the textbook one
(Rasmussen & Williams 2006, ch. 2 and 5), with the dimension-scaled log-normal lengthscale prior of
Hvarfner et al. 2024 that BoTorch uses by default.

Shapes: ``X`` is ``(n, d)`` with features in about [0, 1]; ``y`` is ``(n,)``; predictions take ``(m, d)``
and return ``(m,)`` mean and standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize

__all__ = ["GaussianProcess", "GPHyper", "sqdist"]

_SQRT5 = math.sqrt(5.0)


@dataclass(frozen=True)
class GPHyper:
    """Hyperparameters in log space: lengthscales ``(d,)``, one signal variance per kernel block ``(B,)``,
    noise variance."""

    log_ls: np.ndarray
    log_sf2: np.ndarray
    log_sn2: float
    log_lin: float | None = None

    def vector(self) -> np.ndarray:
        lin = [] if self.log_lin is None else [self.log_lin]
        return np.concatenate([self.log_ls, self.log_sf2, lin, [self.log_sn2]])

    @classmethod
    def from_vector(cls, v: np.ndarray, n_blocks: int, linear: bool = False) -> "GPHyper":
        d = len(v) - n_blocks - 1 - int(linear)
        return cls(
            np.asarray(v[:d], dtype=float).copy(),
            np.asarray(v[d : d + n_blocks], dtype=float).copy(),
            float(v[-1]),
            float(v[-2]) if linear else None,
        )


def sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, ``(n, d) x (m, d) -> (n, m)``, clipped at 0."""
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(d, 0.0, out=d)
    return d


def _matern52(q: np.ndarray, sf2: float) -> np.ndarray:
    """Matern-5/2 kernel of squared scaled distance ``q``."""
    r = np.sqrt(q)
    return sf2 * (1.0 + _SQRT5 * r + (5.0 / 3.0) * q) * np.exp(-_SQRT5 * r)


class GaussianProcess:
    """Exact GP regression with a sum of Matern-5/2 ARD kernels, zero mean on standardized targets.

    The input columns are split into consecutive blocks (``blocks``: their widths; one block by
    default); each block has its own kernel (lengthscales and signal variance) and the kernels add, so
    that e.g. features computed from the params explain the broad trend while the params' own encoding
    refines it. ``linear=True`` adds a linear kernel ``s * x.x' / d`` over all columns: Bayesian linear
    regression on the encoding, i.e. the additive "sum of per-layer costs" model of latency lookup
    tables, which extrapolates sensibly from few measurements.

    Hyperparameters are MAP estimates: log-normal prior on each lengthscale with location
    ``sqrt(2) + log(d_b) / 2`` and scale ``sqrt(3)`` (dimension-scaled, ``d_b`` the block's width), a
    normal prior on each log signal variance around ``-log(B)`` (targets are standardized), and a normal
    prior on the log noise variance around ``log(noise_prior)``; noise is kept at least ``min_noise``.

    Args:
        blocks: widths of the kernel blocks (summing to the number of columns); ``None`` = one block.
        min_noise: floor of the noise variance (relative to the standardized targets).
        noise_prior: centre of the noise prior (standardized units).
        max_iter: L-BFGS-B iterations per fit.
    """

    def __init__(
        self,
        *,
        blocks: Sequence[int] | None = None,
        linear: bool = False,
        min_noise: float = 1e-6,
        noise_prior: float = 1e-3,
        max_iter: int = 40,
    ) -> None:
        self.blocks = list(blocks) if blocks else None
        self.linear = linear
        self.min_noise = min_noise
        self.noise_prior = noise_prior
        self.max_iter = max_iter
        self.hyper: GPHyper | None = None
        self._X: np.ndarray | None = None
        self._y_mean = 0.0
        self._y_std = 1.0

    def _spans(self, d: int) -> list[tuple[int, int]]:
        widths = self.blocks or [d]
        if sum(widths) != d:
            raise ValueError(f"kernel blocks {widths} do not add up to the {d} input columns")
        out, a = [], 0
        for w in widths:
            out.append((a, a + w))
            a += w
        return out

    # -- fitting -----------------------------------------------------------------------------------
    @staticmethod
    def _prior_loc(d: int) -> float:
        return math.sqrt(2.0) + 0.5 * math.log(max(d, 1))

    def _default(self, d: int) -> np.ndarray:
        spans = self._spans(d)
        ls = np.concatenate([np.full(b - a, self._prior_loc(b - a)) for a, b in spans])
        lin = [0.0] if self.linear else []
        return np.concatenate([ls, np.full(len(spans), -math.log(len(spans) + int(self.linear))), lin, [math.log(self.noise_prior)]])

    def _neg_log_post(self, v: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        n, d = X.shape
        spans = self._spans(d)
        B = len(spans)
        log_ls, log_sf2, log_sn2 = v[:d], v[d : d + B], v[-1]
        inv_ls = np.exp(-log_ls)
        Xs = X * inv_ls
        sn2 = math.exp(log_sn2) + self.min_noise
        K = np.zeros((n, n))
        parts = []
        for bi, (a, b) in enumerate(spans):
            q = sqdist(Xs[:, a:b], Xs[:, a:b])
            r = np.sqrt(q)
            e = np.exp(-_SQRT5 * r)
            sf2 = math.exp(log_sf2[bi])
            Kb = sf2 * (1.0 + _SQRT5 * r + (5.0 / 3.0) * q) * e
            K += Kb
            parts.append((r, e, sf2, Kb))
        if self.linear:
            Klin = math.exp(v[d + B]) * (X @ X.T) / d
            K += Klin
        K[np.diag_indices_from(K)] += sn2
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(v)
        alpha = cho_solve((L, True), y)
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
        Kinv = cho_solve((L, True), np.eye(n))
        W = np.outer(alpha, alpha) - Kinv  # d log p / d K = W / 2
        g_ls = np.zeros(d)
        g_sf2 = np.zeros(B)
        for bi, ((a, b), (r, e, sf2, Kb)) in enumerate(zip(spans, parts)):
            # d K / d log_ls_j = 5/3 sf2 (1 + sqrt5 r) e^{-sqrt5 r} * (dx_j / ls_j)^2
            G = W * ((5.0 / 3.0) * sf2 * (1.0 + _SQRT5 * r) * e)
            rs = G.sum(1)
            Xb = Xs[:, a:b]
            g_ls[a:b] = -0.5 * (2.0 * ((Xb * Xb).T @ rs) - 2.0 * np.einsum("aj,aj->j", Xb, G @ Xb))
            g_sf2[bi] = -0.5 * float((W * Kb).sum())
        g_sn2 = -0.5 * float(np.trace(W)) * math.exp(log_sn2)
        g_lin = []
        if self.linear:
            g_lin = [-0.5 * float((W * Klin).sum()) + (v[d + B] - 0.0) / 4.0]
            nll += (v[d + B] - 0.0) ** 2 / (2 * 4.0)
        # priors (normal densities of the log hyperparameters)
        s2 = 3.0
        for a, b in spans:
            mu = self._prior_loc(b - a)
            nll += float(((log_ls[a:b] - mu) ** 2).sum() / (2 * s2))
            g_ls[a:b] += (log_ls[a:b] - mu) / s2
        m0 = -math.log(B + int(self.linear))
        nll += float(((log_sf2 - m0) ** 2).sum() / 2.0)
        g_sf2 += log_sf2 - m0
        lnp = math.log(self.noise_prior)
        nll += (log_sn2 - lnp) ** 2 / (2 * 4.0)
        g_sn2 += (log_sn2 - lnp) / 4.0
        return nll, np.concatenate([g_ls, g_sf2, g_lin, [g_sn2]])

    def fit(self, X: np.ndarray, y: np.ndarray, *, warm: GPHyper | None = None) -> "GaussianProcess":
        """Fit hyperparameters (MAP) and condition on ``(X, y)``.

        Args:
            X: ``(n, d)`` inputs.
            y: ``(n,)`` targets (standardized internally).
            warm: hyperparameters to start from (the previous fit), if their shapes match.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n, d = X.shape
        B = len(self._spans(d))
        self._y_mean = float(y.mean()) if n else 0.0
        sd = float(y.std()) if n > 1 else 1.0
        self._y_std = sd if sd > 1e-12 else 1.0
        ys = (y - self._y_mean) / self._y_std
        if warm is not None and warm.log_ls.shape == (d,) and warm.log_sf2.shape == (B,) and (warm.log_lin is not None) == self.linear:
            v0 = warm.vector()
        else:
            v0 = self._default(d)
        v = v0
        if n >= 2:
            bounds = [(-4.0, 6.0)] * d + [(-6.0, 4.0)] * B + [(-8.0, 6.0)] * int(self.linear) + [(math.log(1e-9), 0.0)]
            res = minimize(self._neg_log_post, v0, args=(X, ys), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": self.max_iter})
            v = res.x
        self.hyper = GPHyper.from_vector(v, B, self.linear)
        self._condition(X, ys)
        return self

    def fit_fixed(self, X: np.ndarray, y: np.ndarray, hyper: GPHyper) -> "GaussianProcess":
        """Condition on ``(X, y)`` with given hyperparameters (no optimization)."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self._y_mean = float(y.mean()) if len(y) else 0.0
        sd = float(y.std()) if len(y) > 1 else 1.0
        self._y_std = sd if sd > 1e-12 else 1.0
        self.hyper = hyper
        self._condition(X, (y - self._y_mean) / self._y_std)
        return self

    @property
    def noise_var(self) -> float:
        """Noise variance in the units of ``y``."""
        assert self.hyper is not None
        return (math.exp(self.hyper.log_sn2) + self.min_noise) * self._y_std**2

    def _kernel(self, A: np.ndarray, Bm: np.ndarray) -> np.ndarray:
        """Prior covariance between scaled inputs ``A`` ``(n, d)`` and ``Bm`` ``(m, d)``."""
        assert self.hyper is not None
        spans = self._spans(A.shape[1])
        K = np.zeros((len(A), len(Bm)), dtype=np.result_type(A, Bm))
        for bi, (a, b) in enumerate(spans):
            K += _matern52(sqdist(A[:, a:b], Bm[:, a:b]), math.exp(self.hyper.log_sf2[bi]))
        if self.hyper.log_lin is not None:  # on unscaled inputs
            ls = np.exp(self.hyper.log_ls).astype(K.dtype)
            K += math.exp(self.hyper.log_lin) * ((A * ls) @ (Bm * ls).T) / A.shape[1]
        return K

    def _prior_var(self, Q: np.ndarray) -> np.ndarray:
        """Prior variance at scaled inputs ``Q`` ``(m, d)``."""
        assert self.hyper is not None
        v = np.full(len(Q), float(np.exp(self.hyper.log_sf2).sum()))
        if self.hyper.log_lin is not None:
            ls = np.exp(self.hyper.log_ls)
            v = v + math.exp(self.hyper.log_lin) * ((Q * ls) ** 2).sum(1) / Q.shape[1]
        return v

    def _condition(self, X: np.ndarray, ys: np.ndarray) -> None:
        assert self.hyper is not None
        h = self.hyper
        self._X = X
        self._inv_ls = np.exp(-h.log_ls)
        self._Xs = X * self._inv_ls
        K = self._kernel(self._Xs, self._Xs)
        K[np.diag_indices_from(K)] += math.exp(h.log_sn2) + self.min_noise
        jitter = 0.0
        while True:
            try:
                self._L = np.linalg.cholesky(K + jitter * np.eye(len(K)))
                break
            except np.linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-8)
        self._ys = ys
        self._alpha = cho_solve((self._L, True), ys)
        self._Linv = solve_triangular(self._L, np.eye(len(self._L)), lower=True, check_finite=False)

    def conditioned(self, X_new: np.ndarray, y_new: np.ndarray) -> "GaussianProcess":
        """A copy with the same hyperparameters, conditioned on extra points (fantasies for batches)."""
        assert self._X is not None and self.hyper is not None
        g = GaussianProcess(blocks=self.blocks, linear=self.linear, min_noise=self.min_noise, noise_prior=self.noise_prior, max_iter=self.max_iter)
        g.hyper, g._y_mean, g._y_std = self.hyper, self._y_mean, self._y_std
        ys_new = (np.asarray(y_new, dtype=float) - self._y_mean) / self._y_std
        g._condition(np.vstack([self._X, np.asarray(X_new, dtype=float)]), np.concatenate([self._ys, ys_new]))
        return g

    # -- prediction --------------------------------------------------------------------------------
    def predict(self, Xq: np.ndarray, *, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (of the latent function) at ``Xq`` ``(m, d)``."""
        assert self.hyper is not None and self._X is not None
        Xq = np.asarray(Xq, dtype=float)
        means, stds = [], []
        # large candidate sets: the kernel and the variance's matrix product in single precision
        # (their relative error, ~1e-7 of the prior variance, is far below what the sampler resolves)
        dt = np.float32 if len(Xq) * len(self._X) >= 200_000 else np.float64
        Xs, Linv = (self._Xs.astype(dt), self._Linv.astype(dt)) if dt is np.float32 else (self._Xs, self._Linv)
        for s in range(0, len(Xq), chunk):
            Q = (Xq[s : s + chunk] * self._inv_ls).astype(dt, copy=False)
            Ks = self._kernel(Q, Xs)
            mu = Ks.astype(float, copy=False) @ self._alpha
            v = Linv @ Ks.T
            var = np.maximum(self._prior_var(Q.astype(float, copy=False)) - (v * v).sum(0, dtype=float), 1e-12)
            means.append(mu)
            stds.append(np.sqrt(var))
        mu = np.concatenate(means) if means else np.zeros(0)
        sd = np.concatenate(stds) if stds else np.zeros(0)
        return mu * self._y_std + self._y_mean, sd * self._y_std

    @property
    def n(self) -> int:
        return 0 if self._X is None else len(self._X)


def check_gradient(seed: int = 0, blocks: Sequence[int] | None = None, linear: bool = False) -> float:
    """Max relative error of the analytic gradient against finite differences (used by tests)."""
    rng = np.random.default_rng(seed)
    X = rng.random((12, 4))
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    gp = GaussianProcess(blocks=blocks, linear=linear)
    v = rng.normal(0, 0.5, 4 + len(blocks or [4]) + int(linear) + 1)
    f, g = gp._neg_log_post(v, X, (y - y.mean()) / y.std())
    num = np.zeros_like(v)
    for i in range(len(v)):
        e = np.zeros_like(v)
        e[i] = 1e-6
        num[i] = (gp._neg_log_post(v + e, X, (y - y.mean()) / y.std())[0] - gp._neg_log_post(v - e, X, (y - y.mean()) / y.std())[0]) / 2e-6
    return float(np.max(np.abs(num - g) / np.maximum(1e-6, np.abs(num))))
