"""Meters share one shape: ``begin()`` a window, ``end()`` it, then read its measurements.

Several meters compose in one window through :class:`MeterGroup`: the latency loop runs inside the
window while an energy meter reads its counter at both ends and a state meter watches the device.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from hwtune.hardware._measurement import Measurement, unavailable

__all__ = [
    "Window",
    "DeviceState",
    "Meter",
    "EnergyMeter",
    "UnavailableEnergyMeter",
    "MeterGroup",
    "Sampler",
    "say_once",
]

logger = logging.getLogger("hwtune.hardware")
_said: set[str] = set()


def say_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    if key not in _said:
        _said.add(key)
        logger.warning(message)


@dataclass(frozen=True)
class Window:
    """What happened inside one measurement window.

    Attributes:
        duration_s: wall time between begin and end.
        calls: inferences (batches) run inside the window.
        batch_size: samples per call.
    """

    duration_s: float
    calls: int
    batch_size: int

    @property
    def samples(self) -> int:
        return self.calls * self.batch_size


@dataclass
class DeviceState:
    """The device's state during one window.

    Attributes:
        device: ``cpu`` or ``cuda``.
        busy: other work used the device (other processes on the GPU, other load on our CPUs).
        throttled: the device slowed itself down (thermal, hardware slowdown, power brake).
        reasons: human-readable reasons for ``busy`` / ``throttled``.
        details: readings (utilisation, temperature, clocks, load, frequency...).
    """

    device: str
    busy: bool = False
    throttled: bool = False
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def disturbed(self) -> bool:
        return self.busy or self.throttled

    def to_dict(self) -> dict[str, Any]:
        return {"busy": self.busy, "throttled": self.throttled, "reasons": list(self.reasons), **self.details}


class Meter(ABC):
    """Measures something over a window: ``begin()``, run the work, ``end()``, then read it."""

    name: str = "meter"

    @abstractmethod
    def begin(self) -> None:
        """Open the window (read counters, start sampling)."""

    @abstractmethod
    def end(self) -> None:
        """Close the window (read counters, stop sampling)."""

    def measurements(self, window: Window) -> dict[str, Measurement]:
        """Vocabulary measurements of the closed window (``window`` says how much work it held)."""
        return {}

    def state(self) -> DeviceState | None:
        """The device state seen during the window, for state meters."""
        return None


class EnergyMeter(Meter):
    """A meter of energy over a window; yields ``power_w`` (mean) and ``energy_mj`` (per sample).

    Subclasses implement ``begin``/``end`` and :meth:`energy_j`. When ``baseline_w`` is set, that
    idle power times the window's duration is subtracted and the values say so.
    """

    name = "energy"
    source = "measured"
    baseline_w: float | None = None
    baseline_note: str | None = None

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._t0: float | None = None
        self._t1: float | None = None

    def _mark_begin(self) -> None:
        self._t0 = self._clock()
        self._t1 = None

    def _mark_end(self) -> None:
        self._t1 = self._clock()

    @property
    def duration_s(self) -> float:
        if self._t0 is None or self._t1 is None:
            raise RuntimeError(f"{type(self).__name__}: window not closed")
        return self._t1 - self._t0

    @abstractmethod
    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        """Energy in the closed window: (joules or None, note, extra details)."""

    def measurements(self, window: Window) -> dict[str, Measurement]:
        energy, note, extra = self.energy_j()
        dur = self.duration_s
        extra = {**extra, "window_s": round(dur, 6), "calls": window.calls, "batch_size": window.batch_size}
        if energy is None:
            why = note or "no reading"
            return {
                "power_w": unavailable("power_w", "W", why, **extra),
                "energy_mj": unavailable("energy_mj", "mJ", why, **extra),
            }
        notes = [note] if note else []
        if self.baseline_w is not None:
            total = energy
            energy = total - self.baseline_w * dur
            extra.update(total_power_w=round(total / dur, 4) if dur > 0 else None, idle_baseline_w=round(self.baseline_w, 4), baseline_subtracted=True)
            notes.append(self.baseline_note or f"idle baseline {self.baseline_w:.3g} W subtracted")
        txt = "; ".join(notes) or None
        power = energy / dur if dur > 0 else None
        per_sample_mj = energy * 1000.0 / window.samples if window.samples > 0 else None
        return {
            "power_w": Measurement("power_w", power, "W", self.source, note=txt, extra=dict(extra)),
            "energy_mj": Measurement("energy_mj", per_sample_mj, "mJ", self.source, note=txt, extra=dict(extra)),
        }


class UnavailableEnergyMeter(EnergyMeter):
    """Stands in where no sensor and no estimate exists: both values unavailable, with the reason."""

    source = "unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def begin(self) -> None:
        self._mark_begin()

    def end(self) -> None:
        self._mark_end()

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        return None, self.reason, {}


class Sampler:
    """Calls ``fn`` about ``hz`` times a second in a daemon thread and keeps ``(t, value)`` pairs.

    Errors raised by ``fn`` stop the sampling; the first one is kept in :attr:`error`.
    """

    def __init__(self, fn: Callable[[], Any], hz: float, clock: Callable[[], float] = time.perf_counter) -> None:
        if hz <= 0:
            raise ValueError("hz must be positive")
        self.fn = fn
        self.interval = 1.0 / hz
        self.clock = clock
        self.times: list[float] = []
        self.values: list[Any] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            v = self.fn()
        except Exception as e:  # noqa: BLE001 - a sensor error ends sampling, it is reported
            self.error = e
            self._stop.set()
            return
        self.times.append(self.clock())
        self.values.append(v)

    def _run(self) -> None:
        # start() took the first sample synchronously: wait one interval before the next
        nxt = self.clock() + self.interval
        while not self._stop.wait(max(0.0, nxt - self.clock())):
            self._sample()
            nxt += self.interval
            if nxt < self.clock():  # fell behind (slow sensor call): do not burst to catch up
                nxt = self.clock()

    def start(self) -> None:
        self.times, self.values, self.error = [], [], None
        self._stop.clear()
        self._sample()  # one sample at the window's start, synchronously
        self._thread = threading.Thread(target=self._run, name="hwtune-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.error is None:
            self._sample()  # one at the window's end

    @property
    def rate_hz(self) -> float:
        """Achieved sampling rate."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class MeterGroup:
    """Meters that share one window: begun in order, ended in reverse order.

    A meter that raises while beginning or ending does not spoil the others: its values come out
    unavailable with the error as the reason.
    """

    def __init__(self, meters: Sequence[Meter]) -> None:
        self.meters = list(meters)
        self.failed: dict[int, str] = {}
        self._t0 = 0.0
        self.duration_s = 0.0

    def begin(self) -> None:
        self.failed = {}
        for i, m in enumerate(self.meters):
            try:
                m.begin()
            except Exception as e:  # noqa: BLE001
                self.failed[i] = f"{type(m).__name__} failed to begin: {e}"
        self._t0 = time.perf_counter()

    def end(self) -> None:
        self.duration_s = time.perf_counter() - self._t0
        for i, m in reversed(list(enumerate(self.meters))):
            if i in self.failed:
                continue
            try:
                m.end()
            except Exception as e:  # noqa: BLE001
                self.failed[i] = f"{type(m).__name__} failed to end: {e}"

    @contextlib.contextmanager
    def window(self) -> Iterator["MeterGroup"]:
        self.begin()
        try:
            yield self
        finally:
            self.end()

    def measurements(self, window: Window) -> dict[str, Measurement]:
        out: dict[str, Measurement] = {}
        for i, m in enumerate(self.meters):
            if i in self.failed:
                if isinstance(m, EnergyMeter):
                    out["power_w"] = unavailable("power_w", "W", self.failed[i])
                    out["energy_mj"] = unavailable("energy_mj", "mJ", self.failed[i])
                continue
            try:
                out.update(m.measurements(window))
            except Exception as e:  # noqa: BLE001
                logger.warning("%s could not produce measurements: %s", type(m).__name__, e)
        return out

    def states(self) -> list[DeviceState]:
        out = []
        for i, m in enumerate(self.meters):
            if i not in self.failed:
                s = m.state()
                if s is not None:
                    out.append(s)
        return out
