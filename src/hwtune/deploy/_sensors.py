"""The device state the run-time selector reads: battery, power source, temperature, throttling.

Every reading is a :class:`Reading`: a value with its unit and source, or ``None`` with the reason
it is missing (no battery, no temperature sensor exposed, no NVIDIA driver...). A missing reading is
never 0: the part of the policy that needs it stays inactive, and says why.

:class:`SystemSensors` reads psutil (``sensors_battery``, ``sensors_temperatures``), Linux's thermal
throttle counters, and NVML on NVIDIA GPUs (nvidia-ml-py) where present; :class:`StaticSensors`
gives fixed readings (tests, or an application that knows its device's state better).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SENSOR_NAMES", "Reading", "Sensors", "StaticSensors", "SystemSensors", "missing"]

SENSOR_NAMES = ("battery_percent", "power_plugged", "temperature_c", "throttling")
"""What a :class:`Sensors` reports, always all of them (missing ones with their reason)."""


@dataclass(frozen=True)
class Reading:
    """One sensor value (``None`` with ``missing`` saying why when there is none)."""

    value: Any
    unit: str = ""
    source: str = ""
    missing: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "unit": self.unit, "source": self.source}
        if self.missing:
            d["missing"] = self.missing
        if self.extra:
            d.update(self.extra)
        return d


def missing(reason: str, source: str = "") -> Reading:
    """A reading that does not exist here, and why."""
    return Reading(None, source=source, missing=reason)


class Sensors(ABC):
    """Reads the device's state; :meth:`read` returns every name of :data:`SENSOR_NAMES`."""

    @abstractmethod
    def read(self) -> dict[str, Reading]:
        """The current readings (called at most once per ``sensor_interval_s`` by the selector)."""


class StaticSensors(Sensors):
    """Fixed readings; a name given as ``None`` or not given is missing (``"not given"``).

    Values may be changed between reads with :meth:`set` (a test's scripted device).
    """

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(SENSOR_NAMES)
        if unknown:
            raise ValueError(f"unknown sensor(s) {sorted(unknown)}; known: {', '.join(SENSOR_NAMES)}")
        self.values: dict[str, Any] = dict(values)

    def set(self, **values: Any) -> None:
        unknown = set(values) - set(SENSOR_NAMES)
        if unknown:
            raise ValueError(f"unknown sensor(s) {sorted(unknown)}; known: {', '.join(SENSOR_NAMES)}")
        self.values.update(values)

    def read(self) -> dict[str, Reading]:
        units = {"battery_percent": "%", "temperature_c": "°C"}
        out: dict[str, Reading] = {}
        for name in SENSOR_NAMES:
            v = self.values.get(name)
            if isinstance(v, Reading):
                out[name] = v
            elif v is None:
                out[name] = missing("not given", "static")
            else:
                out[name] = Reading(v, units.get(name, ""), "static")
        return out


_SYS_CPU = Path("/sys/devices/system/cpu")


def throttle_count(cpus: Sequence[int], root: Path = _SYS_CPU) -> int | None:
    """Linux's thermal throttle events of ``cpus`` so far (core + package counters); ``None`` when
    the kernel exposes none (VMs, other platforms)."""
    total, seen = 0, False
    for c in cpus:
        for name in ("core_throttle_count", "package_throttle_count"):
            try:
                total += int((root / f"cpu{c}" / "thermal_throttle" / name).read_text().strip())
                seen = True
            except (OSError, ValueError):
                continue
    return total if seen else None


class SystemSensors(Sensors):
    """This machine's sensors: psutil's battery and temperatures, Linux throttle counters, NVML.

    Args:
        gpu_index: read this NVIDIA GPU's temperature and throttle reasons through NVML (a CUDA
            bundle); ``None``: CPU sensors only.
        cpu_labels: psutil temperature chips to read (default: the CPU ones: coretemp, k10temp,
            cpu_thermal, acpitz...; any chip when none of these exists).
    """

    CPU_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")

    def __init__(self, gpu_index: int | None = None, cpu_labels: Sequence[str] | None = None, sys_cpu: Path = _SYS_CPU) -> None:
        self.gpu_index = gpu_index
        self.cpu_labels = tuple(cpu_labels) if cpu_labels is not None else self.CPU_CHIPS
        self.sys_cpu = sys_cpu
        self._last_throttle: int | None = None

    def read(self) -> dict[str, Reading]:
        out = self._battery()
        if self.gpu_index is not None:
            out.update(self._gpu())
        else:
            out["temperature_c"] = self._temperature()
            out["throttling"] = self._cpu_throttling()
        return out

    def _battery(self) -> dict[str, Reading]:
        import psutil

        fn = getattr(psutil, "sensors_battery", None)
        if fn is None:
            reason = "psutil has no battery reading on this platform"
            return {"battery_percent": missing(reason, "psutil"), "power_plugged": missing(reason, "psutil")}
        try:
            b = fn()
        except Exception as e:  # noqa: BLE001 - a broken sensor driver is a missing sensor
            b, why = None, f"psutil.sensors_battery() failed: {e}"
        else:
            why = "no battery reported (psutil.sensors_battery() is None: a desktop, a server or a VM)"
        if b is None:
            return {"battery_percent": missing(why, "psutil"), "power_plugged": missing(why, "psutil")}
        plugged = b.power_plugged
        return {
            "battery_percent": Reading(float(b.percent), "%", "psutil.sensors_battery"),
            "power_plugged": Reading(bool(plugged), "", "psutil.sensors_battery") if plugged is not None else missing("the battery does not say whether the power is plugged in", "psutil"),
        }

    def _temperature(self) -> Reading:
        import psutil

        fn = getattr(psutil, "sensors_temperatures", None)
        if fn is None:
            return missing("psutil has no temperature reading on this platform", "psutil")
        try:
            chips = fn() or {}
        except Exception as e:  # noqa: BLE001
            return missing(f"psutil.sensors_temperatures() failed: {e}", "psutil")
        if not chips:
            return missing("no temperature sensor exposed (psutil.sensors_temperatures() is empty: a VM or a missing driver)", "psutil")
        names = [n for n in chips if n in self.cpu_labels] or list(chips)
        best: tuple[float, str, float | None] | None = None
        for n in names:
            for s in chips[n]:
                if s.current is None or s.current <= 0:  # an unread sensor, not a cold chip
                    continue
                if best is None or s.current > best[0]:
                    best = (float(s.current), f"{n}/{s.label or 'temp'}", float(s.high) if s.high else None)
        if best is None:
            return missing(f"the temperature sensors ({', '.join(names)}) give no reading", "psutil")
        extra = {"sensor": best[1]} | ({"high_c": best[2]} if best[2] is not None else {})
        return Reading(best[0], "°C", "psutil.sensors_temperatures", extra=extra)

    def _cpu_throttling(self) -> Reading:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = list(range(os.cpu_count() or 1))
        count = throttle_count(cpus, self.sys_cpu)
        if count is None:
            return missing("the kernel exposes no thermal throttle counters (/sys/devices/system/cpu/cpu*/thermal_throttle)", "sysfs")
        last, self._last_throttle = self._last_throttle, count
        events = 0 if last is None else max(0, count - last)
        return Reading(events > 0, "", "sysfs:thermal_throttle", extra={"events_since_last_read": events})

    def _gpu(self) -> dict[str, Reading]:
        from hwtune.hardware._nvml import (
            DISTURBING_THROTTLE,
            NVMLUnavailable,
            decode_throttle_reasons,
            get_nvml,
            nvml_handle,
        )

        try:
            nv = get_nvml()
            h = nvml_handle(nv, int(self.gpu_index or 0))
        except (NVMLUnavailable, LookupError, IndexError) as e:
            return {"temperature_c": missing(str(e), "nvml"), "throttling": missing(str(e), "nvml")}
        except Exception as e:  # noqa: BLE001 - pynvml.NVMLError
            return {"temperature_c": missing(f"NVML: {e}", "nvml"), "throttling": missing(f"NVML: {e}", "nvml")}
        out: dict[str, Reading] = {}
        try:
            t = float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
            out["temperature_c"] = Reading(t, "°C", "nvml")
        except Exception as e:  # noqa: BLE001
            out["temperature_c"] = missing(f"NVML gives no GPU temperature: {e}", "nvml")
        fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        try:
            mask = int(fn(h)) if fn is not None else None
        except Exception:  # noqa: BLE001
            mask = None
        if mask is None:
            out["throttling"] = missing("NVML gives no clock-event (throttle) reasons for this GPU", "nvml")
        else:
            out["throttling"] = Reading(bool(mask & DISTURBING_THROTTLE), "", "nvml", extra={"reasons": decode_throttle_reasons(mask)})
        return out
