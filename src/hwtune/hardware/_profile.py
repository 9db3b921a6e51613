"""``profile(model, example_input, device)``: the one entry point for measuring a model."""

from __future__ import annotations

import io
from typing import Any, Iterable

from hwtune.hardware._device import CPUDevice
from hwtune.hardware._latency import time_until_confident
from hwtune.hardware._measurement import HardwareReport, Measurement
from hwtune.space._metrics import METRICS

__all__ = ["profile", "PROFILE_METRICS", "count_parameters", "serialized_size_mb"]

PROFILE_METRICS = ("latency_ms", "throughput_sps", "params", "size_mb")
"""Metrics this module can produce today (more meters arrive with the hardware subsystem)."""


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def serialized_size_mb(model: Any) -> float:
    """Size of ``torch.save(state_dict)`` in MB (10^6 bytes)."""
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes / 1e6


def profile(
    model: Any,
    example_input: Any,
    device: CPUDevice | None = None,
    metrics: Iterable[str] | None = None,
    *,
    target_rel_ci: float = 0.05,
    max_time_s: float = 3.0,
) -> HardwareReport:
    """Measure ``model`` (a ``torch.nn.Module``) on ``device`` with ``example_input`` (one batch).

    Args:
        metrics: subset of :data:`PROFILE_METRICS`; default all. Cheap static ones (params,
            size) cost nothing; latency and throughput share one timing window.
        target_rel_ci: latency stops when the median's 95 % CI half-width is within this share.
        max_time_s: latency time cap.

    Returns:
        A report with one :class:`Measurement` per requested metric, each labelled with its source.
    """
    import torch

    device = device or CPUDevice()
    wanted = list(metrics) if metrics is not None else list(PROFILE_METRICS)
    unknown = [m for m in wanted if m not in PROFILE_METRICS]
    if unknown:
        raise ValueError(f"profile cannot measure {unknown}; it measures {list(PROFILE_METRICS)}")
    out: dict[str, Measurement] = {}
    if "params" in wanted:
        out["params"] = Measurement("params", float(count_parameters(model)), "", "counted")
    if "size_mb" in wanted:
        out["size_mb"] = Measurement("size_mb", serialized_size_mb(model), "MB", "measured:serialized", note="torch.save(state_dict)")
    if "latency_ms" in wanted or "throughput_sps" in wanted:
        batch = int(example_input.shape[0])
        model = model.to(device.torch_device).eval()
        x = example_input.to(device.torch_device)
        with device.activate(), torch.inference_mode():
            res = time_until_confident(lambda: model(x), target_rel_ci=target_rel_ci, max_time_s=max_time_s)
        extra = {
            "batch_size": batch,
            "threads": device.resolved_threads(),
            "converged": res.converged,
            "rel_half_width": round(res.rel_half_width, 5),
            "outliers": res.outliers,
            "warmup": res.warmup,
        }
        note = None if res.converged else f"time cap {max_time_s}s hit before the CI reached ±{target_rel_ci:.0%}"
        if "latency_ms" in wanted:
            out["latency_ms"] = Measurement(
                "latency_ms", res.median_ms, METRICS["latency_ms"].unit, "measured:timer",
                res.ci_low_ms, res.ci_high_ms, res.repeats, note, extra,
            )
        if "throughput_sps" in wanted:
            out["throughput_sps"] = Measurement(
                "throughput_sps", batch / res.median_ms * 1000.0, METRICS["throughput_sps"].unit, "measured:timer",
                batch / res.ci_high_ms * 1000.0, batch / res.ci_low_ms * 1000.0, res.repeats,
                "batch size / median latency", extra,
            )
    return HardwareReport(out, device.describe())
