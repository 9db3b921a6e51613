"""Measurement labels, the report's dict form and its printed table."""

from __future__ import annotations

import json

from hwtune.hardware import HardwareReport, Measurement, format_report
from hwtune.hardware._measurement import unavailable


def _report() -> HardwareReport:
    lat1 = Measurement("latency_ms", 4.2, "ms", "measured:timer", 4.1, 4.3, 120, None, {"batch_size": 1, "target_rel_ci": 0.03, "clock": "wall", "threads": 2})
    lat32 = Measurement("latency_ms", 40.0, "ms", "measured:timer", 39.0, 41.0, 30, None, {"batch_size": 32})
    power = Measurement("power_w", 30.0, "W", "estimated:tdp", note="RAPL unavailable (no /sys/class/powercap)")
    energy = unavailable("energy_mj", "mJ", "no sensor here")
    params = Measurement("params", 1531546.0, "", "counted")
    return HardwareReport(
        {"latency_ms": lat1, "power_w": power, "energy_mj": energy, "params": params},
        {"type": "cpu", "model": "Test CPU", "threads": 2, "cpus_available": 2, "torch": "2.x"},
        {1: {"latency_ms": lat1, "power_w": power, "energy_mj": energy}, 32: {"latency_ms": lat32}},
        ["power_w: ESTIMATED (estimated:tdp), not measured: RAPL unavailable", "energy_mj: unavailable: no sensor here"],
    )


def test_unavailable_is_none_never_zero() -> None:
    m = unavailable("energy_mj", "mJ", "permission denied")
    assert m.value is None and not m.available and m.source == "unavailable"
    assert m.format() == "unavailable (permission denied)"
    assert "energy_mj" not in _report().values()


def test_estimated_values_are_labelled() -> None:
    m = Measurement("power_w", 30.0, "W", "estimated:tdp")
    assert m.estimated and m.format().startswith("~30 W") and "estimated:tdp" in m.format()
    assert not Measurement("power_w", 30.0, "W", "measured:rapl").estimated
    r = _report()
    assert "power_w" in r.values() and "power_w" not in r.values(include_estimated=False)


def test_measurement_format_and_round_trip() -> None:
    m = Measurement("latency_ms", 0.412, "ms", "measured:timer", 0.405, 0.42, 120, None, {"batch_size": 1})
    assert m.format() == "0.412 ms [0.405, 0.42] (measured:timer, n=120)"
    assert Measurement.from_dict(m.to_dict()) == m
    assert Measurement("params", 1234567.0, "", "counted").format() == "1,234,567 (counted)"


def test_report_dict_round_trip_is_json() -> None:
    r = _report()
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d["batches"]) == {"1", "32"}
    back = HardwareReport.from_dict(d)
    assert back.measurements == r.measurements and back.batches == r.batches and back.warnings == r.warnings
    # the study's minimal form still works
    assert HardwareReport({"params": r["params"]}, {}).to_dict() == {"device": {}, "measurements": {"params": r["params"].to_dict()}}


def test_format_report_table() -> None:
    text = format_report(_report())
    lines = text.splitlines()
    assert lines[0].startswith("cpu: Test CPU, 2 threads")
    header = next(line for line in lines if line.startswith("metric"))
    for col in ("batch", "value", "95% CI", "n", "source"):
        assert col in header
    lat_rows = [line for line in lines if line.startswith("latency_ms")]
    assert len(lat_rows) == 2 and "[4.1, 4.3]" in lat_rows[0] and " 32 " in lat_rows[1]
    power_row = next(line for line in lines if line.startswith("power_w"))
    assert "~30 W" in power_row and "estimated:tdp" in power_row
    energy_row = next(line for line in lines if line.startswith("energy_mj"))
    assert "unavailable" in energy_row
    assert "1,531,546" in next(line for line in lines if line.startswith("params"))
    assert "notes:" in lines and any("ESTIMATED" in line for line in lines)
    assert "target ±3%" in text
    assert text == _report().format()


def test_device_line_for_a_gpu() -> None:
    from hwtune.hardware._measurement import describe_device_line

    line = describe_device_line({"type": "cuda", "index": 1, "model": "NVIDIA H100", "driver": "555.42", "cuda_runtime": "12.4", "threads": 4, "torch": "2.x"})
    assert line == "cuda:1: NVIDIA H100, driver 555.42, CUDA 12.4, 4 host threads, torch 2.x"
