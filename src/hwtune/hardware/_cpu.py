"""CPU state during a window (what the OS says: runnable tasks, other processes on our cores, steal
time, frequency changes, thermal throttling) and the TDP x utilisation estimate of CPU power used
where RAPL cannot be read. :class:`CPUStateMeter` is the one probe of the CPU's state: it wraps every
short latency window (``_windows.py``) and is cheap enough for windows of tens of ms."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwtune.hardware._meters import DeviceState, EnergyMeter, Meter

__all__ = ["DEFAULT_CPU_TDP_W", "CPUStateMeter", "CPUUtilisationEstimateMeter", "cpu_tdp_w", "process_cpu_seconds"]

DEFAULT_CPU_TDP_W = 85.0
"""CodeCarbon's fallback TDP for a CPU it does not know."""

_SYS_CPU = Path("/sys/devices/system/cpu")
_PROC_STAT = Path("/proc/stat")
_PROC_LOADAVG = Path("/proc/loadavg")


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def process_cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads (nanosecond clock)."""
    return time.process_time()


def cpu_tdp_w(tdp_w: float | None = None) -> tuple[float, str]:
    """The TDP used by estimates and where it came from: the argument, ``HWTUNE_CPU_TDP_W``, or
    :data:`DEFAULT_CPU_TDP_W`."""
    if tdp_w is not None:
        return float(tdp_w), "given"
    env = os.environ.get("HWTUNE_CPU_TDP_W")
    if env:
        try:
            return float(env), "HWTUNE_CPU_TDP_W"
        except ValueError:
            pass
    return DEFAULT_CPU_TDP_W, "CodeCarbon's default for an unknown CPU; set HWTUNE_CPU_TDP_W or --cpu-tdp"


def _throttle_count(cpus: Sequence[int], root: Path = _SYS_CPU) -> int | None:
    total, seen = 0, False
    for c in cpus:
        for name in ("core_throttle_count", "package_throttle_count"):
            p = root / f"cpu{c}" / "thermal_throttle" / name
            try:
                total += int(p.read_text().strip())
                seen = True
            except (OSError, ValueError):
                continue
    return total if seen else None


_PROC_STAT = Path("/proc/stat")
_PROC_LOADAVG = Path("/proc/loadavg")


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


class CPUStateMeter(Meter):
    """Flags one CPU window from what the OS tells; cheap enough to wrap windows of tens of ms.

    A window is flagged (``busy``) when

    - more tasks were runnable than this process has CPUs (``/proc/loadavg``, read at both ends);
    - other processes' CPU time on our CPUs exceeded what the CPUs we do not use could hold, so they
      must have shared ours: ``busy(our CPUs) - own > (CPUs - threads) x wall`` plus two ticks;
    - the hypervisor stole time (``steal`` of ``/proc/stat``) beyond two ticks and 5 % of the window;

    and ``throttled`` when the mean CPU frequency changed by more than 10 %, or thermal throttle
    events were counted. Paths and clocks are arguments so that a test replays recorded files.
    """

    name = "cpu_state"

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
        self.cpus = list(cpus) if cpus is not None else _affinity()
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
            "throttle": _throttle_count(self.cpus, self.sys_cpu),
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
        tb, te = b.get("throttle"), e.get("throttle")
        if tb is not None and te is not None:
            details["thermal_throttle_events"] = te - tb
            if te > tb:
                throttled = True
                reasons.append(f"CPU thermal throttling ({te - tb} events)")
        return DeviceState("cpu", busy=busy, throttled=throttled, reasons=reasons, details=details)

class CPUUtilisationEstimateMeter(EnergyMeter):
    """CPU power estimated as TDP x the share of the machine's CPUs this process kept busy.

    This is CodeCarbon's method where no sensor exists; it ignores idle power and everything
    that is not this process, and the TDP is often a guess: the values are labelled
    ``estimated:tdp`` and never shown as measured.
    """

    name = "cpu_estimate"
    source = "estimated:tdp"

    def __init__(self, tdp_w: float | None = None, logical_cpus: int | None = None, reason: str | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(clock)
        self.tdp_w, self.tdp_origin = cpu_tdp_w(tdp_w)
        self.logical_cpus = logical_cpus or os.cpu_count() or 1
        self.reason = reason
        self._c0 = self._c1 = 0.0

    def begin(self) -> None:
        self._c0 = process_cpu_seconds()
        self._mark_begin()

    def end(self) -> None:
        self._mark_end()
        self._c1 = process_cpu_seconds()

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        dur = self.duration_s
        if dur <= 0:
            return None, "empty window", {}
        util = min(1.0, max(0.0, (self._c1 - self._c0) / (dur * self.logical_cpus)))
        note = (
            f"TDP x this process's share of the {self.logical_cpus} CPU(s), as CodeCarbon does "
            f"(TDP {self.tdp_w:g} W: {self.tdp_origin}; idle power and other processes ignored)"
        )
        if self.reason:
            note = f"{self.reason}; {note}"
        extra = {"method": "tdp_x_utilisation", "tdp_w": self.tdp_w, "utilisation": round(util, 4)}
        return self.tdp_w * util * dur, note, extra
