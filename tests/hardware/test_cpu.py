"""CPU state (other load, throttling) and the labelled TDP estimate; memory meters; meter groups."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hwtune.hardware import CPUMemoryMeter, EnergyMeter, MeterGroup, Window
from hwtune.hardware._cpu import CPUStateMeter, CPUUtilisationEstimateMeter, cpu_tdp_w
from hwtune.hardware._meters import Meter, Sampler


class Scripted(CPUStateMeter):
    """A state meter reading scripted counters instead of /proc."""

    def __init__(self, readings: list[dict], **kw) -> None:
        super().__init__(cpus=[0, 1], **kw)
        self.readings = list(readings)

    def _read(self) -> dict:
        return self.readings.pop(0)


def _r(t: float, busy: float, own: float, throttle: int | None = None) -> dict:
    return {"t": t, "busy": busy, "own": own, "freq": 2000.0, "throttle": throttle}


def test_cpu_state_flags_other_load() -> None:
    # 1 s window on 2 CPUs: 1.9 CPU-s busy, 0.9 of them ours -> others used 50 %
    m = Scripted([_r(0.0, 100.0, 10.0), _r(1.0, 101.9, 10.9)])
    m.begin()
    m.end()
    s = m.state()
    assert s.busy and not s.throttled and s.disturbed
    assert s.details["other_load"] == pytest.approx(0.5)
    assert s.details["own_load"] == pytest.approx(0.45)
    assert "50%" in s.reasons[0]


def test_cpu_state_quiet_machine_and_short_window_tolerance() -> None:
    m = Scripted([_r(0.0, 100.0, 10.0), _r(1.0, 101.0, 10.95)])
    m.begin()
    m.end()
    assert not m.state().busy
    # a 50 ms window: 30 % other load is within the counters' 10 ms resolution, so not flagged
    m = Scripted([_r(0.0, 100.0, 10.0), _r(0.05, 100.06, 10.03)])
    m.begin()
    m.end()
    s = m.state()
    assert s.details["other_load"] == pytest.approx(0.3)
    assert not s.busy


def test_cpu_state_flags_thermal_throttling() -> None:
    m = Scripted([_r(0.0, 0.0, 0.0, throttle=5), _r(1.0, 1.0, 1.0, throttle=9)])
    m.begin()
    m.end()
    s = m.state()
    assert s.throttled and s.details["thermal_throttle_events"] == 4


def test_cpu_state_reads_throttle_counters_from_sysfs(tmp_path: Path) -> None:
    d = tmp_path / "cpu0" / "thermal_throttle"
    d.mkdir(parents=True)
    (d / "core_throttle_count").write_text("3\n")
    (d / "package_throttle_count").write_text("4\n")
    m = CPUStateMeter(cpus=[0], sys_root=tmp_path)
    m.begin()
    (d / "core_throttle_count").write_text("6\n")
    m.end()
    s = m.state()
    assert s.details["thermal_throttle_events"] == 3 and s.throttled


def test_real_cpu_state_meter_runs() -> None:
    m = CPUStateMeter()
    m.begin()
    time.sleep(0.02)
    m.end()
    s = m.state()
    assert s.device == "cpu" and "own_load" in s.details


def test_tdp_estimate_is_labelled_and_uses_process_cpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([10.0, 11.0])  # 1 CPU-second used in the window
    monkeypatch.setattr("hwtune.hardware._cpu.process_cpu_seconds", lambda: next(times))
    clock_t = iter([0.0, 1.0])
    m = CPUUtilisationEstimateMeter(tdp_w=100.0, logical_cpus=4, reason="RAPL unavailable (test)", clock=lambda: next(clock_t))
    m.begin()
    m.end()
    out = m.measurements(Window(1.0, calls=50, batch_size=2))
    p, e = out["power_w"], out["energy_mj"]
    assert p.source == e.source == "estimated:tdp" and p.estimated and e.estimated
    assert p.value == pytest.approx(25.0)  # 100 W x 1/4 of the CPUs
    assert e.value == pytest.approx(25.0 * 1000 / 100)
    assert "RAPL unavailable (test)" in p.note and "CodeCarbon" in p.note
    assert p.extra["utilisation"] == pytest.approx(0.25)


def test_tdp_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWTUNE_CPU_TDP_W", raising=False)
    assert cpu_tdp_w(None)[0] == 85.0 and "default" in cpu_tdp_w(None)[1]
    monkeypatch.setenv("HWTUNE_CPU_TDP_W", "65")
    assert cpu_tdp_w(None) == (65.0, "HWTUNE_CPU_TDP_W")
    assert cpu_tdp_w(120) == (120.0, "given")


def test_cpu_memory_meter_sees_resident_growth() -> None:
    m = CPUMemoryMeter()
    m.begin()
    a = np.ones(8_000_000)  # 64 MB, touched
    a += 1
    del a
    m.end()
    out = m.measurements(Window(0.1, 1, 1))["peak_mem_mb"]
    assert out.source == "measured:rss" and out.unit == "MB"
    assert out.value >= 50.0  # the peak, although the array is gone by the end
    assert out.extra["kind"] == "resident-set growth"


def test_sampler_samples_and_reports_errors() -> None:
    n = iter(range(1000))
    s = Sampler(lambda: next(n), hz=500)
    s.start()
    time.sleep(0.05)
    s.stop()
    assert len(s.values) >= 3 and s.values == sorted(s.values) and s.error is None

    def boom() -> int:
        raise RuntimeError("sensor gone")

    s = Sampler(boom, hz=100)
    s.start()
    s.stop()
    assert isinstance(s.error, RuntimeError) and s.values == []


class _Broken(EnergyMeter):
    def begin(self) -> None:
        raise OSError("counter vanished")

    def end(self) -> None:  # pragma: no cover - never reached
        pass

    def energy_j(self):  # pragma: no cover
        return None, None, {}


class _Order(Meter):
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def begin(self) -> None:
        self.log.append(f"begin {self.name}")

    def end(self) -> None:
        self.log.append(f"end {self.name}")


def test_meter_group_order_and_failure_isolation() -> None:
    log: list[str] = []
    g = MeterGroup([_Order(log, "a"), _Broken(), _Order(log, "b")])
    with g.window():
        log.append("work")
    assert log == ["begin a", "begin b", "work", "end b", "end a"]
    out = g.measurements(Window(g.duration_s, 1, 1))
    assert out["power_w"].value is None and "counter vanished" in out["power_w"].note
