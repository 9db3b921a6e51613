"""``profile()`` end to end on this CPU (small models, loose targets: fast, no timing assertions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hwtune.hardware import (
    PROFILE_METRICS,
    CPUDevice,
    CUDADevice,
    DeviceState,
    HardwareReport,
    Meter,
    NVMLEnergyMeter,
    NVMLPowerMeter,
    load_model,
    profile,
)
from hwtune.hardware import _profile as prof
from hwtune.hardware._meters import EnergyMeter, UnavailableEnergyMeter
from hwtune.hardware._nvml import GPUUtilisationEstimateMeter, NVMLUnavailable

from tests.hardware._fake_nvml import FakeGPU, FakeNVML

FAST = dict(target_rel_ci=0.5, max_time_s=0.3, warmup_runs=1, warmup_s=0.0, min_repeats=6, min_energy_window_s=0.02, max_retries=0)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10))


def test_profile_all_metrics_labelled() -> None:
    r = profile(_mlp(), torch.randn(4, 3, 4, 4), CPUDevice(1), **FAST)
    assert set(r.measurements) == set(PROFILE_METRICS)
    lat = r["latency_ms"]
    assert lat.source == "measured:timer" and lat.unit == "ms"
    assert lat.ci_low <= lat.value <= lat.ci_high and lat.repeats >= 6
    assert lat.extra["batch_size"] == 4 and lat.extra["threads"] == 1 and "cpu" in lat.extra["state"]
    thr = r["throughput_sps"]
    assert thr.value == pytest.approx(4 / lat.value * 1000)
    assert r["params"].value == 48 * 32 + 32 + 32 * 10 + 10 and r["params"].source == "counted"
    assert r["flops"].value == 2 * (48 * 32 + 32 * 10) and r["flops"].source == "counted:flop_counter"
    assert r["size_mb"].value > 0 and r["peak_mem_mb"].source == "counted:traced_tensors"
    for k in ("power_w", "energy_mj"):
        m = r[k]
        # RAPL where readable, else a labelled estimate: never an unlabelled number, never zero for missing
        assert m.source in ("measured:rapl", "estimated:tdp")
        if m.source == "estimated:tdp":
            assert m.estimated and any(k in w and "ESTIMATED" in w for w in r.warnings)
    assert r.device["type"] == "cpu" and r.device["threads"] == 1
    json.dumps(r.to_dict())
    text = r.format()
    assert "latency_ms" in text and "throughput_sps" in text


def test_profile_only_what_is_asked() -> None:
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["params", "latency_ms"], **FAST)
    assert set(r.measurements) == {"params", "latency_ms"}
    assert set(r.batches[2]) == {"latency_ms"}
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["params", "size_mb", "flops"])
    assert r.batches == {} and set(r.measurements) == {"params", "size_mb", "flops"}
    with pytest.raises(ValueError, match="cannot measure"):
        profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["error"])


def test_profile_several_batch_sizes() -> None:
    r = profile(_mlp(), torch.randn(1, 48), CPUDevice(1), ["latency_ms", "throughput_sps", "peak_mem_mb"], batch_sizes=[8, 1, 8], **FAST)
    assert list(r.batches) == [8, 1]  # first given is the primary one; duplicates dropped
    assert r["latency_ms"].extra["batch_size"] == 8
    assert r.batches[1]["latency_ms"].extra["batch_size"] == 1
    assert r.batches[8]["throughput_sps"].value == pytest.approx(8000 / r.batches[8]["latency_ms"].value)
    with pytest.raises(ValueError, match="positive"):
        profile(_mlp(), torch.randn(1, 48), CPUDevice(1), ["latency_ms"], batch_sizes=[0])


def test_profile_without_estimates_leaves_energy_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prof, "rapl_zones", lambda: ((), "no /sys/class/powercap on this system (test)"))
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w", "energy_mj"], estimate_energy=False, **FAST)
    for k in ("power_w", "energy_mj"):
        assert r[k].value is None and r[k].source == "unavailable"
        assert "(test)" in r[k].note
    assert "power_w" not in r.values()
    assert any("unavailable" in w and "(test)" in w for w in r.warnings)
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w"], **FAST)
    assert r["power_w"].source == "estimated:tdp" and "(test)" in r["power_w"].note


@dataclass
class _Disturbed(Meter):
    """A state meter that reports the device busy for the first ``n`` windows."""

    counter: list[int]
    n: int

    def begin(self) -> None:
        self.counter.append(1)

    def end(self) -> None:
        pass

    def state(self) -> DeviceState:
        busy = len(self.counter) <= self.n
        return DeviceState("cpu", busy=busy, reasons=["other processes kept 80% of the CPUs busy"] if busy else [], details={"other_load": 0.8 if busy else 0.0})


def test_disturbed_window_is_repeated_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    windows: list[int] = []
    monkeypatch.setattr(prof, "state_meter_for", lambda device, thr=0.25: (lambda: _Disturbed(windows, 1)))
    fast = {**FAST, "max_retries": 2, "windows": 3, "target_rel_ci": 10.0, "max_time_s": 30.0, "window_s": 0.001}
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["latency_ms", "power_w"], **fast)
    assert len(windows) == 4  # one disturbed window, repeated; then 3 clean ones: stops there
    lat = r["latency_ms"]
    assert lat.extra["attempts"] == 4 and lat.extra["disturbed_attempts"] == 1 and lat.extra["repeated_windows"] == 1
    assert lat.extra["windows"] == 3 and lat.extra["flagged_windows_used"] == 0
    assert "repeated" in lat.note and any("disturbed in 1 windows" in w for w in r.warnings)
    assert r["power_w"].extra["state"]["cpu"]["flagged_windows"] == 1


def test_always_disturbed_is_bounded_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    windows: list[int] = []
    monkeypatch.setattr(prof, "state_meter_for", lambda device, thr=0.25: (lambda: _Disturbed(windows, 99)))
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["latency_ms"], **{**FAST, "max_retries": 1, "windows": 3, "target_rel_ci": 10.0, "max_time_s": 30.0, "window_s": 0.001})
    assert len(windows) == 6  # 3 repeats (windows x max_retries), then 3 kept
    lat = r["latency_ms"]
    assert lat.extra["flagged_windows_used"] == 6 and "treat with care" in lat.note and "widen its interval" in lat.note


class _ConstantPower(EnergyMeter):
    source = "measured:fake"

    def __init__(self, watts: float) -> None:
        super().__init__()
        self.watts = watts

    def begin(self) -> None:
        self._mark_begin()

    def end(self) -> None:
        self._mark_end()

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        return self.watts * self.duration_s, None, {}


def test_idle_baseline_measured_once_and_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    prof.clear_idle_cache()

    def factory(device: Any, estimate: bool = True, cpu_tdp_w: float | None = None):
        return lambda: _ConstantPower(40.0)

    monkeypatch.setattr(prof, "energy_meter_for", factory)
    slept: list[float] = []
    monkeypatch.setattr(prof.time, "sleep", slept.append)  # no real idle second in a test
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w", "energy_mj"], idle_baseline=True, **FAST)
    p = r["power_w"]
    assert p.extra["baseline_subtracted"] is True and p.extra["idle_baseline_w"] == pytest.approx(40.0, rel=1e-6)
    assert p.value == pytest.approx(0.0, abs=1e-6) and "idle baseline" in p.note
    assert slept == [1.0]
    profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w"], idle_baseline=True, **FAST)
    assert slept == [1.0]  # the second call reused the cached baseline
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w"], idle_baseline=12.5, **FAST)
    assert r["power_w"].extra["idle_baseline_w"] == 12.5 and "(given)" in r["power_w"].note
    prof.clear_idle_cache()


def test_no_idle_baseline_from_an_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prof, "rapl_zones", lambda: ((), "no RAPL (test)"))
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["power_w"], idle_baseline=True, **FAST)
    assert "baseline_subtracted" not in r["power_w"].extra
    assert any("no idle baseline" in w for w in r.warnings)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(_mlp().eval(), torch.randn(1, 48)), str(path))
    runner = load_model(path)
    r = profile(runner, torch.randn(1, 48), CPUDevice(1), ["latency_ms", "params", "flops", "size_mb"], **FAST)
    assert r["params"].value == 48 * 32 + 32 + 32 * 10 + 10
    assert r["flops"].value == 2 * (48 * 32 + 32 * 10)
    assert r["size_mb"].value == pytest.approx(path.stat().st_size / 1e6)


def test_not_torchscript_file_says_how_to_fix(tmp_path: Path) -> None:
    from hwtune.exceptions import ConfigError

    path = tmp_path / "weights.pt"
    torch.save(_mlp().state_dict(), path)
    with pytest.raises(ConfigError, match="torch.jit.save"):
        load_model(path)


def make_onnx(path: Path, n_in: int = 48, n_out: int = 10) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n_in, n_out)).astype("float32"), "W")
    b = numpy_helper.from_array(np.zeros(n_out, dtype="float32"), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_through_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = make_onnx(tmp_path / "tiny.onnx")
    runner = load_model(path)
    r = profile(runner, torch.randn(1, 48), CPUDevice(1), batch_sizes=[1, 16], **FAST)
    assert r["params"].value == 48 * 10 + 10
    assert r["flops"].value is None and "PyTorch" in r["flops"].note
    assert r["size_mb"].value == pytest.approx(path.stat().st_size / 1e6)
    assert r.batches[16]["latency_ms"].source == "measured:timer"
    assert r.batches[16]["latency_ms"].extra["batch_size"] == 16
    assert isinstance(r, HardwareReport)


# ---------------------------------------------------------------- choosing GPU meters (fake NVML)


@dataclass(frozen=True)
class _FakeCUDA(CUDADevice):
    def nvml(self):  # type: ignore[override]
        gpu = _GPUS[self.index]
        if gpu is None:
            raise NVMLUnavailable("nvidia-ml-py is not installed (test)")
        return FakeNVML([gpu]), gpu


_GPUS = [
    FakeGPU(),  # Volta+: energy counter
    FakeGPU(energy_mj=None),  # power only
    FakeGPU(energy_mj=None, power_mw=None),  # nothing: estimate
    None,  # no NVML
]


def test_gpu_energy_meter_choice() -> None:
    assert isinstance(prof.energy_meter_for(_FakeCUDA(0))(), NVMLEnergyMeter)
    assert isinstance(prof.energy_meter_for(_FakeCUDA(1))(), NVMLPowerMeter)
    assert isinstance(prof.energy_meter_for(_FakeCUDA(2))(), GPUUtilisationEstimateMeter)
    none = prof.energy_meter_for(_FakeCUDA(2), estimate=False)()
    assert isinstance(none, UnavailableEnergyMeter) and "neither" in none.reason
    no_nvml = prof.energy_meter_for(_FakeCUDA(3))()
    assert isinstance(no_nvml, UnavailableEnergyMeter) and "nvidia-ml-py" in no_nvml.reason
    assert prof.state_meter_for(_FakeCUDA(3)) is None
    assert prof.state_meter_for(_FakeCUDA(0)) is not None


def test_time_cap_is_reported() -> None:
    r = profile(_mlp(), torch.randn(2, 48), CPUDevice(1), ["latency_ms"], **{**FAST, "target_rel_ci": 1e-9, "max_time_s": 0.05})
    lat = r["latency_ms"]
    assert lat.extra["converged"] is False and "time cap" in lat.note
    assert any("time cap" in w for w in r.warnings)
