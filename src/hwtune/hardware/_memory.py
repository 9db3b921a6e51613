"""Peak memory during inference: the CUDA allocator's peak on GPU, resident-set growth on CPU."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hwtune.hardware._measurement import Measurement, unavailable
from hwtune.hardware._meters import Meter, Sampler, Window

__all__ = ["CPUMemoryMeter", "CUDAMemoryMeter", "current_rss_bytes", "read_proc_status_kb"]

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


TRACED_SOURCE = "counted:traced_tensors"


def traced_peak_bytes(model: Any, inputs: tuple[Any, ...]) -> dict[str, int]:
    """Bytes of tensors alive during one inference of ``model``, traced op by op.

    Every tensor an operator returns is counted from its creation until the last tensor sharing its
    storage is freed (views and in-place results share the count); parameters, buffers and inputs
    are counted once. The peak is therefore what the network's own tensors need at once, whatever
    the process did before: it does not depend on the process's history, unlike the resident set.
    Framework workspaces (oneDNN scratch, cuDNN workspace) and the runtime are not in it.

    Returns:
        ``{"peak": ..., "weights": ..., "inputs": ..., "activations": ...}`` in bytes, where
        ``peak = weights + inputs + activations`` and ``activations`` is the peak of live
        intermediate tensors (the output included).
    """
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    def _ptr(t: Any) -> tuple[int, int]:
        st = t.untyped_storage()
        return int(st.data_ptr()), int(st.nbytes())

    fixed: dict[int, int] = {}
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    buffers = list(model.buffers()) if hasattr(model, "buffers") else []
    for t in (*params, *buffers):
        p, n = _ptr(t)
        fixed[p] = n
    weights = sum(fixed.values())
    ins: dict[int, int] = {}
    for t in inputs:
        if isinstance(t, torch.Tensor):
            p, n = _ptr(t)
            if p not in fixed:
                ins[p] = n
    fixed.update(ins)

    class _Live(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.refs: dict[int, list[int]] = {}  # data_ptr -> [tensors alive, bytes]
            self.live = 0
            self.peak = 0

        def _drop(self, ptr: int) -> None:
            r = self.refs.get(ptr)
            if r is None:
                return
            r[0] -= 1
            if r[0] <= 0:
                self.live -= r[1]
                del self.refs[ptr]

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                p, n = _ptr(t)
                if p == 0 or p in fixed:
                    continue
                r = self.refs.get(p)
                if r is None:
                    self.refs[p] = [1, n]
                    self.live += n
                    self.peak = max(self.peak, self.live)
                else:
                    r[0] += 1
                weakref.finalize(t, self._drop, p)
            return out

    mode = _Live()
    with torch.inference_mode(), mode:
        result = model(*inputs)
    del result
    return {"peak": weights + sum(ins.values()) + mode.peak, "weights": weights, "inputs": sum(ins.values()), "activations": mode.peak}


def traced_peak_measurement(model: Any, inputs: tuple[Any, ...], batch_size: int) -> Measurement:
    """``peak_mem_mb`` from :func:`traced_peak_bytes`, labelled ``counted:traced_tensors``; unavailable with the reason on failure."""
    try:
        b = traced_peak_bytes(model, inputs)
    except Exception as e:  # noqa: BLE001 - a model the tracer cannot follow: say so, never 0
        return unavailable("peak_mem_mb", "MB", f"the tensor trace of one inference failed: {type(e).__name__}: {e}", batch_size=batch_size)
    if b["peak"] <= 0:
        return unavailable("peak_mem_mb", "MB", "the tensor trace saw no tensor", batch_size=batch_size)
    extra = {
        "kind": "traced tensors",
        "weights_mb": round(b["weights"] / 1e6, 4),
        "inputs_mb": round(b["inputs"] / 1e6, 4),
        "activations_mb": round(b["activations"] / 1e6, 4),
        "batch_size": batch_size,
    }
    return Measurement(
        "peak_mem_mb", b["peak"] / 1e6, "MB", TRACED_SOURCE,
        note="parameters + buffers + input + the peak of live intermediate tensors in one traced inference "
        "(framework workspaces and the runtime excluded; independent of the process's history)",
        extra=extra,
    )
