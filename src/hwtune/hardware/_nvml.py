"""NVIDIA GPUs through NVML (``nvidia-ml-py``, imported lazily): energy, power, state.

Energy comes from the GPU's total-energy counter (Volta and newer) or, where the GPU has none, from
a thread sampling the board power at >= 100 Hz, integrated over the window. Every meter here takes
the ``pynvml`` module as an argument (``nv``), so tests pass a fake one with recorded readings.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwtune.hardware._meters import DeviceState, EnergyMeter, Meter, Sampler
from hwtune.hardware._rapl import counter_delta

__all__ = [
    "NVMLUnavailable",
    "get_nvml",
    "nvml_unavailable_reason",
    "visible_device_entry",
    "nvml_handle",
    "THROTTLE_REASONS",
    "DISTURBING_THROTTLE",
    "decode_throttle_reasons",
    "integrate_power",
    "has_energy_counter",
    "has_power_reading",
    "NVMLEnergyMeter",
    "NVMLPowerMeter",
    "GPUUtilisationEstimateMeter",
    "NVMLStateMeter",
    "gpu_processes",
    "describe_gpu",
]


class NVMLUnavailable(RuntimeError):
    """NVML cannot be used here; the message says why."""


_lock = threading.Lock()
_nv: Any = None
_reason: str | None = None


def _shutdown() -> None:  # pragma: no cover - runs at exit on GPU machines
    global _nv
    if _nv is not None:
        try:
            _nv.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
        _nv = None


def get_nvml() -> Any:
    """The initialised ``pynvml`` module (once per process), or :class:`NVMLUnavailable`."""
    global _nv, _reason
    with _lock:
        if _nv is not None:
            return _nv
        if _reason is not None:
            raise NVMLUnavailable(_reason)
        try:
            import pynvml
        except ImportError:
            _reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            raise NVMLUnavailable(_reason) from None
        try:
            pynvml.nvmlInit()
        except Exception as e:  # noqa: BLE001 - pynvml.NVMLError and OSError alike
            _reason = f"NVML could not start ({e}): no NVIDIA driver on this machine?"
            raise NVMLUnavailable(_reason) from None
        atexit.register(_shutdown)
        _nv = pynvml
        return _nv


def nvml_unavailable_reason() -> str | None:
    """Why NVML cannot be used here, or ``None`` when it can."""
    try:
        get_nvml()
    except NVMLUnavailable as e:
        return str(e)
    return None


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def visible_device_entry(cuda_index: int, env: str | None) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` entry that CUDA device ``cuda_index`` stands for.

    ``None`` when the variable is unset (CUDA index = NVML index). Like CUDA, the list ends at the
    first entry that is neither an integer >= 0 nor a ``GPU-``/``MIG-`` UUID (prefix).

    Raises:
        IndexError: ``cuda_index`` is not among the visible devices.
    """
    if env is None:
        return None
    visible: list[str] = []
    for e in (x.strip() for x in env.split(",")):
        if e.isdigit() or e.startswith(("GPU-", "MIG-")):
            visible.append(e)
        else:
            break
    if not 0 <= cuda_index < len(visible):
        raise IndexError(f"CUDA device {cuda_index} is not visible: CUDA_VISIBLE_DEVICES={env!r} shows {len(visible)} device(s)")
    return visible[cuda_index]


def nvml_handle(nv: Any, cuda_index: int, *, uuid: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """NVML handle of torch's ``cuda:<cuda_index>``, honouring ``CUDA_VISIBLE_DEVICES``.

    NVML numbers all GPUs of the machine; CUDA numbers the visible ones. The GPU's UUID (from torch)
    identifies it exactly; without it the ``CUDA_VISIBLE_DEVICES`` entry is used (an integer entry
    is an NVML index when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, NVML's own order).
    """
    if uuid:
        u = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        try:
            return nv.nvmlDeviceGetHandleByUUID(u)
        except nv.NVMLError:
            pass
    environ = os.environ if env is None else env
    entry = visible_device_entry(cuda_index, environ.get("CUDA_VISIBLE_DEVICES"))
    if entry is None:
        return nv.nvmlDeviceGetHandleByIndex(cuda_index)
    if entry.isdigit():
        return nv.nvmlDeviceGetHandleByIndex(int(entry))
    if entry.startswith("MIG-"):
        return nv.nvmlDeviceGetHandleByUUID(entry)
    for i in range(nv.nvmlDeviceGetCount()):  # CUDA accepts a unique UUID prefix; NVML wants it whole
        h = nv.nvmlDeviceGetHandleByIndex(i)
        if _text(nv.nvmlDeviceGetUUID(h)).startswith(entry):
            return h
    raise LookupError(f"no GPU with UUID {entry!r} (from CUDA_VISIBLE_DEVICES)")


THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
"""NVML's clock-event (throttle) reason bits."""

DISTURBING_THROTTLE = 0x8 | 0x20 | 0x40 | 0x80
"""Reasons that make a measurement unrepresentative (thermal, hardware slowdown, power brake).

``sw_power_cap`` is not among them: a GPU running flat out sits at its power cap in steady state,
so repeating the measurement would not change it; it is reported in the state details instead.
"""


def decode_throttle_reasons(mask: int) -> list[str]:
    """Names of the bits set in an NVML clock-event-reasons mask."""
    names = [n for bit, n in THROTTLE_REASONS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_REASONS)
    if rest:
        names.append(f"other(0x{rest:x})")
    return names


def integrate_power(times_s: Sequence[float], watts: Sequence[float], t0: float | None = None, t1: float | None = None) -> float:
    """Energy (J) of a power curve sampled at ``times_s``, over ``[t0, t1]``.

    The curve is linear between samples (trapezoidal rule) and held constant before the first and
    after the last sample; the window's ends are interpolated, so samples outside it are cut off.
    """
    t = np.asarray(times_s, dtype=float)
    p = np.asarray(watts, dtype=float)
    if t.size == 0 or t.size != p.size:
        raise ValueError(f"need as many power samples as times (got {p.size} and {t.size}), at least one")
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    a = float(t[0]) if t0 is None else float(t0)
    b = float(t[-1]) if t1 is None else float(t1)
    if b <= a:
        return 0.0
    inner = (t > a) & (t < b)
    tt = np.concatenate(([a], t[inner], [b]))
    pp = np.concatenate(([np.interp(a, t, p)], p[inner], [np.interp(b, t, p)]))
    return float(np.sum((tt[1:] - tt[:-1]) * (pp[1:] + pp[:-1]) / 2.0))


def has_energy_counter(nv: Any, handle: Any) -> bool:
    try:
        nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        return True
    except nv.NVMLError:
        return False


def has_power_reading(nv: Any, handle: Any) -> bool:
    try:
        nv.nvmlDeviceGetPowerUsage(handle)
        return True
    except nv.NVMLError:
        return False


class NVMLEnergyMeter(EnergyMeter):
    """GPU board energy from NVML's total-energy counter (mJ since the driver loaded)."""

    name = "nvml_energy"
    source = "measured:nvml"

    def __init__(self, nv: Any, handle: Any, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(clock)
        self.nv = nv
        self.handle = handle
        self._e0 = self._e1 = 0

    def begin(self) -> None:
        self._e0 = int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        self._mark_begin()

    def end(self) -> None:
        self._e1 = int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        self._mark_end()

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        mj = counter_delta(self._e0, self._e1, 2**64)
        extra = {"method": "total_energy_counter", "counter_mj": [self._e0, self._e1]}
        if mj == 0 and self.duration_s > 0:
            return None, f"NVML energy counter did not advance in {self.duration_s:.3f} s (window shorter than its update period)", extra
        return mj / 1000.0, "GPU board energy only (host CPU not included)", extra


class _SamplingEnergyMeter(EnergyMeter):
    """An energy meter whose window runs a background thread sampling one NVML reading at ``hz``."""

    def __init__(self, nv: Any, handle: Any, read: Callable[[], float], hz: float, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.nv = nv
        self.handle = handle
        self.hz = hz
        self._sampler = Sampler(read, hz, clock=clock)

    def begin(self) -> None:
        self._mark_begin()
        self._sampler.start()

    def end(self) -> None:
        self._sampler.stop()
        self._mark_end()


class NVMLPowerMeter(_SamplingEnergyMeter):
    """GPU board energy by sampling NVML's power reading (mW) at ``hz`` and integrating it."""

    name = "nvml_power"
    source = "measured:nvml"

    def __init__(self, nv: Any, handle: Any, hz: float = 200.0, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(nv, handle, lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0, hz, clock)

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        s = self._sampler
        if s.error is not None or not s.values:
            return None, f"NVML power reading failed: {s.error}", {}
        rate = s.rate_hz
        extra = {"method": "power_sampling", "samples": len(s.values), "rate_hz": round(rate, 1)}
        notes = ["GPU board energy only (host CPU not included); NVML power readings are averaged by the driver"]
        if rate < 100.0 and len(s.values) > 2:
            notes.append(f"sampled at only {rate:.0f} Hz (target >= 100 Hz)")
        return integrate_power(s.times, s.values, self._t0, self._t1), "; ".join(notes), extra


class GPUUtilisationEstimateMeter(_SamplingEnergyMeter):
    """Where the GPU reports no power: power limit x mean utilisation (CodeCarbon's TDP method)."""

    name = "gpu_estimate"
    source = "estimated:tdp"

    def __init__(self, nv: Any, handle: Any, hz: float = 20.0, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(nv, handle, lambda: float(nv.nvmlDeviceGetUtilizationRates(handle).gpu), hz, clock)

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        try:
            limit_w = self.nv.nvmlDeviceGetEnforcedPowerLimit(self.handle) / 1000.0
        except self.nv.NVMLError as e:
            return None, f"no NVML power reading and no power limit to estimate from ({e})", {}
        if self._sampler.error is not None or not self._sampler.values:
            return None, f"no NVML power reading and no utilisation to estimate from ({self._sampler.error})", {}
        util = float(np.mean(self._sampler.values)) / 100.0
        note = (
            f"no sensor: this GPU reports no power through NVML; power limit {limit_w:.0f} W x mean GPU "
            "utilisation (CodeCarbon's method)"
        )
        return limit_w * util * self.duration_s, note, {"method": "power_limit_x_utilisation", "power_limit_w": limit_w, "utilisation": round(util, 4)}


def gpu_processes(nv: Any, handle: Any) -> list[int]:
    """PIDs of processes with a context on the GPU (compute and graphics)."""
    pids: list[int] = []
    for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        f = getattr(nv, fn, None)
        if f is None:
            continue
        try:
            pids.extend(int(p.pid) for p in f(handle))
        except nv.NVMLError:
            continue
    return sorted(set(pids))


def _other_processes(pids: list[int], own_pid: int) -> list[int]:
    """Processes other than this one. In a PID namespace (container) NVML shows host PIDs, so our
    own PID is not among them; one process is then taken to be this one."""
    if own_pid in pids:
        return [p for p in pids if p != own_pid]
    return pids[1:] if pids else []


class NVMLStateMeter(Meter):
    """GPU utilisation, temperature, SM clock and throttle reasons during the window, sampled at ``hz``;
    other processes on the GPU at both ends."""

    name = "gpu_state"

    def __init__(self, nv: Any, handle: Any, hz: float = 20.0, own_pid: int | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.nv = nv
        self.handle = handle
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self._sampler = Sampler(self._read, hz, clock=clock)
        self._procs: list[int] = []
        self._reason_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)

    def _try(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self.nv.NVMLError:
            return None

    def _read(self) -> tuple[Any, Any, Any, Any]:
        nv, h = self.nv, self.handle
        util = self._try(lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu)
        temp = self._try(lambda: nv.nvmlDeviceGetTemperature(h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
        clock = self._try(lambda: nv.nvmlDeviceGetClockInfo(h, getattr(nv, "NVML_CLOCK_SM", 1)))
        reasons = self._try(lambda: self._reason_fn(h)) if self._reason_fn else None
        return util, temp, clock, reasons

    def begin(self) -> None:
        self._procs = gpu_processes(self.nv, self.handle)
        self._sampler.start()

    def end(self) -> None:
        self._sampler.stop()
        self._procs = sorted(set(self._procs) | set(gpu_processes(self.nv, self.handle)))

    def state(self) -> DeviceState:
        vals = self._sampler.values
        col = [[v[i] for v in vals if v[i] is not None] for i in range(4)]
        mask = 0
        for r in col[3]:
            mask |= int(r)
        details: dict[str, Any] = {"samples": len(vals)}
        if col[0]:
            details.update(utilisation_mean=round(float(np.mean(col[0])), 1), utilisation_max=float(max(col[0])))
        if col[1]:
            details["temperature_max_c"] = float(max(col[1]))
        if col[2]:
            details.update(sm_clock_min_mhz=float(min(col[2])), sm_clock_mean_mhz=round(float(np.mean(col[2])), 1))
        details["throttle_reasons"] = decode_throttle_reasons(mask)
        if mask & 0x4:
            details["power_capped"] = True
        others = _other_processes(self._procs, self.own_pid)
        details["other_processes"] = others
        reasons = []
        if others:
            reasons.append(f"{len(others)} other process(es) used this GPU during the measurement (pids {others})")
        disturbing = mask & DISTURBING_THROTTLE
        if disturbing:
            reasons.append("GPU throttled: " + ", ".join(decode_throttle_reasons(disturbing)))
        return DeviceState("cuda", busy=bool(others), throttled=bool(disturbing), reasons=reasons, details=details)


def describe_gpu(nv: Any, handle: Any) -> dict[str, Any]:
    """What NVML says about the GPU: driver, name, UUID, power limit, whether it has an energy counter."""
    out: dict[str, Any] = {}
    for key, fn in (
        ("driver", lambda: _text(nv.nvmlSystemGetDriverVersion())),
        ("nvml_name", lambda: _text(nv.nvmlDeviceGetName(handle))),
        ("uuid", lambda: _text(nv.nvmlDeviceGetUUID(handle))),
        ("power_limit_w", lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0),
    ):
        try:
            out[key] = fn()
        except nv.NVMLError:
            pass
    out["energy_counter"] = has_energy_counter(nv, handle)
    out["power_reading"] = has_power_reading(nv, handle)
    return out
