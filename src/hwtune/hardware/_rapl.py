"""CPU energy from Linux powercap / RAPL (Intel, and AMD Zen through the same ``intel-rapl`` driver).

Each zone has a monotonically increasing ``energy_uj`` counter that wraps around at
``max_energy_range_uj``. The meter reads every zone at the window's ends and once a second in
between (so that even a counter that wraps within minutes is never missed twice), and adds up the
deltas with wrap-around handled.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from hwtune.hardware._meters import EnergyMeter, Sampler

__all__ = [
    "POWERCAP_ROOT",
    "RaplZone",
    "find_rapl_zones",
    "rapl_zones",
    "counter_delta",
    "accumulate_counter",
    "RaplEnergyMeter",
]

POWERCAP_ROOT = Path("/sys/class/powercap")
_ZONE_DIR = re.compile(r"^(intel-rapl|amd-rapl)((?::\d+)+)$")  # not intel-rapl-mmio: it duplicates package-N


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone whose energy counter hwtune reads.

    Attributes:
        path: the zone's directory (``/sys/class/powercap/intel-rapl:0``).
        name: the zone's name (``package-0``, ``dram``, ``psys``).
        max_range_uj: value at which ``energy_uj`` wraps around.
    """

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def counter_delta(begin: int, end: int, max_range: int) -> int:
    """Increase of a wrapping counter from ``begin`` to ``end`` (at most one wrap in between).

    When ``end < begin`` the counter passed ``max_range`` and restarted from 0, so the increase is
    ``max_range - begin + end`` (exact to one counter unit, which is a few microjoules).
    """
    if max_range <= 0:
        raise ValueError(f"max_range must be positive, got {max_range}")
    if end >= begin:
        return end - begin
    return max_range - begin + end


def accumulate_counter(readings: Sequence[int], max_range: int) -> int:
    """Total increase over successive readings of a wrapping counter (each gap: at most one wrap)."""
    return sum(counter_delta(a, b, max_range) for a, b in zip(readings, readings[1:]))


def find_rapl_zones(root: Path | str = POWERCAP_ROOT) -> tuple[list[RaplZone], str | None]:
    """The zones whose energies add up to the CPU's: every ``package-N`` plus ``dram`` sub-zones.

    A platform-wide ``psys`` zone is used alone when there is no package zone. Returns the zones and
    ``None``, or ``[]`` and the reason no zone can be read (missing interface, permissions).
    """
    root = Path(root)
    if not root.is_dir():
        return [], f"no {root} on this system: no powercap interface (not Linux, or a virtual machine or container without RAPL)"
    top: list[RaplZone] = []
    subs: list[RaplZone] = []
    for d in sorted(root.iterdir()):
        m = _ZONE_DIR.match(d.name)
        if not m or not (d / "energy_uj").exists():
            continue
        try:
            name = (d / "name").read_text().strip()
            max_range = int((d / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue
        zone = RaplZone(d, name, max_range)
        (top if m.group(2).count(":") == 1 else subs).append(zone)
    packages = [z for z in top if z.name.startswith("package")]
    zones = packages + [z for z in subs if z.name == "dram"] if packages else [z for z in top if z.name == "psys"]
    if not zones:
        return [], f"no RAPL zones under {root} (the intel_rapl driver is not loaded, or this CPU or virtual machine does not expose RAPL)"
    for z in zones:
        try:
            z.read_uj()
        except PermissionError:
            return [], (
                f"permission denied reading {z.path / 'energy_uj'}: since Linux 5.10 (CVE-2020-8694) "
                "RAPL counters are readable by root only. Fix: run as root, or "
                f"`sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj` (until reboot)"
            )
        except (OSError, ValueError) as e:
            return [], f"cannot read {z.path / 'energy_uj'}: {e}"
    return zones, None


@lru_cache(maxsize=1)
def rapl_zones() -> tuple[tuple[RaplZone, ...], str | None]:
    """:func:`find_rapl_zones` on this machine, looked up once per process."""
    zones, reason = find_rapl_zones()
    return tuple(zones), reason


class RaplEnergyMeter(EnergyMeter):
    """CPU package (+ DRAM) energy over a window from RAPL counters.

    The counters cover the whole package: energy used by other processes in the window is included;
    the device state (CPU load of others) says how much of that there was.
    """

    name = "rapl"
    source = "measured:rapl"

    def __init__(self, zones: Sequence[RaplZone], poll_hz: float = 1.0, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(clock)
        if not zones:
            raise ValueError("RaplEnergyMeter needs at least one zone")
        self.zones = list(zones)
        self._sampler = Sampler(self._read_all, poll_hz, clock=clock)

    def _read_all(self) -> tuple[int, ...]:
        return tuple(z.read_uj() for z in self.zones)

    def begin(self) -> None:
        self._sampler.start()
        self._mark_begin()

    def end(self) -> None:
        self._mark_end()
        self._sampler.stop()

    @property
    def duration_s(self) -> float:
        t = self._sampler.times
        return t[-1] - t[0] if len(t) >= 2 else super().duration_s

    def energy_j(self) -> tuple[float | None, str | None, dict[str, Any]]:
        if self._sampler.error is not None:
            return None, f"RAPL read failed: {self._sampler.error}", {}
        readings = self._sampler.values
        if len(readings) < 2:
            return None, "fewer than two RAPL readings in the window", {}
        per_zone: dict[str, float] = {}
        total_uj = 0
        for i, z in enumerate(self.zones):
            uj = accumulate_counter([r[i] for r in readings], z.max_range_uj)
            per_zone[f"{z.path.name}:{z.name}"] = round(uj / 1e6, 6)
            total_uj += uj
        extra = {"zones_j": per_zone, "readings": len(readings)}
        return total_uj / 1e6, "whole CPU package(s): includes other processes' energy in the window", extra
