"""Did the cost model's predictions of the sampler's own proposals hold? (the winner's curse)

The sampler proposes the candidates its cost model predicts within budget. Among thousands of
candidates, those the model *under*-predicts are the ones that pass its screen and look best, so the
networks it proposes are more often over budget than their predicted probability says, even when the
model is unbiased over the space (seen on real MNIST, issue 19: 34 networks measured over budget for 5
trained, the measured latency above the prediction for 31 of 36 proposals, while cross-validation of the
same measurements showed no bias).

This module measures that effect where it happens: for every proposal that was measured, the
standardized residual ``z = (measured - predicted median) / predictive spread`` of each hardware
metric, read from the prediction the study stored beside the measurement (``hwtune:predicted``; in log
units for a positive metric). Over the last :data:`WINDOW` of them, a robust bias ``b`` (the median,
shrunk towards 0 with few points) and spread ``s`` (MAD, at least 1) say how the residuals of *selected*
candidates are really distributed; the proposer then takes P(within budget) as
``Phi((z_bound - b) / s)`` instead of ``Phi(z_bound)`` (:func:`recalibrate`), where ``z_bound`` is the
bound's position in the model's own predictive distribution. A model whose proposals keep landing
over budget is trusted less, one that is right keeps its probabilities.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import log_ndtr, ndtri

from hwtune.vocabulary import read_trial

__all__ = ["selection_calibration", "recalibrate", "WINDOW", "MIN_POINTS"]

WINDOW = 20
"""The most recent measured proposals the calibration reads (the model changes as it learns)."""
MIN_POINTS = 5
"""No correction with fewer measured proposals."""
_Z95 = 1.959963984540054


def _residual(measured: float, pred: Mapping[str, Any]) -> float | None:
    """Standardized residual of one measurement against its stored prediction (median and 95 % interval)."""
    med, lo, hi = pred.get("value"), pred.get("ci_low"), pred.get("ci_high")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (measured, med, lo, hi)):
        return None
    if min(measured, med, lo, hi) > 0:  # a positive metric: residuals in log units (latency, energy...)
        spread = (math.log(hi) - math.log(lo)) / (2 * _Z95)
        z = (math.log(measured) - math.log(med)) / spread if spread > 0 else None
    else:
        spread = (hi - lo) / (2 * _Z95)
        z = (measured - med) / spread if spread > 0 else None
    return z


def selection_calibration(trials: Sequence[Any], metrics: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``{metric: (bias, spread)}`` of the standardized residuals of measured proposals (see the module
    docstring); metrics with fewer than :data:`MIN_POINTS` are left out (no correction)."""
    rows: dict[str, list[tuple[int, float]]] = {m: [] for m in metrics}
    for t in trials:
        s = read_trial(t)
        if not s.predicted:
            continue
        measured = s.measured()
        for m in metrics:
            if m in measured and m in s.predicted:
                z = _residual(float(measured[m]), s.predicted[m])
                if z is not None and math.isfinite(z):
                    rows[m].append((s.number, z))
    out: dict[str, tuple[float, float]] = {}
    for m, r in rows.items():
        if len(r) < MIN_POINTS:
            continue
        z = np.array([v for _, v in sorted(r)[-WINDOW:]])
        n = len(z)
        med = float(np.median(z))
        bias = float(np.clip(med * n / (n + MIN_POINTS), -1.0, 3.0))
        spread = float(np.clip(1.4826 * np.median(np.abs(z - med)), 1.0, 3.0))
        out[m] = (bias, spread)
    return out


def recalibrate(log_p: np.ndarray, bias: float, spread: float, below: bool) -> np.ndarray:
    """log P(constraint holds) after the correction: the bound's position ``z`` in the model's predictive
    distribution (from the model's own ``log_p``), then ``Phi((z - bias) / spread)`` (``below``: a
    ``<=`` constraint; else ``>=``)."""
    p = np.exp(np.asarray(log_p, dtype=float))
    p_below = np.clip(p if below else 1.0 - p, 1e-300, 1.0 - 1e-16)
    z = ndtri(p_below)
    return log_ndtr((z - bias) / spread) if below else log_ndtr((bias - z) / spread)
