"""``SystemSensors``: psutil's answers become readings; a sensor that is absent, empty or failing is
missing with its reason, never 0 (psutil is replaced by fakes: the test machine has none of them)."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest

from hwtune.deploy import SystemSensors
from hwtune.deploy._sensors import SENSOR_NAMES

Battery = namedtuple("Battery", "percent secsleft power_plugged")
Temp = namedtuple("Temp", "label current high critical")


def test_this_machine_reports_every_sensor_present_or_missing_with_a_reason() -> None:
    r = SystemSensors().read()
    assert set(r) == set(SENSOR_NAMES)
    for name, reading in r.items():
        assert (reading.value is not None) != bool(reading.missing), (name, reading)


def test_no_battery_and_no_temperatures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)
    monkeypatch.setattr(psutil, "sensors_temperatures", dict)
    r = SystemSensors(sys_cpu=tmp_path).read()
    assert r["battery_percent"].value is None and "no battery" in r["battery_percent"].missing
    assert r["power_plugged"].value is None and r["power_plugged"].missing
    assert r["temperature_c"].value is None and "no temperature sensor" in r["temperature_c"].missing
    assert r["throttling"].value is None and "thermal_throttle" in r["throttling"].missing


def test_a_laptop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(psutil, "sensors_battery", lambda: Battery(37.5, 3600, False))
    chips = {"coretemp": [Temp("Package id 0", 71.0, 84.0, 100.0), Temp("Core 0", 0.0, None, None)], "nvme": [Temp("Composite", 90.0, 80.0, 85.0)]}
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: chips)
    (tmp_path / "cpu0" / "thermal_throttle").mkdir(parents=True)
    counter = tmp_path / "cpu0" / "thermal_throttle" / "core_throttle_count"
    counter.write_text("5\n")
    s = SystemSensors(sys_cpu=tmp_path)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    r = s.read()
    assert (r["battery_percent"].value, r["power_plugged"].value) == (37.5, False)
    t = r["temperature_c"]
    assert t.value == 71.0 and t.extra["high_c"] == 84.0  # the CPU chip, not the disk; a 0 reading is ignored
    assert r["throttling"].value is False  # the first read sets the baseline
    counter.write_text("7\n")
    assert s.read()["throttling"].value is True
    assert s.read()["throttling"].value is False


def test_failing_and_partial_sensors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken() -> Any:
        raise OSError("EIO")

    monkeypatch.setattr(psutil, "sensors_battery", lambda: Battery(80.0, -1, None))
    monkeypatch.setattr(psutil, "sensors_temperatures", broken)
    r = SystemSensors(sys_cpu=tmp_path).read()
    assert r["battery_percent"].value == 80.0
    assert r["power_plugged"].value is None and "plugged" in r["power_plugged"].missing
    assert r["temperature_c"].value is None and "EIO" in r["temperature_c"].missing


def test_gpu_without_nvml_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import hwtune.hardware._nvml as nvml

    def unavailable() -> Any:
        raise nvml.NVMLUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)")

    monkeypatch.setattr(nvml, "get_nvml", unavailable)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)
    r = SystemSensors(gpu_index=0).read()
    assert r["temperature_c"].value is None and "nvidia-ml-py" in r["temperature_c"].missing
    assert r["throttling"].value is None and r["throttling"].missing
