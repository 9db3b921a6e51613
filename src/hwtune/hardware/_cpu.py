"""CPU state during a window (load of other processes, frequency, thermal throttling) and the
TDP x utilisation estimate of CPU power used where RAPL cannot be read."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from hwtune.hardware._meters import DeviceState, EnergyMeter, Meter

__all__ = ["CPUStateMeter", "CPUUtilisationEstimateMeter", "DEFAULT_CPU_TDP_W", "cpu_tdp_w", "process_cpu_seconds"]

DEFAULT_CPU_TDP_W = 85.0
"""CodeCarbon's fallback TDP for a CPU it does not know."""

_SYS_CPU = Path("/sys/devices/system/cpu")


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


def _freq_mhz(cpus: Sequence[int]) -> float | None:
    try:
        import psutil

        per = psutil.cpu_freq(percpu=True)
    except Exception:  # noqa: BLE001 - not readable in many containers
        return None
    if not per:
        return None
    vals = [per[c].current for c in cpus if c < len(per)] or [f.current for f in per]
    vals = [v for v in vals if v and v > 0]
    return sum(vals) / len(vals) if vals else None


class CPUStateMeter(Meter):
    """Load on this process's CPUs from other work, CPU frequency and thermal throttling.

    Other load = (busy time of our CPUs - this process's CPU time) / (window x CPUs); hypervisor
    steal counts as busy. Counters tick at ``1/CLK_TCK`` s, so short windows only flag load above
    ``busy_threshold`` plus that resolution.
    """

    name = "cpu_state"

    def __init__(
        self,
        cpus: Sequence[int] | None = None,
        busy_threshold: float = 0.25,
        clock: Callable[[], float] = time.perf_counter,
        sys_root: Path = _SYS_CPU,
    ) -> None:
        self.cpus = list(cpus) if cpus is not None else _affinity()
        self.busy_threshold = busy_threshold
        self.clock = clock
        self.sys_root = sys_root
        self._b: dict[str, Any] = {}
        self._e: dict[str, Any] = {}

    def _busy_seconds(self) -> float | None:
        try:
            import psutil

            per = psutil.cpu_times(percpu=True)
        except Exception:  # noqa: BLE001
            return None
        total = 0.0
        for c in self.cpus:
            if c >= len(per):
                continue
            t = per[c]
            total += sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        return total

    def _read(self) -> dict[str, Any]:
        return {
            "t": self.clock(),
            "busy": self._busy_seconds(),
            "own": process_cpu_seconds(),
            "freq": _freq_mhz(self.cpus),
            "throttle": _throttle_count(self.cpus, self.sys_root),
        }

    def begin(self) -> None:
        self._b = self._read()

    def end(self) -> None:
        self._e = self._read()

    def state(self) -> DeviceState:
        b, e = self._b, self._e
        wall = max(e["t"] - b["t"], 1e-9)
        n = max(len(self.cpus), 1)
        details: dict[str, Any] = {"cpus": len(self.cpus), "window_s": round(wall, 4)}
        reasons: list[str] = []
        busy = throttled = False
        own = e["own"] - b["own"]
        details["own_load"] = round(own / (wall * n), 3)
        if b["busy"] is not None and e["busy"] is not None:
            other = max(0.0, (e["busy"] - b["busy"]) - own)
            other_load = other / (wall * n)
            tick = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
            resolution = 2 * tick / wall
            details["other_load"] = round(other_load, 3)
            if other_load > self.busy_threshold + resolution:
                busy = True
                reasons.append(f"other processes kept {other_load:.0%} of this process's {n} CPU(s) busy")
        try:
            details["loadavg_1m"] = round(os.getloadavg()[0], 2)
        except OSError:  # pragma: no cover
            pass
        if b["freq"] is not None and e["freq"] is not None:
            details["freq_mhz"] = round((b["freq"] + e["freq"]) / 2, 1)
        if b["throttle"] is not None and e["throttle"] is not None:
            details["thermal_throttle_events"] = e["throttle"] - b["throttle"]
            if e["throttle"] > b["throttle"]:
                throttled = True
                reasons.append(f"CPU thermal throttling ({e['throttle'] - b['throttle']} events)")
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
