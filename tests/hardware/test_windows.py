"""Latency over short windows on recorded timings: drift, disturbed windows, the reference, the OS's flags."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from hwtune.hardware import (
    DeviceState,
    Meter,
    WindowRecord,
    measure_in_windows,
    summarize_windows,
)
from hwtune.hardware._windows import t_quantile_975

NET_MS, REF_MS = 4.0, 0.5  # the network's and the reference's latency on the quiet machine


class RecordedMachine:
    """A fake clock and two calls whose durations follow a recorded speed profile.

    ``speed(t)`` multiplies every duration at time ``t`` (1.0: quiet; 1.4: the machine runs 40 %
    slower); ``jitter`` is a recorded sequence of relative noise applied call after call.
    """

    def __init__(self, speed: Callable[[float], float] = lambda t: 1.0, seed: int = 0) -> None:
        self.t = 0.0
        self.speed = speed
        self.jitter = np.random.default_rng(seed).normal(0.0, 0.01, size=100_000)
        self.i = 0

    def clock(self) -> float:
        return self.t

    def _run(self, ms: float) -> None:
        self.t += ms / 1000.0 * self.speed(self.t) * (1.0 + self.jitter[self.i % self.jitter.size])
        self.i += 1

    def net(self) -> None:
        self._run(NET_MS)

    def ref(self) -> None:
        self._run(REF_MS)


def _measure(m: RecordedMachine, **kw: object) -> object:
    args = {"reference": m.ref, "clock": m.clock, "target_rel_ci": 0.02, "max_time_s": 3.0, "windows": 5, "window_s": 0.05}
    args.update(kw)
    return measure_in_windows(m.net, **args)  # type: ignore[arg-type]


def test_quiet_machine_converges_with_a_narrow_interval_and_the_true_ratio() -> None:
    r = _measure(RecordedMachine())
    assert r.converged and r.windows == 5 and r.flagged == 0
    assert r.median_ms == pytest.approx(NET_MS, rel=0.01)
    assert r.ci_low_ms <= r.median_ms <= r.ci_high_ms and r.rel_half_width < 0.02
    assert r.ratio == pytest.approx(NET_MS / REF_MS, rel=0.02)
    assert r.ref_ms == pytest.approx(REF_MS, rel=0.02)


def test_drifting_machine_widens_the_interval_and_the_ratio_stays_put() -> None:
    quiet = _measure(RecordedMachine(), target_rel_ci=0.5)
    # recorded drift: the machine slows down by 40 % over the 0.3 s of the measurement (a neighbour starts)
    drifting = _measure(RecordedMachine(speed=lambda t: 1.0 + 0.4 * min(t / 0.3, 1.0)), target_rel_ci=0.5)
    assert drifting.between_rel_half_width > 5 * quiet.between_rel_half_width
    assert drifting.rel_half_width > 5 * quiet.rel_half_width
    # the absolute interval is honest about the spread: it holds both ends of the drift
    assert drifting.ci_high_ms - drifting.ci_low_ms > 0.1 * NET_MS
    # the reference ran in the same windows: the ratio is the quiet machine's
    assert drifting.ratio == pytest.approx(NET_MS / REF_MS, rel=0.03)
    rel_ratio_half = (drifting.ratio_ci[1] - drifting.ratio_ci[0]) / 2 / drifting.ratio
    assert rel_ratio_half < drifting.rel_half_width / 3


def test_test_retest_at_two_machine_speeds_agrees_on_the_ratio() -> None:
    a = _measure(RecordedMachine(speed=lambda t: 1.0, seed=1))
    b = _measure(RecordedMachine(speed=lambda t: 1.3, seed=2))  # the second pass: a slower machine
    assert b.median_ms / a.median_ms == pytest.approx(1.3, rel=0.02)
    assert b.ratio / a.ratio == pytest.approx(1.0, abs=0.02)


def test_latency_at_the_reference_speed_does_not_move_with_the_machine() -> None:
    # the same network measured on a quiet machine and on one running 30 % slower (a drift between
    # passes): at a stored reference speed both report the quiet machine's latency
    a = _measure(RecordedMachine(speed=lambda t: 1.0, seed=1), converge_on_ratio=True)
    b = _measure(RecordedMachine(speed=lambda t: 1.3, seed=2), converge_on_ratio=True)
    qa, qb = a.at_reference_speed(REF_MS), b.at_reference_speed(REF_MS)
    assert b.median_ms / a.median_ms == pytest.approx(1.3, rel=0.02)  # the wall clock moved
    assert qa.median_ms == pytest.approx(NET_MS, rel=0.02) and qb.median_ms == pytest.approx(NET_MS, rel=0.02)
    assert qb.ci_low_ms <= qb.median_ms <= qb.ci_high_ms and qb.ci_low_ms > 0
    # the windows handed to a later pooling (decisions near a bound) are on the same scale
    assert np.median(qb.window_medians_ms) == pytest.approx(NET_MS, rel=0.03)
    assert a.at_reference_speed(REF_MS).rel_half_width == pytest.approx(a.ratio_rel_half_width, rel=1e-6)


def test_converging_on_the_ratio_stops_on_a_drifting_machine() -> None:
    drift = lambda t: 1.0 + 0.4 * min(t / 0.3, 1.0)  # noqa: E731 - a recorded slow-down
    on_wall = _measure(RecordedMachine(speed=drift), target_rel_ci=0.03)
    on_ratio = _measure(RecordedMachine(speed=drift), target_rel_ci=0.03, converge_on_ratio=True)
    assert not on_wall.converged  # the wall clock's interval holds the drift: it never narrows
    assert on_ratio.converged and on_ratio.ratio_rel_half_width <= 0.03 and on_ratio.windows < on_wall.windows


def test_adaptive_windows_until_the_target_or_the_cap() -> None:
    m = RecordedMachine(speed=lambda t: 1.0 + 0.3 * np.sin(40 * t) ** 2)
    r = _measure(m, target_rel_ci=1e-6, max_windows=9)
    assert not r.converged and r.windows == 9
    r = _measure(RecordedMachine(speed=lambda t: 1.0 + 0.3 * np.sin(40 * t) ** 2), target_rel_ci=1e-6, max_windows=1000, max_time_s=0.5)
    assert not r.converged and m.t < 10 and r.windows < 1000


class _FlagWindows(Meter):
    """A state meter replaying recorded flags, one per window (True: the OS said busy)."""

    def __init__(self, flags: list[bool], machine: RecordedMachine, slow: float = 2.0) -> None:
        self.flags, self.machine, self.slow = flags, machine, slow

    def begin(self) -> None:
        self.flag = self.flags.pop(0) if self.flags else False
        if self.flag:  # a neighbour holds our core through this window
            self.machine.speed = lambda t: self.slow
        else:
            self.machine.speed = lambda t: 1.0

    def end(self) -> None:
        pass

    def state(self) -> DeviceState:
        return DeviceState("cpu", busy=self.flag, reasons=["3 tasks runnable on 2 CPU(s)"] if self.flag else [])


def test_disturbed_window_is_repeated_and_left_out() -> None:
    m = RecordedMachine()
    flags = [False, True, False, False, False, False]
    r = _measure(m, probe=lambda: _FlagWindows(flags, m), target_rel_ci=0.5)
    assert r.flagged == 1 and r.repeated == 1 and r.windows == 5 and r.flagged_used == 0
    assert r.median_ms == pytest.approx(NET_MS, rel=0.01) and r.ci_high_ms < 1.1 * NET_MS
    assert r.reasons == ("3 tasks runnable on 2 CPU(s)",)


def test_repeats_of_flagged_windows_are_bounded_then_they_widen_the_interval() -> None:
    m = RecordedMachine()
    flags = [True, False, True, True, True, True, True, True, True]
    r = _measure(m, probe=lambda: _FlagWindows(flags, m), target_rel_ci=0.5, max_flagged_repeats=2)
    # 2 repeats, then flagged windows count: fewer than 3 clean ones, so all are kept
    assert r.repeated == 2 and r.flagged_used == r.flagged and r.flagged >= 4
    assert r.ci_high_ms > 1.5 * NET_MS  # the disturbed windows widen the interval: never silently kept


def test_unflagged_disturbance_still_widens_the_interval() -> None:
    # one window slowed down 2x without any flag (the VM: 0 windows flagged)
    recs = [WindowRecord([4.0, 4.02, 3.98], [0.5, 0.5]) for _ in range(4)] + [WindowRecord([8.0, 8.1, 7.9], [0.5, 0.5])]
    wide = summarize_windows(recs)
    narrow = summarize_windows(recs[:4] + [WindowRecord([4.01, 4.0, 3.99], [0.5, 0.5])])
    assert wide.ci_high_ms > 5.0 and narrow.ci_high_ms < 4.1
    assert wide.rel_half_width > 10 * narrow.rel_half_width


def test_interval_is_never_below_zero_and_t_table() -> None:
    recs = [WindowRecord([x], [1.0]) for x in (0.1, 0.1, 5.0)]
    r = summarize_windows(recs)
    assert r.ci_low_ms >= 0.0 and r.ratio_ci[0] >= 0.0
    # the window medians' t-interval reaches below 0 here; the bound stops at the fastest call measured
    assert r.ci_low_ms == pytest.approx(0.1) and r.ci_low_ms > 0
    assert t_quantile_975(4) == pytest.approx(2.776) and t_quantile_975(1000) == pytest.approx(1.96, abs=0.01)
    with pytest.raises(ValueError):
        summarize_windows([])


