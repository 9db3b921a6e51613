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
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.hardware._latency import median_confidence_interval, time_call
from hwtune.hardware._meters import DeviceState, Meter

__all__ = [
    "OSWindowProbe",
    "WindowRecord",
    "WindowedResult",
    "measure_in_windows",
    "reference_call",
    "reference_history",
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


# --------------------------------------------------------------------------- what the OS says


_PROC_STAT = Path("/proc/stat")
_PROC_LOADAVG = Path("/proc/loadavg")
_SYS_CPU = Path("/sys/devices/system/cpu")


def _read_proc_stat(cpus: Sequence[int], path: Path) -> dict[str, float] | None:
    """Summed ticks over ``cpus``: busy (user..softirq), steal, total; None where unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    want = {f"cpu{c}" for c in cpus}
    busy = steal = total = 0.0
    seen = False
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in want:
            continue
        v = [float(x) for x in parts[1:11]] + [0.0] * (10 - len(parts[1:11]))
        user, nice, system, idle, iowait, irq, softirq, st = v[:8]
        busy += user + nice + system + irq + softirq
        steal += st
        total += user + nice + system + idle + iowait + irq + softirq + st
        seen = True
    return {"busy": busy, "steal": steal, "total": total} if seen else None


def _read_running(path: Path) -> int | None:
    """Runnable tasks right now (4th field of /proc/loadavg, ``running/total``), this one included."""
    try:
        parts = path.read_text().split()
        return int(parts[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _read_freq_khz(cpus: Sequence[int], root: Path) -> float | None:
    vals = []
    for c in cpus:
        try:
            vals.append(float((root / f"cpu{c}" / "cpufreq" / "scaling_cur_freq").read_text().strip()))
        except (OSError, ValueError):
            continue
    return sum(vals) / len(vals) if vals else None


class OSWindowProbe(Meter):
    """Flags one CPU window from what the OS tells; cheap enough to wrap windows of tens of ms.

    A window is flagged (``busy``) when

    - more tasks were runnable than this process has CPUs (``/proc/loadavg``, read at both ends);
    - other processes' CPU time on our CPUs exceeded what the CPUs we do not use could hold, so they
      must have shared ours: ``busy(our CPUs) - own > (CPUs - threads) x wall`` plus two ticks;
    - the hypervisor stole time (``steal`` of ``/proc/stat``) beyond two ticks and 5 % of the window;

    and ``throttled`` when the mean CPU frequency changed by more than 10 %, or thermal throttle
    events were counted. Paths and clocks are arguments so that a test replays recorded files.
    """

    name = "os_window"

    def __init__(
        self,
        threads: int = 1,
        cpus: Sequence[int] | None = None,
        *,
        proc_stat: Path = _PROC_STAT,
        proc_loadavg: Path = _PROC_LOADAVG,
        sys_cpu: Path = _SYS_CPU,
        clock: Callable[[], float] = time.perf_counter,
        process_cpu: Callable[[], float] = time.process_time,
        tick_s: float | None = None,
    ) -> None:
        if cpus is None:
            try:
                cpus = sorted(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - non-Linux
                cpus = list(range(os.cpu_count() or 1))
        self.cpus = list(cpus)
        self.threads = max(1, int(threads))
        self.proc_stat, self.proc_loadavg, self.sys_cpu = proc_stat, proc_loadavg, sys_cpu
        self.clock, self.process_cpu = clock, process_cpu
        if tick_s is None:
            tick_s = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self.tick_s = tick_s
        self._b: dict[str, Any] = {}
        self._e: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        return {
            "t": self.clock(),
            "own": self.process_cpu(),
            "stat": _read_proc_stat(self.cpus, self.proc_stat),
            "running": _read_running(self.proc_loadavg),
            "freq": _read_freq_khz(self.cpus, self.sys_cpu),
        }

    def begin(self) -> None:
        self._b = self._read()

    def end(self) -> None:
        self._e = self._read()

    def state(self) -> DeviceState:
        b, e = self._b, self._e
        wall = max(e["t"] - b["t"], 1e-9)
        n = max(len(self.cpus), 1)
        own = max(0.0, e["own"] - b["own"])
        details: dict[str, Any] = {"window_s": round(wall, 5)}
        reasons: list[str] = []
        busy = throttled = False
        runs = [r for r in (b["running"], e["running"]) if r is not None]
        if runs:
            details["runnable"] = max(runs)
            if max(runs) > n:
                busy = True
                reasons.append(f"{max(runs)} tasks runnable on {n} CPU(s)")
        if b["stat"] is not None and e["stat"] is not None:
            d = {k: e["stat"][k] - b["stat"][k] for k in ("busy", "steal", "total")}
            other = max(0.0, d["busy"] * self.tick_s - own)
            spare = max(0, n - self.threads) * wall
            res = 2 * self.tick_s
            details["other_cpu_s"] = round(other, 4)
            if other > spare + res:
                busy = True
                reasons.append(f"other processes used {other / wall:.2f} CPUs of {n}: they shared this process's cores")
            steal_s = d["steal"] * self.tick_s
            details["steal_s"] = round(steal_s, 4)
            if steal_s > res and steal_s > 0.05 * wall * n:
                busy = True
                reasons.append(f"hypervisor stole {steal_s * 1000:.0f} ms of CPU time in a {wall * 1000:.0f} ms window")
        if b["freq"] is not None and e["freq"] is not None and b["freq"] > 0:
            change = abs(e["freq"] - b["freq"]) / b["freq"]
            details["freq_mhz"] = round(e["freq"] / 1000, 1)
            if change > 0.10:
                throttled = True
                reasons.append(f"CPU frequency changed by {change:.0%} within the window")
        return DeviceState("cpu", busy=busy, throttled=throttled, reasons=reasons, details=details)


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
    ref_per_window: int = 4,
    max_flagged_repeats: int = 5,
    min_clean: int = 3,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    timer: Callable[[Callable[[], object]], float] | None = None,
    clock_name: str = "wall",
) -> WindowedResult:
    """Time ``call`` in short windows bracketed by ``reference`` until the interval is within target.

    Args:
        call: one inference of the network (one batch), warmed up already.
        reference: one inference of the reference network (warmed up), or None.
        probe: a factory of a state meter wrapped around each window (``OSWindowProbe`` on a CPU).
        target_rel_ci: stop once the joined interval's half-width is within this share of the median.
        max_time_s: time cap on the whole measurement (``converged`` False when hit).
        windows: fewest windows; ``max_windows``: most windows counted in the estimate.
        window_s, min_per_window: each window times the network at least this long and this often.
        ref_per_window: reference calls per window, half before and half after the network's.
        max_flagged_repeats: how many flagged windows are run again in all.
        min_clean: clean windows needed to leave the flagged ones out.
        sync, clock, timer: as in :func:`~hwtune.hardware.time_until_confident` (tests pass fakes).
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
            if res.rel_half_width <= target_rel_ci:
                converged = True
                break
            if res.windows >= max_windows:
                break
        if clock() - start >= max_time_s:
            break
    return summarize_windows(records, min_clean=min_clean, converged=converged, repeated=repeated, clock=clock_name)


# --------------------------------------------------------------------------- the reference network

REFERENCE_NAME = "hwtune-ref-3conv16@1x3x32x32"
"""The reference network's name in every measurement's ``extra`` (change it whenever the network changes)."""

_REFERENCES: dict[str, tuple[Any, Any]] = {}
_HISTORY: dict[str, list[tuple[float, float]]] = {}


def _build_reference() -> Any:
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def reference_call(device: Any) -> Callable[[], object]:
    """One inference of hwtune's fixed reference network on ``device`` (built once per process and device).

    Three 16-channel 3x3 convolutions on a 1x3x32x32 input (about 0.5-1 ms on one CPU thread): small
    enough to bracket every window, the same work in every window of every study on that device.
    """
    import torch

    spec = device.to_spec()
    if spec not in _REFERENCES:
        dev = torch.device(device.torch_device)
        net = _build_reference().to(dev)
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dev)
        _REFERENCES[spec] = (net, x)
    net, x = _REFERENCES[spec]

    def run() -> object:
        with torch.inference_mode():
            return net(x)

    return run


def record_reference(device_spec: str, ref_ms: float, when: float | None = None) -> None:
    """Keep the reference's median of one measurement in this process's history (wall time, ms)."""
    _HISTORY.setdefault(device_spec, []).append((time.time() if when is None else when, float(ref_ms)))


def reference_history(device_spec: str) -> list[tuple[float, float]]:
    """``(unix time, reference ms)`` of every measurement in this process on ``device_spec``."""
    return list(_HISTORY.get(device_spec, []))
