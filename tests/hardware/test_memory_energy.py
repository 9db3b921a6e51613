"""Peak memory that does not depend on the process's history; energy = power x time by construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from hwtune.hardware import CPUDevice, profile
from hwtune.hardware import _profile as prof
from hwtune.hardware._memory import traced_peak_bytes
from hwtune.hardware._nvml import NVMLEnergyMeter
from hwtune.hardware._rapl import RaplEnergyMeter
from hwtune.train._families import FAMILIES

from ._fake_nvml import FakeGPU, FakeNVML

FAST = {"target_rel_ci": 0.5, "max_time_s": 0.3, "warmup_runs": 1, "warmup_s": 0.0, "min_repeats": 6, "min_energy_window_s": 0.02, "max_retries": 0, "windows": 3, "window_s": 0.005}

SMALL = {
    "cnn": [({"conv_layers": 1, "filters": 8, "kernel": 3, "dense_units": 16, "batch_norm": 0}, (1, 28, 28)),
            ({"conv_layers": 2, "filters": 32, "kernel": 3, "dense_units": 64, "batch_norm": 1}, (1, 28, 28))],
    "mlp": [({"hidden_layers": 1, "units": 32}, (1, 28, 28)), ({"hidden_layers": 3, "units": 256}, (1, 28, 28))],
    "nb201": [({**{f"edge_{i}_{j}": "skip_connect" for i in range(1, 4) for j in range(i)}, "channels": 8, "cells": 1}, (3, 32, 32)),
              ({**{f"edge_{i}_{j}": "nor_conv_3x3" for i in range(1, 4) for j in range(i)}, "channels": 16, "cells": 2}, (3, 32, 32))],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_peak_memory_is_positive_grows_with_the_network_and_agrees_with_profile(family: str) -> None:
    values = []
    for params, shape in SMALL[family]:
        net = FAMILIES[family].build(params, shape, 10).eval()
        x = torch.randn(2, *shape)
        traced = traced_peak_bytes(net, (x,))
        n_weights = sum(p.numel() * p.element_size() for p in net.parameters()) + sum(b.numel() * b.element_size() for b in net.buffers())
        assert traced["weights"] == n_weights and traced["inputs"] == x.numel() * 4
        assert traced["activations"] > 0 and traced["peak"] == traced["weights"] + traced["inputs"] + traced["activations"]
        r = profile(net, x, CPUDevice(1), ["peak_mem_mb"], **FAST)
        m = r["peak_mem_mb"]
        assert m.source == "counted:traced_tensors" and m.value == pytest.approx(traced["peak"] / 1e6)
        values.append(m.value)
    assert 0 < values[0] < values[1]


def test_peak_memory_does_not_depend_on_the_process_history() -> None:
    net = FAMILIES["mlp"].build({"hidden_layers": 2, "units": 128}, (1, 28, 28), 10).eval()
    x = torch.randn(4, 1, 28, 28)
    before = profile(net, x, CPUDevice(1), ["peak_mem_mb"], **FAST)["peak_mem_mb"].value
    junk = [torch.randn(1_000_000) for _ in range(20)]  # the process grows and frees 80 MB
    del junk
    for _ in range(3):
        net(x)
    after = profile(net, x, CPUDevice(1), ["peak_mem_mb"], **FAST)["peak_mem_mb"].value
    assert before == after and before > 0


def test_peak_memory_of_an_untraceable_model_is_unavailable_with_the_reason() -> None:
    from hwtune.hardware._memory import traced_peak_measurement

    class Bad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    m = traced_peak_measurement(Bad(), (torch.zeros(1),), 1)
    assert m.value is None and "boom" in m.note


# ---------------------------------------------------------------- energy = power x time


@dataclass
class _RecordedZone:
    """A RAPL zone replaying recorded ``energy_uj`` readings (one per read), wrap-around included."""

    readings: list[int]
    path: Path = Path("/sys/class/powercap/intel-rapl:0")
    name: str = "package-0"
    max_range_uj: int = 262_143_328_850

    def read_uj(self) -> int:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def _check_identity(r: Any, batch: int, resolution_j: float) -> None:
    p, e, lat = r["power_w"], r["energy_mj"], r["latency_ms"]
    assert p.source == e.source and p.available and e.available
    # the definition: energy per sample = mean power x batch latency / batch (mJ = W x ms)
    assert e.value == pytest.approx(p.value * lat.value / batch, rel=1e-12)
    assert e.ci_low == pytest.approx(p.value * lat.ci_low / batch) and e.ci_high == pytest.approx(p.value * lat.ci_high / batch)
    # and within the window: power x time = the counter's energy, to the counter's resolution
    window_j = e.extra["window_mj_per_sample"] * e.extra["calls"] * batch / 1000.0
    # (window_s is recorded to the microsecond)
    assert p.value * e.extra["window_s"] == pytest.approx(window_j, abs=resolution_j + p.value * 1e-6)
    assert e.extra["definition"] == "power_w x latency_ms / batch_size"


def test_energy_equals_power_times_time_on_recorded_rapl_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    # recorded package counter: 1.25 J over the window, wrapping around on the way
    zone = _RecordedZone([262_143_000_000, 921_150])
    monkeypatch.setattr(prof, "energy_meter_for", lambda device, **kw: (lambda: RaplEnergyMeter([zone], poll_hz=0.01)))
    r = profile(torch.nn.Linear(48, 10), torch.randn(2, 48), CPUDevice(1), ["latency_ms", "power_w", "energy_mj"], **FAST)
    assert r["power_w"].source == "measured:rapl"
    _check_identity(r, 2, 1e-6)
    assert r["energy_mj"].extra["window_mj_per_sample"] * r["energy_mj"].extra["calls"] * 2 == pytest.approx(1250.0, rel=1e-6)


def test_energy_equals_power_times_time_on_recorded_nvml_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGPU(energy_mj=[5_000_000, 5_012_000])  # 12 J in the window, counted in mJ
    nv = FakeNVML([gpu])
    monkeypatch.setattr(prof, "energy_meter_for", lambda device, **kw: (lambda: NVMLEnergyMeter(nv, gpu)))
    r = profile(torch.nn.Linear(48, 10), torch.randn(4, 48), CPUDevice(1), ["latency_ms", "power_w", "energy_mj"], **FAST)
    assert r["power_w"].source == "measured:nvml"
    _check_identity(r, 4, 1e-3)
