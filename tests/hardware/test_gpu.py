"""The same measurements on an NVIDIA GPU: run only where torch sees CUDA (skipped otherwise)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwtune.hardware import CUDADevice, parse_device, profile

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)"),
]


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def test_parse_and_describe_gpu() -> None:
    d = parse_device("cuda")
    assert isinstance(d, CUDADevice) and d.torch_device == "cuda:0"
    desc = d.describe()
    assert desc["type"] == "cuda" and desc["model"] and desc["torch"] == torch.__version__
    assert "driver" in desc or desc.get("nvml", "").startswith("unavailable")


def test_profile_on_gpu_uses_cuda_events_allocator_and_nvml() -> None:
    d = parse_device("cuda:0")
    r = profile(_net(), torch.randn(8, 3, 32, 32), d, batch_sizes=[8, 64], target_rel_ci=0.05, max_time_s=2.0)
    lat = r["latency_ms"]
    assert lat.source == "measured:timer" and lat.extra["clock"] == "cuda_events"
    assert lat.ci_low <= lat.value <= lat.ci_high
    assert r["peak_mem_mb"].source == "measured:cuda_allocator" and r["peak_mem_mb"].value > 0
    assert "cuda" in lat.extra["state"] or "nvml" in r.device
    if "driver" in r.device:  # NVML readable: power and energy are measured (or labelled estimates)
        for k in ("power_w", "energy_mj"):
            assert r[k].source in ("measured:nvml", "estimated:tdp")
            assert r[k].available
    assert r.batches[64]["throughput_sps"].value > 0


def test_gpu_idle_baseline() -> None:
    r = profile(_net(), torch.randn(8, 3, 32, 32), parse_device("cuda"), ["power_w"], idle_baseline=True, max_time_s=1.0)
    p = r["power_w"]
    if p.source == "measured:nvml":
        assert p.extra.get("baseline_subtracted") is True and "idle baseline" in p.note
