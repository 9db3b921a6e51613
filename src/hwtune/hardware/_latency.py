"""Latency by wall clock: warm-up, then adaptive repeats until the median's 95 % CI is tight."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

__all__ = ["LatencyResult", "median_confidence_interval", "time_until_confident"]


@dataclass(frozen=True)
class LatencyResult:
    """Summary of repeated timings of one call (all in milliseconds).

    Attributes:
        median_ms: median of the samples.
        ci_low_ms, ci_high_ms: distribution-free 95 % confidence interval of the median.
        repeats: number of timed samples.
        rel_half_width: (ci_high - ci_low) / 2 / median.
        converged: True when ``rel_half_width`` reached the target before the time cap.
        outliers: samples above Q3 + 3 IQR (kept in the median, reported).
        warmup: calls made before timing.
    """

    median_ms: float
    ci_low_ms: float
    ci_high_ms: float
    repeats: int
    rel_half_width: float
    converged: bool
    outliers: int
    warmup: int


def median_confidence_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic confidence interval of the median (no distribution assumed).

    With n sorted samples and B ~ Binomial(n, 1/2), the interval [x_(j), x_(n-j+1)] covers the
    true median with probability 1 - 2 P(B <= j - 1); j is the largest rank keeping that >= confidence.
    Needs n >= 6 for a 95 % interval; with fewer samples the full range is returned.
    """
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n == 0:
        raise ValueError("no samples")
    alpha = 1.0 - confidence
    j = int(stats.binom.ppf(alpha / 2, n, 0.5))  # P(B <= j) >= alpha/2, P(B <= j-1) < alpha/2
    if j < 1:
        return float(x[0]), float(x[-1])
    return float(x[j - 1]), float(x[n - j])


def time_until_confident(
    call: Callable[[], object],
    *,
    target_rel_ci: float = 0.05,
    max_time_s: float = 3.0,
    min_repeats: int = 10,
    max_repeats: int = 100_000,
    warmup_runs: int = 3,
    warmup_s: float = 0.05,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyResult:
    """Time ``call`` repeatedly until the median's 95 % CI half-width is within ``target_rel_ci``.

    Args:
        call: one inference (one batch).
        target_rel_ci: stop when the CI half-width is at most this share of the median.
        max_time_s: stop anyway after this much timing (``converged`` is then False).
        min_repeats: never stop before this many samples.
        warmup_runs, warmup_s: untimed calls first: at least ``warmup_runs`` and ``warmup_s`` seconds.
        sync: called before reading the clock (e.g. ``torch.cuda.synchronize``).
        clock: the clock, in seconds (a test may pass a fake one).
    """
    warm = 0
    t0 = clock()
    while warm < warmup_runs or clock() - t0 < warmup_s:
        call()
        warm += 1
        if sync:
            sync()
    samples: list[float] = []
    start = clock()
    next_check = min_repeats
    converged = False
    while True:
        t = clock()
        call()
        if sync:
            sync()
        samples.append((clock() - t) * 1000.0)
        n = len(samples)
        if n >= next_check:
            med = float(np.median(samples))
            lo, hi = median_confidence_interval(np.asarray(samples))
            if med > 0 and (hi - lo) / 2 / med <= target_rel_ci:
                converged = True
                break
            next_check = n + max(1, n // 5)  # check at +20 % samples: cheap, and not every call
        if n >= max_repeats or clock() - start >= max_time_s:
            break
    arr = np.asarray(samples)
    med = float(np.median(arr))
    lo, hi = median_confidence_interval(arr)
    q1, q3 = np.percentile(arr, [25, 75])
    outliers = int(np.sum(arr > q3 + 3 * (q3 - q1)))
    return LatencyResult(
        median_ms=med,
        ci_low_ms=lo,
        ci_high_ms=hi,
        repeats=int(arr.size),
        rel_half_width=(hi - lo) / 2 / med if med > 0 else float("inf"),
        converged=converged,
        outliers=outliers,
        warmup=warm,
    )
