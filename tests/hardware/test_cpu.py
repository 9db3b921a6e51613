"""CPU state (other load, throttling) and the labelled TDP estimate; memory meters; meter groups."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hwtune.hardware import CPUMemoryMeter, EnergyMeter, MeterGroup, Window
from hwtune.hardware._cpu import CPUStateMeter, CPUUtilisationEstimateMeter, cpu_tdp_w
from hwtune.hardware._meters import DeviceState, Meter, Sampler

# ---------------------------------------------------------------- what the OS says, from recorded files


def _stat(cpus: dict[int, tuple[int, ...]]) -> str:
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for c, v in cpus.items():
        lines.append(f"cpu{c} " + " ".join(str(x) for x in v))
    return "\n".join(lines) + "\nintr 0\n"


class _Files:
    def __init__(self, root: Path) -> None:
        self.stat, self.loadavg, self.sys = root / "stat", root / "loadavg", root / "sys"
        self.sys.mkdir()

    def write(self, stat: dict[int, tuple[int, ...]], running: int, freq: dict[int, int] | None = None) -> None:
        self.stat.write_text(_stat(stat))
        self.loadavg.write_text(f"1.00 0.80 0.50 {running}/300 12345\n")
        for c, f in (freq or {}).items():
            d = self.sys / f"cpu{c}" / "cpufreq"
            d.mkdir(parents=True, exist_ok=True)
            (d / "scaling_cur_freq").write_text(f"{f}\n")


def _probe_state(tmp_path: Path, before: dict, after: dict, *, own_s: float, wall_s: float = 0.1) -> DeviceState:
    f = _Files(tmp_path)
    t = {"t": 0.0, "own": 0.0}
    probe = CPUStateMeter(1, [0, 1], proc_stat=f.stat, proc_loadavg=f.loadavg, sys_cpu=f.sys,
                          clock=lambda: t["t"], process_cpu=lambda: t["own"], tick_s=0.01)
    f.write(**before)
    probe.begin()
    t["t"], t["own"] = wall_s, own_s
    f.write(**after)
    probe.end()
    return probe.state()


#          user nice system idle iowait irq softirq steal
Q0 = {0: (100, 0, 0, 900, 0, 0, 0, 0), 1: (100, 0, 0, 900, 0, 0, 0, 0)}


def test_quiet_window_is_not_flagged(tmp_path: Path) -> None:
    # we ran 10 ticks on one CPU, the other CPU idled
    after = {0: (110, 0, 0, 900, 0, 0, 0, 0), 1: (100, 0, 0, 910, 0, 0, 0, 0)}
    st = _probe_state(tmp_path, {"stat": Q0, "running": 1}, {"stat": after, "running": 1}, own_s=0.1)
    assert not st.disturbed and st.details["runnable"] == 1


def test_other_process_on_the_other_core_is_not_flagged(tmp_path: Path) -> None:
    after = {0: (110, 0, 0, 900, 0, 0, 0, 0), 1: (110, 0, 0, 900, 0, 0, 0, 0)}
    st = _probe_state(tmp_path, {"stat": Q0, "running": 2}, {"stat": after, "running": 2}, own_s=0.1)
    assert not st.disturbed


def test_other_processes_sharing_our_core_are_flagged(tmp_path: Path) -> None:
    # both CPUs fully busy, we got only 5 of 10 ticks: others used 1.5 CPUs of 2
    after = {0: (110, 0, 0, 900, 0, 0, 0, 0), 1: (110, 0, 0, 900, 0, 0, 0, 0)}
    st = _probe_state(tmp_path, {"stat": Q0, "running": 3}, {"stat": after, "running": 3}, own_s=0.05)
    assert st.busy and any("runnable" in r for r in st.reasons) and any("shared" in r for r in st.reasons)


def test_steal_time_is_flagged(tmp_path: Path) -> None:
    after = {0: (106, 0, 0, 900, 0, 0, 0, 4), 1: (100, 0, 0, 910, 0, 0, 0, 0)}
    st = _probe_state(tmp_path, {"stat": Q0, "running": 1}, {"stat": after, "running": 1}, own_s=0.06)
    assert st.busy and any("stole 40 ms" in r for r in st.reasons) and st.details["steal_s"] == pytest.approx(0.04)


def test_frequency_change_is_flagged_as_throttling(tmp_path: Path) -> None:
    after = {0: (110, 0, 0, 900, 0, 0, 0, 0), 1: (100, 0, 0, 910, 0, 0, 0, 0)}
    st = _probe_state(tmp_path, {"stat": Q0, "running": 1, "freq": {0: 3_000_000, 1: 3_000_000}},
                      {"stat": after, "running": 1, "freq": {0: 2_000_000, 1: 2_000_000}}, own_s=0.1)
    assert st.throttled and not st.busy and any("frequency" in r for r in st.reasons)


def test_unreadable_files_flag_nothing(tmp_path: Path) -> None:
    probe = CPUStateMeter(1, [0], proc_stat=tmp_path / "no", proc_loadavg=tmp_path / "no", sys_cpu=tmp_path / "no")
    probe.begin()
    probe.end()
    assert not probe.state().disturbed


def test_real_probe_reads_this_machine() -> None:
    probe = CPUStateMeter(1)
    probe.begin()
    sum(range(10_000))
    probe.end()
    st = probe.state()
    assert st.device == "cpu" and "window_s" in st.details

def test_thermal_throttle_counters_flag_throttling(tmp_path: Path) -> None:
    d = tmp_path / "cpu0" / "thermal_throttle"
    d.mkdir(parents=True)
    (d / "core_throttle_count").write_text("3\n")
    (d / "package_throttle_count").write_text("4\n")
    m = CPUStateMeter(1, [0], proc_stat=tmp_path / "no", proc_loadavg=tmp_path / "no", sys_cpu=tmp_path)
    m.begin()
    (d / "core_throttle_count").write_text("6\n")
    m.end()
    s = m.state()
    assert s.details["thermal_throttle_events"] == 3 and s.throttled and any("thermal" in r for r in s.reasons)


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
