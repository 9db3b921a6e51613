"""Latency: warm-up, then adaptive repeats (wall clock or CUDA events) until the median's 95 % CI is tight."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

__all__ = ["LatencyResult", "median_confidence_interval", "time_until_confident", "warm_up", "CudaEventTimer"]


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
        clock: ``wall`` or ``cuda_events``.
        min_ms, p10_ms: fastest sample and 10th percentile (diagnostics: on a busy machine they
            stay closer to the undisturbed latency than the median does).
    """

    median_ms: float
    ci_low_ms: float
    ci_high_ms: float
    repeats: int
    rel_half_width: float
    converged: bool
    outliers: int
    warmup: int
    clock: str = "wall"
    min_ms: float | None = None
    p10_ms: float | None = None

    @property
    def samples_per_s(self) -> float:
        """Calls per second at the median latency."""
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


@lru_cache(maxsize=4096)
def _median_ci_rank(n: int, confidence: float) -> int:
    """Smallest k with P(B <= k) >= (1 - confidence) / 2 for B ~ Binomial(n, 1/2) (``binom.ppf``).

    Exact, in NumPy: log pmf(k) = -n log 2 + sum_{i<k} log((n - i) / (i + 1)). Computed here rather
    than with ``scipy.stats.binom`` because importing scipy.stats takes 1-2 s of CPU, and the first
    call happens inside a measurement window (it inflated the first window's energy and CPU time).
    """
    half = n // 2 + 1
    i = np.arange(half - 1, dtype=float)
    log_pmf = -n * np.log(2.0) + np.concatenate([[0.0], np.cumsum(np.log((n - i) / (i + 1.0)))])
    cdf = np.cumsum(np.exp(log_pmf))
    k = int(np.searchsorted(cdf, (1.0 - confidence) / 2.0 * (1 - 1e-12), side="left"))
    return min(k, half - 1)


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
    j = _median_ci_rank(int(n), float(confidence))  # P(B <= j) >= alpha/2, P(B <= j-1) < alpha/2
    if j < 1:
        return float(x[0]), float(x[-1])
    return float(x[j - 1]), float(x[n - j])


def warm_up(
    call: Callable[[], object],
    *,
    runs: int = 3,
    seconds: float = 0.05,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Call ``call`` untimed at least ``runs`` times and for at least ``seconds``; return the count."""
    warm = 0
    t0 = clock()
    while warm < runs or clock() - t0 < seconds:
        call()
        warm += 1
        if sync:
            sync()
    return warm


class CudaEventTimer:
    """Times one call with a pair of CUDA events on the current stream (milliseconds).

    The events are recorded around the call and the end event is synchronised, so one sample is the
    GPU time of one batch; the caller synchronises the device once before the first sample.
    """

    def __init__(self, device: Any = None) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, call: Callable[[], object]) -> float:
        self.start.record()
        call()
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


def time_call(
    call: Callable[[], object],
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    timer: Callable[[Callable[[], object]], float] | None = None,
) -> float:
    """Milliseconds of one ``call``: by ``timer`` when given (e.g. CUDA events), else ``clock`` around
    the call and ``sync``."""
    if timer is not None:
        return float(timer(call))
    t = clock()
    call()
    if sync:
        sync()
    return (clock() - t) * 1000.0


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
    timer: Callable[[Callable[[], object]], float] | None = None,
    confidence: float = 0.95,
) -> LatencyResult:
    """Time ``call`` repeatedly until the median's CI half-width is within ``target_rel_ci``.

    Args:
        call: one inference (one batch).
        target_rel_ci: stop when the CI half-width is at most this share of the median.
        max_time_s: stop anyway after this much timing (``converged`` is then False).
        min_repeats: never stop before this many samples.
        max_repeats: never take more samples than this.
        warmup_runs, warmup_s: untimed calls first: at least ``warmup_runs`` and ``warmup_s`` seconds
            (``0, 0`` when the caller has warmed up already).
        sync: called after each call, before reading the clock (e.g. ``torch.cuda.synchronize``).
        clock: the wall clock, in seconds (a test may pass a fake one); it also bounds ``max_time_s``.
        timer: runs ``call`` once and returns its duration in ms (e.g. :class:`CudaEventTimer`);
            default: ``clock`` around ``call`` and ``sync``.
        confidence: level of the interval of the median.
    """
    if not 0 < target_rel_ci:
        raise ValueError(f"target_rel_ci must be positive, got {target_rel_ci}")
    warm = warm_up(call, runs=warmup_runs, seconds=warmup_s, sync=sync, clock=clock) if (warmup_runs or warmup_s) else 0
    samples: list[float] = []
    start = clock()
    next_check = min_repeats
    converged = False
    while True:
        samples.append(time_call(call, sync, clock, timer))
        n = len(samples)
        if n >= next_check:
            med = float(np.median(samples))
            lo, hi = median_confidence_interval(np.asarray(samples), confidence)
            if med > 0 and (hi - lo) / 2 / med <= target_rel_ci:
                converged = True
                break
            next_check = n + max(1, n // 5)  # check at +20 % samples: cheap, and not every call
        if n >= max_repeats or clock() - start >= max_time_s:
            break
    return summarize_samples(samples, warmup=warm, converged=converged, confidence=confidence,
                             clock="cuda_events" if isinstance(timer, CudaEventTimer) else "wall")


def summarize_samples(
    samples: Any, *, warmup: int = 0, converged: bool = False, confidence: float = 0.95, clock: str = "wall"
) -> LatencyResult:
    """Median, CI of the median and outlier count of timing samples (ms)."""
    arr = np.asarray(samples, dtype=float)
    med = float(np.median(arr))
    lo, hi = median_confidence_interval(arr, confidence)
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
        warmup=warmup,
        clock=clock,
        min_ms=float(arr.min()),
        p10_ms=float(np.percentile(arr, 10)),
    )
