"""A stand-in for the ``pynvml`` module: recorded readings instead of a GPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


@dataclass
class FakeGPU:
    uuid: str = "GPU-11111111-2222-3333-4444-555555555555"
    name: str = "Fake H100"
    energy_mj: list[int] | None = field(default_factory=lambda: [1_000_000, 1_012_500])  # successive counter reads
    power_mw: Callable[[], float] | None = lambda: 150_000.0
    utilisation: list[int] = field(default_factory=lambda: [90])
    temperature: int = 61
    sm_clock: int = 1980
    throttle_mask: list[int] = field(default_factory=lambda: [0])
    processes: list[int] = field(default_factory=list)
    power_limit_mw: int = 300_000


class FakeNVML:
    """Implements the pynvml functions hwtune calls, over a list of :class:`FakeGPU`."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    def __init__(self, gpus: list[FakeGPU]) -> None:
        self.gpus = gpus
        self._energy_i = {id(g): 0 for g in gpus}
        self._util_i = {id(g): 0 for g in gpus}
        self._thr_i = {id(g): 0 for g in gpus}
        self.calls: list[str] = []

    # handles are the FakeGPU objects themselves
    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGPU:
        if not 0 <= i < len(self.gpus):
            raise NVMLError("invalid index")
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGPU:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise NVMLError("not found")

    def nvmlDeviceGetUUID(self, h: FakeGPU) -> str:
        return h.uuid

    def nvmlDeviceGetName(self, h: FakeGPU) -> str:
        return h.name

    def nvmlSystemGetDriverVersion(self) -> str:
        return "555.42"

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGPU) -> int:
        self.calls.append("energy")
        if h.energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        i = self._energy_i[id(h)]
        self._energy_i[id(h)] = i + 1
        return h.energy_mj[min(i, len(h.energy_mj) - 1)]

    def nvmlDeviceGetPowerUsage(self, h: FakeGPU) -> float:
        if h.power_mw is None:
            raise NVMLError_NotSupported("Not Supported")
        return h.power_mw()

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGPU) -> int:
        return h.power_limit_mw

    def nvmlDeviceGetUtilizationRates(self, h: FakeGPU) -> Any:
        i = self._util_i[id(h)]
        self._util_i[id(h)] = i + 1
        return SimpleNamespace(gpu=h.utilisation[min(i, len(h.utilisation) - 1)], memory=10)

    def nvmlDeviceGetTemperature(self, h: FakeGPU, sensor: int) -> int:
        return h.temperature

    def nvmlDeviceGetClockInfo(self, h: FakeGPU, clock: int) -> int:
        return h.sm_clock

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGPU) -> int:
        i = self._thr_i[id(h)]
        self._thr_i[id(h)] = i + 1
        return h.throttle_mask[min(i, len(h.throttle_mask) - 1)]

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGPU) -> list[Any]:
        return [SimpleNamespace(pid=p, usedGpuMemory=1) for p in h.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: FakeGPU) -> list[Any]:
        return []
