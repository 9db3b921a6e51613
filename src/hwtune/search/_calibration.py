"""Did the cost model's predictions of the sampler's own proposals hold? (the winner's curse)

The sampler proposes the candidates its cost model predicts within budget. Among thousands of
candidates, those the model *under*-predicts are the ones that pass its screen and look best, so the
networks it proposes are more often over budget than their predicted probability says, even when the
model is unbiased over the space (seen on real MNIST, issue 19: 34 networks measured over budget for 5
trained, the measured latency above the prediction for 31 of 36 proposals, while cross-validation of the
same measurements showed no bias).

This module measures that effect where it happens, on the proposals that were measured, from the
prediction the study stored beside each measurement (``hwtune:predicted``: median and 95 % interval;
positions in log units for a positive metric): the residual ``z`` of the measured value and the
position ``z_bound`` of the constraint's bound, both in predictive spreads. Over the last
:data:`WINDOW` of them it finds a spread ``s`` (the residuals' MAD, at least 1) and a bias ``b`` such
that the predicted probabilities ``Phi((z_bound - b) / s)`` add up to the number of proposals that
really met the constraint (shrunk towards the model's own probabilities with few points); the
proposer then screens candidates with ``Phi((z_bound - b) / s)`` instead of ``Phi(z_bound)``
(:func:`recalibrate`). A model whose proposals keep landing over budget is trusted less, one whose
proposals meet their predictions keeps its probabilities.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from hwtune.vocabulary import read_trial

__all__ = ["selection_calibration", "recalibrate", "WINDOW", "MIN_POINTS"]

WINDOW = 20
"""The most recent measured proposals the calibration reads (the model changes as it learns)."""
MIN_POINTS = 5
"""No correction with fewer measured proposals."""
_Z95 = 1.959963984540054


def _standardized(value: float, pred: Mapping[str, Any]) -> float | None:
    """Where ``value`` lies in a stored prediction (median and 95 % interval), in predictive spreads:
    in log units for a positive metric whose interval is positive, else linear."""
    med, lo, hi = pred.get("value"), pred.get("ci_low"), pred.get("ci_high")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (value, med, lo, hi)):
        return None
    if min(value, med, lo, hi) > 0:
        spread = (math.log(hi) - math.log(lo)) / (2 * _Z95)
        return (math.log(value) - math.log(med)) / spread if spread > 0 else None
    spread = (hi - lo) / (2 * _Z95)
    return (value - med) / spread if spread > 0 else None


def selection_calibration(trials: Sequence[Any], constraints: Sequence[Any]) -> dict[str, tuple[float, float]]:
    """``{metric: (bias, spread)}`` for the hardware constraints' metrics, from the measured proposals
    (see the module docstring); metrics with fewer than :data:`MIN_POINTS` are left out (no correction).

    ``spread``: the residuals' robust spread (MAD, in [1, 3]: intervals that were too narrow widen).
    ``bias``: the shift that makes the proposals' predicted probabilities of meeting the constraint
    match how many of them did (bisection on the mean of ``Phi((z_bound - b) / spread)``), shrunk
    towards 0 as if :data:`MIN_POINTS` more proposals had met their predictions, in [-1, 3].
    ``constraints``: :class:`hwtune.space.Constraint` s (``metric``, ``bound``, ``op``)."""
    by_metric = {}
    for c in constraints:
        by_metric.setdefault(c.metric, c)
    rows: dict[str, list[tuple[int, float, float, bool]]] = {m: [] for m in by_metric}
    for t in trials:
        s = read_trial(t)
        if not s.predicted:
            continue
        measured = s.measured()
        for m, c in by_metric.items():
            if m in measured and m in s.predicted:
                z = _standardized(float(measured[m]), s.predicted[m])
                zb = _standardized(float(c.bound), s.predicted[m])
                if z is not None and zb is not None and math.isfinite(z) and math.isfinite(zb):
                    below = c.op in ("<=", "<")
                    held = measured[m] <= c.bound if below else measured[m] >= c.bound
                    # orient so that "held" is z <= z_bound for either direction
                    rows[m].append((s.number, z if below else -z, zb if below else -zb, bool(held)))
    out: dict[str, tuple[float, float]] = {}
    for m, r in rows.items():
        if len(r) < MIN_POINTS:
            continue
        last = sorted(r)[-WINDOW:]
        z = np.array([v[1] for v in last])
        zb = np.array([v[2] for v in last])
        held = np.array([v[3] for v in last], dtype=float)
        spread = float(np.clip(1.4826 * np.median(np.abs(z - np.median(z))), 1.0, 3.0))
        n = len(z)
        rate = (held.sum() + MIN_POINTS * float(np.mean(ndtr(zb / spread)))) / (n + MIN_POINTS)  # shrunk
        lo, hi = -1.0, 3.0
        for _ in range(40):  # mean P(held) falls as the bias grows
            mid = 0.5 * (lo + hi)
            if float(np.mean(ndtr((zb - mid) / spread))) > rate:
                lo = mid
            else:
                hi = mid
        out[m] = (0.5 * (lo + hi), spread)
    return out


def recalibrate(log_p: np.ndarray, bias: float, spread: float, below: bool) -> np.ndarray:
    """log P(constraint holds) after the correction: the bound's position ``z`` in the model's predictive
    distribution (from the model's own ``log_p``), then ``Phi((z - bias) / spread)`` (``below``: a
    ``<=`` constraint; else ``>=``)."""
    p = np.exp(np.asarray(log_p, dtype=float))
    p_below = np.clip(p if below else 1.0 - p, 1e-300, 1.0 - 1e-16)
    z = ndtri(p_below)
    return log_ndtr((z - bias) / spread) if below else log_ndtr((bias - z) / spread)
