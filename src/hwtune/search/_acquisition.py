"""Acquisition functions of the hardware-aware sampler (all in log space, minimization).

- ``minimize: error`` (any quality metric) under hardware constraints: expected improvement over the
  best feasible network, times the probability of feasibility;
- ``minimize: <hardware metric>`` under ``error <= x``: expected improvement of the predicted hardware
  cost, times the probability that the error meets its bound;
- ``minimize: [error, <hardware metric>, ...]``: expected hypervolume improvement (two objectives,
  exact per Monte-Carlo sample; augmented Chebyshev scalarization with a random weight beyond two).

Shapes: ``n`` candidates; ``mu``/``sd`` are ``(n,)``; ``log_pf`` is ``(n,)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import log_ndtr, ndtr

from hwtune.costmodel import GaussianProcess
from hwtune.search._targets import Target

__all__ = ["log_ei", "log_prob", "hvi_2d", "pareto_mask", "acquisition"]

_LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)


def log_ei(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log expected improvement below ``best``, stable far in the tail."""
    sd = np.maximum(sd, 1e-12)
    z = (best - mu) / sd
    out = np.empty_like(z)
    big = z > -6.0
    zb = z[big]
    val = zb * ndtr(zb) + np.exp(-0.5 * zb * zb - _LOG_2PI_HALF)
    out[big] = np.log(np.maximum(val, 1e-300))
    zs = z[~big]  # z Phi(z) + phi(z) ~ phi(z) / z^2 for z -> -inf
    out[~big] = -0.5 * zs * zs - _LOG_2PI_HALF - 2.0 * np.log(-zs)
    return out + np.log(sd)


def log_prob(mu: np.ndarray, sd: np.ndarray, bound: float, below: bool) -> np.ndarray:
    """log P(value <= bound) (``below``) or log P(value >= bound) under N(mu, sd^2)."""
    z = (bound - mu) / np.maximum(sd, 1e-12)
    return log_ndtr(z if below else -z)


def hvi_2d(samples: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume improvement of each point of ``samples`` ``(..., 2)`` over ``front`` ``(k, 2)``
    (non-dominated) within the box below ``ref`` ``(2,)``; returns ``samples.shape[:-1]``."""
    if len(front):
        f = front[np.argsort(front[:, 0])]
        starts = np.concatenate([[-np.inf], f[:, 0]])
        ends = np.concatenate([f[:, 0], [np.inf]])
        levels = np.minimum.accumulate(np.concatenate([[ref[1]], np.minimum(f[:, 1], ref[1])]))
    else:
        starts, ends, levels = np.array([-np.inf]), np.array([np.inf]), np.array([ref[1]])
    lo = np.maximum(starts, samples[..., 0:1])
    hi = np.minimum(ends, ref[0])
    width = np.maximum(hi - lo, 0.0)
    height = np.maximum(levels - samples[..., 1:2], 0.0)
    return (width * height).sum(-1)


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``Y`` ``(n, m)``."""
    keep = np.ones(len(Y), dtype=bool)
    for i in range(len(Y)):
        if keep[i]:
            keep &= ~(np.all(Y[i] <= Y, axis=1) & np.any(Y[i] < Y, axis=1))
    return keep


def acquisition(
    X: np.ndarray,
    log_pf: np.ndarray,
    hw_pred: dict[str, tuple[np.ndarray, np.ndarray]],
    quality: dict[str, GaussianProcess],
    objectives: Sequence[Target],
    quality_constraints: Sequence[Target],
    feasible_Y: np.ndarray,
    fant_X: np.ndarray,
    rng: np.random.Generator,
    n_mc: int = 32,
) -> np.ndarray:
    """log acquisition ``(n,)`` of candidates with inputs ``X`` ``(n, d)``.

    Args:
        log_pf: log P(hardware constraints hold) of each candidate.
        hw_pred: hardware metric -> predicted (mean, std) of each candidate (the cost model).
        quality: metric -> GP of a quality metric on the trained networks (model space).
        feasible_Y: ``(k, len(objectives))`` model-space objective values of the feasible trained
            networks (rows with a missing value are dropped).
        fant_X: ``(p, d)`` pending candidates (running trials, earlier picks of a batch), conditioned
            on at their posterior mean ("kriging believer").
    """
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = dict(hw_pred)
    latent_sd: dict[str, np.ndarray] = {}
    for m, gp in quality.items():
        if len(fant_X):
            gp = gp.conditioned(fant_X, gp.predict(fant_X)[0])
        mu, sd = gp.predict(X)
        latent_sd[m] = sd
        preds[m] = (mu, np.sqrt(sd * sd + gp.noise_var))
    score = log_pf.copy()
    for c in quality_constraints:
        if c.metric in preds:
            mu, sd = preds[c.metric]
            score += log_prob(mu, sd, c.bound, c.below)  # type: ignore[arg-type]
    if any(t.metric not in preds for t in objectives):
        return score  # a model not fitted yet: feasibility alone
    if len(objectives) == 1:
        t = objectives[0]
        mu, sd = preds[t.metric]
        sd = latent_sd.get(t.metric, sd)
        sign = 1.0 if t.lower_better else -1.0
        ys = sign * feasible_Y[:, 0] if len(feasible_Y) else feasible_Y
        if not len(ys):
            return score  # no feasible network yet: the likeliest feasible one
        return score + log_ei(sign * mu, sd, float(np.min(ys)))
    return score + _log_ehvi(objectives, preds, feasible_Y, rng, n_mc)


def _log_ehvi(
    objs: Sequence[Target], preds: dict[str, tuple[np.ndarray, np.ndarray]], feasible_Y: np.ndarray, rng: np.random.Generator, n_mc: int
) -> np.ndarray:
    signs = np.array([1.0 if t.lower_better else -1.0 for t in objs])
    Y = feasible_Y * signs if len(feasible_Y) else feasible_Y
    mu = np.stack([preds[t.metric][0] for t in objs], 1) * signs
    sd = np.stack([preds[t.metric][1] for t in objs], 1)
    if len(Y) == 0:
        return np.zeros(len(mu))
    front = Y[pareto_mask(Y)]
    # reference point: for a hardware objective, beyond the worst value seen (the slowest accurate
    # network still extends the front); for a quality objective, the median of the trained networks
    # (a network worse than the typical one is on no useful front, and the cheapest degenerate
    # networks would otherwise draw the search to them)
    ideal, worst = Y.min(0), Y.max(0)
    span = np.where(worst > ideal, worst - ideal, np.maximum(np.abs(worst), 1.0))
    ref = worst + 0.1 * span
    for j, t in enumerate(objs):
        if not t.hardware and len(Y) >= 3:
            ref[j] = float(np.median(Y[:, j]))
    front = front[np.all(front < ref, axis=1)] if len(front) else front
    Z = rng.standard_normal((n_mc, len(objs)))
    if len(objs) == 2:
        out = np.zeros(len(mu))
        for s0 in range(0, len(mu), 1024):
            S = mu[s0 : s0 + 1024, None, :] + sd[s0 : s0 + 1024, None, :] * Z[None, :, :]
            out[s0 : s0 + 1024] = hvi_2d(S, front, ref).mean(1)
    else:  # augmented Chebyshev scalarization with a random weight (ParEGO)
        w = rng.dirichlet(np.ones(len(objs)))
        scale = np.where(ref > ideal, ref - ideal, 1.0)

        def cheb(P: np.ndarray) -> np.ndarray:
            Pn = (P - ideal) / scale
            return np.max(w * Pn, axis=-1) + 0.05 * np.sum(w * Pn, axis=-1)

        best = cheb(front).min()
        S = mu[:, None, :] + sd[:, None, :] * Z[None, :, :]
        out = np.maximum(best - cheb(S), 0.0).mean(1)
    return np.log(np.maximum(out, 1e-300))
