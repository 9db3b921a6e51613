"""Peak memory during inference: the CUDA allocator's peak on GPU, resident-set growth on CPU."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hwtune.hardware._measurement import Measurement, unavailable
from hwtune.hardware._meters import Meter, Sampler, Window

__all__ = ["CPUMemoryMeter", "CUDAMemoryMeter", "read_proc_status_kb", "current_rss_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def read_proc_status_kb(key: str, path: Path = _STATUS) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or None where unreadable."""
    try:
        m = re.search(rf"^{key}:\s+(\d+)\s*kB", path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def current_rss_bytes() -> int:
    kb = read_proc_status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_hwm() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return read_proc_status_kb("VmHWM") is not None


class CPUMemoryMeter(Meter):
    """Growth of this process's resident set during the window (the peak, not the end value).

    The kernel's high-water mark is reset at ``begin`` and read at ``end``; where that is not
    possible the RSS is sampled at 500 Hz instead. Growth is counted from ``baseline_bytes``
    (default: the RSS at ``begin``), so that several windows can share the baseline taken before the
    model's first inference. Memory that the allocator kept from earlier inferences in the same
    process is reused without growing the resident set: measure a fresh model for a fair number.
    """

    name = "cpu_memory"
    source = "measured:rss"

    def __init__(self, baseline_bytes: int | None = None) -> None:
        self.baseline_bytes = baseline_bytes
        self._rss0 = 0
        self._peak = 0
        self._method = ""
        self._sampler: Sampler | None = None

    def begin(self) -> None:
        self._rss0 = current_rss_bytes()
        if self.baseline_bytes is None:
            self.baseline_bytes = self._rss0
        if _reset_hwm():
            self._method = "VmHWM"
            self._sampler = None
        else:
            self._method = "sampled RSS at 500 Hz"
            self._sampler = Sampler(current_rss_bytes, 500.0)
            self._sampler.start()

    def end(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._peak = max(self._sampler.values or [current_rss_bytes()])
        else:
            kb = read_proc_status_kb("VmHWM")
            self._peak = kb * 1024 if kb is not None else current_rss_bytes()

    def measurements(self, window: Window) -> dict[str, Measurement]:
        base = self.baseline_bytes if self.baseline_bytes is not None else self._rss0
        growth = max(0, self._peak - base)
        extra: dict[str, Any] = {
            "kind": "resident-set growth",
            "method": self._method,
            "baseline_rss_mb": round(base / 1e6, 3),
            "peak_rss_mb": round(self._peak / 1e6, 3),
            "batch_size": window.batch_size,
        }
        return {
            "peak_mem_mb": Measurement(
                "peak_mem_mb", growth / 1e6, "MB", self.source,
                note="growth of the process's resident set over the first inferences (weights and runtime excluded)",
                extra=extra,
            )
        }


class CUDAMemoryMeter(Meter):
    """Peak of torch's CUDA caching allocator during the window (weights, inputs and activations)."""

    name = "cuda_memory"
    source = "measured:cuda_allocator"

    def __init__(self, index: int) -> None:
        self.index = index
        self._before = 0
        self._peak = 0

    def begin(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)
        torch.cuda.reset_peak_memory_stats(self.index)
        self._before = int(torch.cuda.memory_allocated(self.index))

    def end(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)
        self._peak = int(torch.cuda.max_memory_allocated(self.index))

    def measurements(self, window: Window) -> dict[str, Measurement]:
        if self._peak <= 0:
            return {"peak_mem_mb": unavailable("peak_mem_mb", "MB", "the CUDA allocator saw no allocation (not a torch model?)")}
        extra = {
            "kind": "allocator peak",
            "resident_before_mb": round(self._before / 1e6, 3),
            "activations_mb": round((self._peak - self._before) / 1e6, 3),
            "batch_size": window.batch_size,
        }
        return {
            "peak_mem_mb": Measurement(
                "peak_mem_mb", self._peak / 1e6, "MB", self.source,
                note="torch.cuda.max_memory_allocated: weights + inputs + activations", extra=extra,
            )
        }
