"""Latency over several short windows, each bracketed by a fixed reference network, each checked
against what the OS says about the machine.

One long window cannot tell a slow network from a slow machine, and its interval (the order
statistics of samples taken over one second) says nothing about how the machine's speed moves
between seconds. Here the repeats are spread over ``windows`` short windows:

``reference x r/2 | network x m | reference x r/2``   (one window; then the next)

- the **interval** of the latency comes from the spread *between* window medians (a Student-t
  interval on them), joined with the order-statistic interval of all samples: it widens when the
  machine is unsteady, even when no flag was raised;
- the **reference** (a small fixed conv net, built once per process and device) runs in the same
  windows, so a slow-down of the whole machine shows in it: the latency relative to the reference
  (``ratio``, with its own interval from the window ratios) is what stays put when the machine
  drifts;
- each window is **flagged** by what the OS says (other processes runnable beyond our CPUs, other
  processes' CPU time that must have shared our cores, hypervisor steal time from ``/proc/stat``,
  a CPU frequency change, thermal throttling; on a GPU the device's own state meter): a flagged
  window is repeated (bounded); when too few clean windows remain, the flagged ones are kept *in the
  interval* (which widens) and the result says so.

Everything here takes a clock and timers, so that tests replay recorded timings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hwtune.hardware._latency import median_confidence_interval, time_call
from hwtune.hardware._meters import Meter

__all__ = [
    "WindowRecord",
    "WindowedResult",
    "measure_in_windows",
    "summarize_windows",
    "t_quantile_975",
]

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042}


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (table; no scipy import in a window)."""
    if df < 1:
        return math.inf
    return _T975.get(df, 1.96 + 2.4 / df)


# --------------------------------------------------------------------------- records and their summary


@dataclass
class WindowRecord:
    """One short window: the network's and the reference's samples (ms) and what the OS said."""

    net_ms: list[float]
    ref_ms: list[float] = field(default_factory=list)
    flagged: bool = False
    reasons: list[str] = field(default_factory=list)
    t_start: float = 0.0

    @property
    def median(self) -> float:
        return float(np.median(self.net_ms))

    @property
    def ref_median(self) -> float | None:
        return float(np.median(self.ref_ms)) if self.ref_ms else None


@dataclass(frozen=True)
class WindowedResult:
    """Latency from several windows (ms), the reference and the ratio to it.

    Attributes:
        median_ms: median of the used windows' medians.
        ci_low_ms, ci_high_ms: 95 % interval: the Student-t interval of the window medians joined with the
            order-statistic interval of all used samples (the wider of the two on each side).
        repeats: network samples used.
        rel_half_width: half the interval's width over the median.
        converged: the interval reached the target before the time cap.
        windows: windows used; flagged: windows flagged by the OS (used or not); repeated: windows
            run again because one was flagged; flagged_used: flagged windows kept in the estimate
            (too few clean ones): their spread is in the interval.
        between_rel_half_width, within_rel_half_width: the two parts of the interval.
        ref_ms, ref_ci: median of the reference's window medians, and its interval.
        ratio, ratio_ci: latency / reference (median of window ratios, Student-t interval on them).
        window_medians_ms, window_ref_ms: per used window (to pool rounds, see ``pool_windows``).
        reasons: the OS's reasons for the flags.
    """

    median_ms: float
    ci_low_ms: float
    ci_high_ms: float
    repeats: int
    rel_half_width: float
    converged: bool
    windows: int
    flagged: int
    repeated: int
    flagged_used: int
    between_rel_half_width: float
    within_rel_half_width: float
    min_ms: float
    p10_ms: float
    ref_ms: float | None = None
    ref_ci: tuple[float, float] | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    window_medians_ms: tuple[float, ...] = ()
    window_ref_ms: tuple[float, ...] = ()
    reasons: tuple[str, ...] = ()
    clock: str = "wall"
    outliers: int = 0

    @property
    def ratio_rel_half_width(self) -> float:
        """Half the ratio interval's width over the ratio (``inf`` without a reference)."""
        if self.ratio is None or self.ratio_ci is None or self.ratio <= 0:
            return math.inf
        return (self.ratio_ci[1] - self.ratio_ci[0]) / 2 / self.ratio

    def at_reference_speed(self, reference_ms: float) -> WindowedResult:
        """The latency the network has when the reference takes ``reference_ms``: ratio x
        ``reference_ms``, its interval the ratio's interval times the same (the wall-clock values
        are the caller's to keep). ``self`` when no ratio was measured."""
        if self.ratio is None or self.ratio_ci is None or reference_ms <= 0:
            return self
        med = self.ratio * reference_ms
        lo, hi = self.ratio_ci[0] * reference_ms, self.ratio_ci[1] * reference_ms
        lo = max(min(lo, med), 1e-9)
        hi = max(hi, med)
        per_window = tuple(m / r * reference_ms for m, r in zip(self.window_medians_ms, self.window_ref_ms) if r > 0)
        return replace(
            self, median_ms=med, ci_low_ms=lo, ci_high_ms=hi, rel_half_width=(hi - lo) / 2 / med,
            window_medians_ms=per_window or self.window_medians_ms,
        )


def _t_interval(values: np.ndarray, center: float) -> tuple[float, float]:
    k = values.size
    if k < 2:
        return center, center
    half = t_quantile_975(k - 1) * float(np.std(values, ddof=1)) / math.sqrt(k)
    return center - half, center + half


def summarize_windows(
    records: Sequence[WindowRecord],
    *,
    min_clean: int = 3,
    converged: bool = False,
    repeated: int = 0,
    clock: str = "wall",
) -> WindowedResult:
    """Combine windows: clean ones when at least ``min_clean`` exist, else all (flagged ones widen the interval)."""
    if not records:
        raise ValueError("no windows")
    clean = [r for r in records if not r.flagged]
    used = clean if len(clean) >= min_clean else list(records)
    flagged_used = sum(1 for r in used if r.flagged)
    meds = np.array([r.median for r in used])
    center = float(np.median(meds))
    b_lo, b_hi = _t_interval(meds, center)
    samples = np.concatenate([np.asarray(r.net_ms, dtype=float) for r in used])
    w_lo, w_hi = median_confidence_interval(samples)
    # the median of the calls is never below the fastest call measured (and a latency is positive:
    # a lower bound of 0 made the throughput's upper bound a division by zero on a loaded machine)
    lo = max(min(b_lo, w_lo, center), float(samples.min()) if samples.size else 0.0)
    hi = max(b_hi, w_hi, center)
    q1, q3 = np.percentile(samples, [25, 75])
    ref_ms = ref_ci = ratio = ratio_ci = None
    refs = [r.ref_median for r in used]
    if all(x is not None and x > 0 for x in refs):
        rr = np.array(refs, dtype=float)
        ref_ms = float(np.median(rr))
        ref_ci = tuple(max(0.0, v) for v in _t_interval(rr, ref_ms))  # type: ignore[assignment]
        q = meds / rr
        ratio = float(np.median(q))
        ratio_ci = tuple(max(0.0, v) for v in _t_interval(q, ratio))  # type: ignore[assignment]
    reasons = tuple(dict.fromkeys(x for r in records if r.flagged for x in r.reasons))
    return WindowedResult(
        median_ms=center,
        ci_low_ms=lo,
        ci_high_ms=hi,
        repeats=int(samples.size),
        rel_half_width=(hi - lo) / 2 / center if center > 0 else math.inf,
        converged=converged,
        windows=len(used),
        flagged=sum(1 for r in records if r.flagged),
        repeated=repeated,
        flagged_used=flagged_used,
        between_rel_half_width=(b_hi - b_lo) / 2 / center if center > 0 else math.inf,
        within_rel_half_width=(w_hi - w_lo) / 2 / center if center > 0 else math.inf,
        min_ms=float(samples.min()),
        p10_ms=float(np.percentile(samples, 10)),
        ref_ms=ref_ms,
        ref_ci=ref_ci,
        ratio=ratio,
        ratio_ci=ratio_ci,
        window_medians_ms=tuple(float(x) for x in meds),
        window_ref_ms=tuple(float(x) for x in refs) if ref_ms is not None else (),  # type: ignore[arg-type]
        reasons=reasons,
        clock=clock,
        outliers=int(np.sum(samples > q3 + 3 * (q3 - q1))),
    )


# --------------------------------------------------------------------------- the driver


def measure_in_windows(
    call: Callable[[], object],
    *,
    reference: Callable[[], object] | None = None,
    probe: Callable[[], Meter] | None = None,
    target_rel_ci: float = 0.05,
    max_time_s: float = 3.0,
    windows: int = 5,
    max_windows: int = 16,
    window_s: float = 0.05,
    min_per_window: int = 3,
    ref_per_window: int = 8,
    max_flagged_repeats: int = 5,
    min_clean: int = 3,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    timer: Callable[[Callable[[], object]], float] | None = None,
    clock_name: str = "wall",
    converge_on_ratio: bool = False,
) -> WindowedResult:
    """Time ``call`` in short windows bracketed by ``reference`` until the interval is within target.

    Args:
        call: one inference of the network (one batch), warmed up already.
        reference: one inference of the reference network (warmed up), or None.
        probe: a factory of a state meter wrapped around each window (:class:`~hwtune.hardware.CPUStateMeter` on a CPU).
        target_rel_ci: stop once the joined interval's half-width is within this share of the median.
        max_time_s: time cap on the whole measurement (``converged`` False when hit).
        windows: fewest windows; ``max_windows``: most windows counted in the estimate.
        window_s, min_per_window: each window times the network at least this long and this often.
        ref_per_window: reference calls per window, half before and half after the network's.
        max_flagged_repeats: how many flagged windows are run again in all.
        min_clean: clean windows needed to leave the flagged ones out.
        sync, clock, timer: as in :func:`~hwtune.hardware.time_until_confident` (tests pass fakes).
        converge_on_ratio: stop on the interval of the ratio to the reference instead of the
            wall-clock latency's (what a caller that reports the latency at the reference's speed
            needs: on a machine whose speed drifts, the wall-clock interval may never narrow).
    """
    if target_rel_ci <= 0:
        raise ValueError(f"target_rel_ci must be positive, got {target_rel_ci}")

    def one(fn: Callable[[], object]) -> float:
        return time_call(fn, sync, clock, timer)

    records: list[WindowRecord] = []
    repeated = counted = 0
    start = clock()
    converged = False
    half_ref = ref_per_window // 2 if reference is not None else 0
    while True:
        meter = probe() if probe is not None else None
        if meter is not None:
            meter.begin()
        t_w = clock()
        rec = WindowRecord(net_ms=[], t_start=t_w)
        for _ in range(half_ref):
            rec.ref_ms.append(one(reference))  # type: ignore[arg-type]
        t_net = clock()
        while len(rec.net_ms) < min_per_window or clock() - t_net < window_s:
            rec.net_ms.append(one(call))
        for _ in range(ref_per_window - half_ref if reference is not None else 0):
            rec.ref_ms.append(one(reference))  # type: ignore[arg-type]
        if meter is not None:
            meter.end()
            st = meter.state()
            if st is not None and st.disturbed:
                rec.flagged, rec.reasons = True, list(st.reasons)
        records.append(rec)
        if rec.flagged and repeated < max_flagged_repeats:
            repeated += 1  # a flagged window does not count toward the fewest: another one is run
        else:
            counted += 1
        if counted >= windows:
            res = summarize_windows(records, min_clean=min_clean)
            width = res.ratio_rel_half_width if converge_on_ratio and res.ratio is not None else res.rel_half_width
            if width <= target_rel_ci:
                converged = True
                break
            if res.windows >= max_windows:
                break
        if clock() - start >= max_time_s:
            break
    return summarize_windows(records, min_clean=min_clean, converged=converged, repeated=repeated, clock=clock_name)
