"""NVML paths (GPU energy, power, state) on recorded readings: no GPU needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwtune.hardware import Window
from hwtune.hardware._nvml import (
    DISTURBING_THROTTLE,
    GPUUtilisationEstimateMeter,
    NVMLEnergyMeter,
    NVMLPowerMeter,
    NVMLStateMeter,
    decode_throttle_reasons,
    describe_gpu,
    has_energy_counter,
    integrate_power,
    nvml_handle,
    visible_device_entry,
)

from tests.hardware._fake_nvml import FakeGPU, FakeNVML


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------- integration of power samples


def test_integrate_constant_power() -> None:
    t = np.linspace(0.0, 2.0, 201)
    assert integrate_power(t, np.full_like(t, 150.0)) == pytest.approx(300.0)


def test_integrate_ramp_is_exact_for_trapezoids() -> None:
    t = [0.0, 1.0, 2.0]
    p = [100.0, 200.0, 100.0]
    assert integrate_power(t, p) == pytest.approx(300.0)


def test_integrate_clips_to_window_and_interpolates_ends() -> None:
    t = [0.0, 1.0, 2.0, 3.0]
    p = [100.0, 200.0, 200.0, 0.0]
    # window [0.5, 2.5]: 0.5..1 (150..200 mean 175) 87.5 + 1..2 200 + 2..2.5 (200..100) 75
    assert integrate_power(t, p, 0.5, 2.5) == pytest.approx(87.5 + 200.0 + 75.0)


def test_integrate_holds_first_and_last_sample_outside_the_samples() -> None:
    # a window wider than the samples: constant extension at both ends
    assert integrate_power([1.0, 2.0], [10.0, 10.0], 0.0, 3.0) == pytest.approx(30.0)
    assert integrate_power([1.0], [50.0], 0.0, 2.0) == pytest.approx(100.0)


def test_integrate_recorded_samples_unsorted_and_irregular() -> None:
    # irregular 100-250 Hz sampling of a 120 W + 30 W sine for 1 s, given out of order
    rng = np.random.default_rng(0)
    t = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0, 1, 180)]))
    p = 120 + 30 * np.sin(2 * np.pi * t)
    perm = rng.permutation(t.size)
    assert integrate_power(t[perm], p[perm]) == pytest.approx(120.0, rel=2e-3)


def test_integrate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        integrate_power([], [])
    with pytest.raises(ValueError):
        integrate_power([0.0, 1.0], [1.0])
    assert integrate_power([0.0, 1.0], [5.0, 5.0], 1.0, 1.0) == 0.0


# ---------------------------------------------------------------- energy meters


def test_energy_counter_meter_gives_power_and_energy_per_sample() -> None:
    gpu = FakeGPU(energy_mj=[5_000_000, 5_012_000])  # 12 J
    nv = FakeNVML([gpu])
    clock = FakeClock()
    m = NVMLEnergyMeter(nv, gpu, clock=clock)
    m.begin()
    clock.t += 0.1
    m.end()
    out = m.measurements(Window(0.1, calls=40, batch_size=8))
    assert out["power_w"].value == pytest.approx(120.0)
    assert out["power_w"].source == "measured:nvml"
    assert out["energy_mj"].value == pytest.approx(12_000.0 / 320)  # mJ per sample
    assert out["energy_mj"].unit == "mJ"
    assert not out["power_w"].estimated


def test_energy_counter_that_does_not_advance_is_unavailable_not_zero() -> None:
    gpu = FakeGPU(energy_mj=[7_000, 7_000])
    nv = FakeNVML([gpu])
    clock = FakeClock()
    m = NVMLEnergyMeter(nv, gpu, clock=clock)
    m.begin()
    clock.t += 0.01
    m.end()
    out = m.measurements(Window(0.01, 3, 1))
    assert out["energy_mj"].value is None and not out["energy_mj"].available
    assert "did not advance" in out["energy_mj"].note


def test_idle_baseline_is_subtracted_and_labelled() -> None:
    gpu = FakeGPU(energy_mj=[0, 20_000])  # 20 J in 0.1 s = 200 W
    nv = FakeNVML([gpu])
    clock = FakeClock()
    m = NVMLEnergyMeter(nv, gpu, clock=clock)
    m.baseline_w, m.baseline_note = 50.0, "idle baseline 50 W subtracted (given)"
    m.begin()
    clock.t += 0.1
    m.end()
    out = m.measurements(Window(0.1, 10, 1))
    assert out["power_w"].value == pytest.approx(150.0)
    assert out["power_w"].extra["baseline_subtracted"] is True
    assert out["power_w"].extra["total_power_w"] == pytest.approx(200.0)
    assert "idle baseline 50 W subtracted" in out["power_w"].note
    assert out["energy_mj"].value == pytest.approx(15.0 * 1000 / 10)


def test_power_sampling_meter_integrates_a_sampling_thread() -> None:
    gpu = FakeGPU(energy_mj=None, power_mw=lambda: 250_000.0)
    nv = FakeNVML([gpu])
    assert not has_energy_counter(nv, gpu)
    m = NVMLPowerMeter(nv, gpu, hz=200)
    import time

    m.begin()
    time.sleep(0.15)
    m.end()
    out = m.measurements(Window(m.duration_s, 30, 1))
    assert out["power_w"].value == pytest.approx(250.0, rel=1e-6)
    assert out["power_w"].source == "measured:nvml"
    assert out["power_w"].extra["method"] == "power_sampling"
    assert out["power_w"].extra["samples"] >= 3  # start, end and the thread's (rate depends on load)


def test_power_sampling_failure_is_unavailable_with_reason() -> None:
    gpu = FakeGPU(energy_mj=None, power_mw=None)
    nv = FakeNVML([gpu])
    m = NVMLPowerMeter(nv, gpu, hz=200)
    m.begin()
    m.end()
    out = m.measurements(Window(m.duration_s, 1, 1))
    assert out["power_w"].value is None
    assert "NVML power reading failed" in out["power_w"].note


def test_gpu_estimate_is_labelled_estimated() -> None:
    gpu = FakeGPU(energy_mj=None, power_mw=None, utilisation=[50], power_limit_mw=300_000)
    nv = FakeNVML([gpu])
    clock = FakeClock()
    m = GPUUtilisationEstimateMeter(nv, gpu, clock=clock)
    m.begin()
    clock.t += 1.0
    m.end()
    out = m.measurements(Window(1.0, 100, 1))
    p = out["power_w"]
    assert p.source == "estimated:tdp" and p.estimated
    assert p.value == pytest.approx(150.0)
    assert "no sensor" in p.note
    assert p.format().startswith("~")


# ---------------------------------------------------------------- state


def test_throttle_reason_decoding() -> None:
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x1 | 0x4) == ["gpu_idle", "sw_power_cap"]
    assert decode_throttle_reasons(0x40) == ["hw_thermal_slowdown"]
    assert decode_throttle_reasons(0x10000)[0].startswith("other(")
    assert not DISTURBING_THROTTLE & 0x4  # power cap alone does not repeat a measurement


def test_state_meter_flags_thermal_throttling_and_records_readings() -> None:
    gpu = FakeGPU(utilisation=[80, 100], throttle_mask=[0x0, 0x40 | 0x4], temperature=87, sm_clock=1400)
    nv = FakeNVML([gpu])
    m = NVMLStateMeter(nv, gpu, hz=50, own_pid=1234)
    m.begin()
    m.end()
    s = m.state()
    assert s.throttled and not s.busy and s.disturbed
    assert "hw_thermal_slowdown" in s.details["throttle_reasons"]
    assert s.details["power_capped"] is True
    assert s.details["temperature_max_c"] == 87
    assert s.details["sm_clock_min_mhz"] == 1400
    assert any("throttled" in r for r in s.reasons)


def test_state_meter_warns_about_other_processes() -> None:
    gpu = FakeGPU(processes=[1234, 999])
    nv = FakeNVML([gpu])
    m = NVMLStateMeter(nv, gpu, hz=50, own_pid=1234)
    m.begin()
    m.end()
    s = m.state()
    assert s.busy and s.details["other_processes"] == [999]
    assert "other process" in s.reasons[0]


def test_state_meter_in_a_pid_namespace_counts_itself_once() -> None:
    # inside a container NVML shows host PIDs: our own PID is absent, one process is taken as us
    alone = FakeGPU(processes=[88001])
    m = NVMLStateMeter(FakeNVML([alone]), alone, hz=50, own_pid=12)
    m.begin()
    m.end()
    assert not m.state().busy
    shared = FakeGPU(processes=[88001, 88002])
    m = NVMLStateMeter(FakeNVML([shared]), shared, hz=50, own_pid=12)
    m.begin()
    m.end()
    assert m.state().busy


# ---------------------------------------------------------------- device mapping


def test_visible_device_entry_follows_cuda_rules() -> None:
    assert visible_device_entry(0, None) is None
    assert visible_device_entry(1, "2,0") == "0"
    assert visible_device_entry(0, " GPU-abc , 1") == "GPU-abc"
    with pytest.raises(IndexError):
        visible_device_entry(2, "0,1")
    with pytest.raises(IndexError):  # CUDA stops at the first invalid entry
        visible_device_entry(1, "0,-1,2")


def test_nvml_handle_honours_cuda_visible_devices() -> None:
    gpus = [FakeGPU(uuid="GPU-aaaa-0"), FakeGPU(uuid="GPU-bbbb-1"), FakeGPU(uuid="GPU-cccc-2")]
    nv = FakeNVML(gpus)
    assert nvml_handle(nv, 1, env={}) is gpus[1]
    assert nvml_handle(nv, 0, env={"CUDA_VISIBLE_DEVICES": "2,0"}) is gpus[2]
    assert nvml_handle(nv, 1, env={"CUDA_VISIBLE_DEVICES": "2,0"}) is gpus[0]
    assert nvml_handle(nv, 0, env={"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}) is gpus[1]  # UUID prefix
    # torch's UUID wins over everything (it has no "GPU-" prefix)
    assert nvml_handle(nv, 0, uuid="cccc-2", env={"CUDA_VISIBLE_DEVICES": "0"}) is gpus[2]
    with pytest.raises(LookupError):
        nvml_handle(nv, 0, env={"CUDA_VISIBLE_DEVICES": "GPU-zzzz"})


def test_describe_gpu() -> None:
    gpu = FakeGPU()
    d = describe_gpu(FakeNVML([gpu]), gpu)
    assert d["driver"] == "555.42" and d["nvml_name"] == "Fake H100"
    assert d["energy_counter"] is True and d["power_limit_w"] == 300.0
    assert math.isclose(d["power_limit_w"], 300.0)
