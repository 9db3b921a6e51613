"""RAPL powercap: zone discovery, wrap-around arithmetic on recorded counter readings, reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwtune.hardware import Window
from hwtune.hardware._rapl import RaplEnergyMeter, RaplZone, accumulate_counter, counter_delta, find_rapl_zones

MAX = 262_143_328_850  # a real max_energy_range_uj (Intel Xeon package)


def test_counter_delta_without_and_with_wrap() -> None:
    assert counter_delta(1_000, 5_000, MAX) == 4_000
    assert counter_delta(MAX - 1_000, 2_000, MAX) == 3_000
    assert counter_delta(7, 7, MAX) == 0
    with pytest.raises(ValueError):
        counter_delta(0, 1, 0)


def test_accumulate_recorded_readings_across_two_wraps() -> None:
    # readings once a second of a package drawing ~100 W (1e8 uJ/s) with a small max range
    max_range = 250_000_000
    readings = [200_000_000, 50_000_000, 150_000_000, 240_000_000, 90_000_000]
    # 200M->50M wraps (100M), ->150M (100M), ->240M (90M), wraps ->90M (100M)
    assert accumulate_counter(readings, max_range) == 390_000_000
    assert accumulate_counter([5], max_range) == 0


def _zone(root: Path, name: str, label: str, energy: int, max_range: int = MAX) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


def test_find_zones_counts_packages_and_dram_only(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 10)
    _zone(tmp_path, "intel-rapl:1", "package-1", 20)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5)  # inside package-0: not added again
    _zone(tmp_path, "intel-rapl:0:1", "dram", 3)  # not inside the package: added
    _zone(tmp_path, "intel-rapl-mmio:0", "package-0", 10)  # the same package through MMIO
    _zone(tmp_path, "intel-rapl:2", "psys", 99)  # whole platform: only used alone
    (tmp_path / "intel-rapl").mkdir()  # the control type, no counter
    zones, reason = find_rapl_zones(tmp_path)
    assert reason is None
    assert sorted(z.name for z in zones) == ["dram", "package-0", "package-1"]


def test_find_zones_psys_alone_and_amd_names(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "psys", 1)
    zones, _ = find_rapl_zones(tmp_path)
    assert [z.name for z in zones] == ["psys"]
    amd = tmp_path / "amd"
    amd.mkdir()
    _zone(amd, "amd-rapl:0", "package-0", 1)
    zones, _ = find_rapl_zones(amd)
    assert [z.name for z in zones] == ["package-0"]


def test_missing_interface_gives_a_reason(tmp_path: Path) -> None:
    zones, reason = find_rapl_zones(tmp_path / "nope")
    assert zones == [] and "no " in reason and "powercap" in reason
    empty = tmp_path / "empty"
    empty.mkdir()
    zones, reason = find_rapl_zones(empty)
    assert zones == [] and "no RAPL zones" in reason


def test_permission_denied_gives_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 10)

    def denied(self: RaplZone) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(RaplZone, "read_uj", denied)
    zones, reason = find_rapl_zones(tmp_path)
    assert zones == []
    assert "permission denied" in reason and "root" in reason and "chmod" in reason


def test_meter_reads_files_and_handles_wrap(tmp_path: Path) -> None:
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_range=1_000_000_000)
    d0 = _zone(tmp_path, "intel-rapl:0:2", "dram", 10_000_000)
    zones, _ = find_rapl_zones(tmp_path)
    m = RaplEnergyMeter(zones)
    m.begin()
    (p0 / "energy_uj").write_text("4000000\n")  # wrapped: +1 J + 4 J
    (d0 / "energy_uj").write_text("12000000\n")  # +2 J
    m.end()
    out = m.measurements(Window(m.duration_s, calls=10, batch_size=2))
    e = out["energy_mj"]
    assert e.source == "measured:rapl" and not e.estimated
    assert e.value == pytest.approx(7.0 * 1000 / 20)
    assert e.extra["zones_j"]["intel-rapl:0:package-0"] == pytest.approx(5.0)
    assert out["power_w"].value == pytest.approx(7.0 / m.duration_s)
    assert "whole CPU package" in e.note


def test_meter_read_error_is_unavailable(tmp_path: Path) -> None:
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    zones, _ = find_rapl_zones(tmp_path)
    m = RaplEnergyMeter(zones)
    m.begin()
    (p0 / "energy_uj").unlink()
    m.end()
    out = m.measurements(Window(0.1, 1, 1))
    assert out["power_w"].value is None and "RAPL read failed" in out["power_w"].note
