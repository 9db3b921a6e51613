"""Decisions near a bound on recorded measurements: a straddling network is measured again, bounded."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hwtune.hardware import (
    HardwareReport,
    Measurement,
    decide_near_bounds,
    pool_measurements,
    remeasure_until_decided,
    straddles,
)


def _lat(value: float, lo: float, hi: float, windows: list[float] | None = None) -> Measurement:
    return Measurement("latency_ms", value, "ms", "measured:timer", lo, hi, 20, extra={"window_medians_ms": windows or []})


class Recorded:
    """Replays recorded measurements one call at a time and counts the calls."""

    def __init__(self, ms: list[Measurement]) -> None:
        self.ms, self.calls = list(ms), 0

    def __call__(self) -> Measurement:
        self.calls += 1
        return self.ms.pop(0)


def test_clear_of_the_bound_is_decided_at_once() -> None:
    rec = Recorded([_lat(4.0, 3.8, 4.2)])
    _, d = remeasure_until_decided(rec, 5.0, "<=", 3)
    assert rec.calls == 1 and d["decision"] == "within" and d["rounds"] == 1 and d["how"] == "interval clear of the bound"
    _m, d = remeasure_until_decided(Recorded([_lat(6.0, 5.5, 6.4)]), 5.0, "<=", 3)
    assert d["decision"] == "over"


def test_straddling_network_is_measured_again_and_the_pooled_interval_decides() -> None:
    # round 1: 4.9 [4.4, 5.4] straddles 5; round 2's windows agree at ~4.8: the pooled interval clears 5
    rounds = [
        _lat(4.9, 4.4, 5.4, [4.4, 4.9, 5.3, 4.8, 4.85]),
        _lat(4.8, 4.7, 4.9, [4.78, 4.8, 4.82, 4.79, 4.81]),
        _lat(4.8, 4.7, 4.9, [4.8] * 5),
    ]
    rec = Recorded(rounds)
    m, d = remeasure_until_decided(rec, 5.0, "<=", 3)
    assert rec.calls == 2
    assert d["rounds"] == 2 and d["decision"] == "within" and "after 2 rounds" in d["how"]
    assert d["values"] == [4.9, 4.8] and d["intervals"][0] == [4.4, 5.4]
    assert m.ci_high < 5.0 and m.extra["rounds"] == 2 and len(m.extra["window_medians_ms"]) == 10
    assert straddles(rounds[0], 5.0) and not straddles(m, 5.0)


def test_still_straddling_after_the_bound_decides_by_the_point_value() -> None:
    rec = Recorded([_lat(5.1, 4.5, 5.6, [4.5, 5.1, 5.6, 5.0, 5.2]) for _ in range(5)])
    _m, d = remeasure_until_decided(rec, 5.0, "<=", 3)
    assert rec.calls == 3 and d["rounds"] == 3 and d["decision"] == "over" and d["how"].startswith("point value")
    with pytest.raises(ValueError):
        remeasure_until_decided(rec, 5.0, "=>", 3)


def test_lower_bounds_and_measurements_without_windows_pool_by_their_values() -> None:
    rounds = [Measurement("throughput_sps", v, "samples/s", "measured:timer", v - 10, v + 10) for v in (100.0, 120.0, 110.0)]
    p = pool_measurements(rounds)
    assert p.value == 110.0 and p.ci_low == 100.0 and p.ci_high == 120.0
    _m, d = remeasure_until_decided(Recorded(rounds), 105.0, ">=", 3)
    assert d["rounds"] == 3 and d["decision"] == "within"


@dataclass
class _C:
    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def test_decide_near_bounds_on_reports() -> None:
    first = HardwareReport({"latency_ms": _lat(4.9, 4.4, 5.4, [4.4, 4.9, 5.3, 4.8, 4.85]), "params": Measurement("params", 10.0, "", "counted")})
    again = [HardwareReport({"latency_ms": _lat(4.8, 4.7, 4.9, [4.78, 4.8, 4.82, 4.79, 4.81])})]
    calls = []

    def measure_again() -> HardwareReport:
        calls.append(1)
        return again.pop(0)

    rep, decisions = decide_near_bounds(first, measure_again, [_C("latency_ms", "<=", 5.0), _C("peak_mem_mb", "<=", 1.0)], max_rounds=3)
    assert len(calls) == 1
    assert decisions["latency_ms <= 5"]["decision"] == "within" and decisions["latency_ms <= 5"]["rounds"] == 2
    assert "peak_mem_mb <= 1" not in decisions  # not measured: the loop's own check reports it
    assert rep["latency_ms"].ci_high < 5.0 and rep["params"].value == 10.0
    assert any("measured 2 times" in w for w in rep.warnings)
    rep, decisions = decide_near_bounds(first, measure_again, [_C("latency_ms", "<=", 9.0)])
    assert decisions["latency_ms <= 9"]["rounds"] == 1 and rep is not first
