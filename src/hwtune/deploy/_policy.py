"""What the application asks for (:class:`Policy`), what the device allows now (:class:`Budget`), and
the rule that picks a model of the front under both (:func:`choose`), with hysteresis.

Kept apart from the serving machinery so the rule can be computed by hand: a test states the
budget and the candidates and checks the pick, with no session, clock or sensor involved.

The rule, for candidates sorted by error:

1. A candidate *fits* with margin ``m`` when its predicted latency (at the policy's percentile) is at
   most ``(1 - m) x`` the latency SLA and its energy per inference at most ``(1 - m) x`` the energy
   cap (each only while that part of the budget is active). The serving model's latency fits (margin
   0) while its own requests over the SLA are no more than the percentile allows, by a binomial
   test at ``miss_confidence`` (99.9 %, :func:`allowed_misses`), once it has served enough of them: a
   model whose true share of misses is at the percentile is not left because a few slow requests
   happened to fall in the same window, while one that misses often is left within a few requests;
   optionally (``Hysteresis.miss_streak``, ``miss_scales_s``) also on a streak of misses or on its
   requests of the last seconds alone, so that a sudden slowdown is left within a few requests.
2. Among the fitting candidates, the preference ``p`` in [0, 1] sets an error tolerance: best error
   + ``p`` x (worst - best error among them); the fastest candidate within it is picked (``p = 0``:
   the most accurate that fits; ``p = 1``: the fastest that fits). Nothing fits: the fastest.
3. Hysteresis: while the serving model fits (margin 0) it is kept until the dwell is over; then a
   switch goes only to the pick among the models that fit *with* the margin and are not on hold
   (plus the serving one). A serving model that no longer fits is left at once, for the pick with
   margin 0 (no dwell: the SLA comes first).
4. Hold: a model left because it no longer fit is not chosen again for ``hold_s``; each time it must
   be left again within its hold after coming back, its hold doubles (up to ``max_hold_s``). This is
   what stops a model that fits on paper but not in practice from being retried every few seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["Budget", "Candidate", "Decision", "Hysteresis", "Modes", "Part", "Policy", "allowed_misses", "choose", "make_budget", "misfit", "update_modes"]


def _check(name: str, v: float | None, lo: float, hi: float, fix: str, *, open_low: bool = False) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo or v > hi or (open_low and v <= lo):
        rng = f"({lo:g}, {hi:g}]" if open_low else f"[{lo:g}, {hi:g}]"
        raise ConfigError(f"policy.{name}", f"must be a number in {rng}, got {v!r}.", fix)


@dataclass(frozen=True)
class Policy:
    """What the application asks of the selector; every part is optional.

    Attributes:
        latency_ms: latency SLA per request (one ``predict`` call), ms; ``None``: no SLA.
        latency_percentile: the share of requests (%) that must meet the SLA; the observed
            latencies are read at this percentile.
        energy_mj: cap on the energy per inference (mJ, the manifest's ``energy_mj``).
        preference: 0 = most accurate model that fits, 1 = fastest model that fits (see the module).
        low_battery_percent: on battery power at or below this charge, ``low_battery_preference``
            (and ``low_battery_energy_mj``) apply, until plugged in or ``battery_band`` % above it.
        hot_celsius: at or above this temperature (or while throttling), ``hot_preference``
            applies, until ``temperature_band_c`` below it; ``None``: the sensor's own "high"
            threshold where it reports one.
    """

    latency_ms: float | None = None
    latency_percentile: float = 99.0
    energy_mj: float | None = None
    preference: float = 0.0
    low_battery_percent: float = 20.0
    low_battery_preference: float = 1.0
    low_battery_energy_mj: float | None = None
    battery_band: float = 5.0
    hot_celsius: float | None = None
    hot_preference: float = 1.0
    temperature_band_c: float = 5.0

    def __post_init__(self) -> None:
        _check("latency_ms", self.latency_ms, 0, math.inf, "give the SLA in milliseconds, e.g. Policy(latency_ms=5).", open_low=True)
        _check("latency_percentile", self.latency_percentile, 50, 100, "use e.g. 99 (the p99 latency).")
        _check("energy_mj", self.energy_mj, 0, math.inf, "give the cap in millijoules per inference.", open_low=True)
        _check("low_battery_energy_mj", self.low_battery_energy_mj, 0, math.inf, "give the cap in millijoules per inference.", open_low=True)
        for name in ("preference", "low_battery_preference", "hot_preference"):
            _check(name, getattr(self, name), 0, 1, "0 = most accurate, 1 = fastest.")
        _check("low_battery_percent", self.low_battery_percent, 0, 100, "a charge in percent, e.g. 20.")
        _check("battery_band", self.battery_band, 0, 100, "a few percent, e.g. 5.")
        _check("hot_celsius", self.hot_celsius, -50, 200, "a temperature in °C, e.g. 85.")
        _check("temperature_band_c", self.temperature_band_c, 0, 100, "a few degrees, e.g. 5.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hysteresis:
    """Against flapping: a switch up (or sideways) needs the new model to fit within ``(1 - margin)``
    of the budget, and the serving model to have served ``dwell_requests`` requests and
    ``dwell_s`` seconds. Leaving a model that no longer fits waits for neither. A model left because
    it no longer fit is on hold for ``hold_s`` (doubling, up to ``max_hold_s``, each time it fails
    again within its hold after coming back); a new policy clears the holds."""

    margin: float = 0.1
    dwell_requests: int = 20
    dwell_s: float = 1.0
    hold_s: float = 5.0
    max_hold_s: float = 60.0
    miss_confidence: float = 0.999
    """How sure the selector must be that the serving model misses the latency SLA more often than
    the percentile allows before it leaves it (a binomial test on its own recent requests; 0: at the
    first miss)."""
    miss_streak: int = 0
    """Leave the serving model when this many of its newest requests in a row missed the SLA, over at
    least 50 ms (0, the default: never). A model that meets its percentile ``q`` does that by chance
    with probability ``(1 - q/100)^k`` per request (2.5e-5 for two at p99.5) if its misses are
    independent; a sudden slowdown (other processes take the core) shows within ``k`` requests, where
    the binomial test needs several misses in its window. Misses on a shared machine come in bursts,
    which is why it is off by default (docs/benchmarks.md: on MNIST it cost 1.5-2 accuracy points)."""
    miss_scales_s: tuple[float, ...] = ()
    """Also test the serving model's requests of the last few seconds alone (e.g. ``(0.5, 1, 2)``),
    the same binomial test on each (at least 10 requests): misses that began a moment ago are
    diluted in the whole window. Empty (the default): the whole window only."""
    hold_until_recovered: bool = False
    """Keep a model left by force on hold, after its hold, while the observed slowdown is still well
    above what it was when it was left (``_adaptive.HOLD_SLOWDOWN``, ``HOLD_TAIL``)."""

    def __post_init__(self) -> None:
        _check("hysteresis.margin", self.margin, 0, 0.9, "a share of the budget, e.g. 0.1.")
        _check("hysteresis.dwell_s", self.dwell_s, 0, math.inf, "seconds, e.g. 1.")
        _check("hysteresis.hold_s", self.hold_s, 0, math.inf, "seconds, e.g. 5.")
        _check("hysteresis.max_hold_s", self.max_hold_s, self.hold_s, math.inf, "seconds, at least hold_s, e.g. 60.")
        _check("hysteresis.miss_confidence", self.miss_confidence, 0, 0.999999, "a probability, e.g. 0.999.")
        if isinstance(self.dwell_requests, bool) or not isinstance(self.dwell_requests, int) or self.dwell_requests < 0:
            raise ConfigError("policy.hysteresis.dwell_requests", f"must be a non-negative integer, got {self.dwell_requests!r}.", "e.g. 20.")
        if isinstance(self.miss_streak, bool) or not isinstance(self.miss_streak, int) or self.miss_streak < 0:
            raise ConfigError("policy.hysteresis.miss_streak", f"must be a non-negative integer, got {self.miss_streak!r}.", "e.g. 2 (0: off).")
        if not isinstance(self.miss_scales_s, tuple) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < math.inf for x in self.miss_scales_s):
            raise ConfigError("policy.hysteresis.miss_scales_s", f"must be a tuple of positive seconds, got {self.miss_scales_s!r}.", "e.g. (0.5, 1.0, 2.0), or () for none.")


@dataclass(frozen=True)
class Modes:
    """The device modes that change the budget, latched with hysteresis: ``True``/``False``, or
    ``None`` when their sensors are missing (the mode is then inactive); ``why`` says why each is as it is."""

    low_battery: bool | None = None
    hot: bool | None = None
    why: Mapping[str, str] = field(default_factory=dict)


def _battery_mode(policy: Policy, readings: Mapping[str, Any], was: bool | None) -> tuple[bool | None, str]:
    pct, plugged = readings.get("battery_percent"), readings.get("power_plugged")
    if pct is None or pct.value is None:
        return None, f"inactive: battery level missing ({pct.missing if pct is not None else 'not read'})"
    if plugged is None or plugged.value is None:
        return None, f"inactive: power source missing ({plugged.missing if plugged is not None else 'not read'})"
    if plugged.value:
        return False, f"on mains power (battery {pct.value:.0f} %)"
    low, band = policy.low_battery_percent, policy.battery_band
    if pct.value <= low:
        return True, f"on battery at {pct.value:.0f} % <= {low:g} %"
    if was and pct.value < low + band:
        return True, f"on battery at {pct.value:.0f} %, not yet {low + band:g} % (hysteresis band)"
    return False, f"on battery at {pct.value:.0f} % > {low:g} %"


def _hot_mode(policy: Policy, readings: Mapping[str, Any], was: bool | None) -> tuple[bool | None, str]:
    temp, thr = readings.get("temperature_c"), readings.get("throttling")
    throttling = thr is not None and thr.value is True
    if throttling:
        return True, f"throttling ({thr.source})"  # type: ignore[union-attr]
    t = temp.value if temp is not None else None
    limit = policy.hot_celsius if policy.hot_celsius is not None else (temp.extra.get("high_c") if temp is not None and t is not None else None)
    if t is None or limit is None:
        parts = []
        if t is None:
            parts.append(f"temperature missing ({temp.missing if temp is not None else 'not read'})")
        elif limit is None:
            parts.append("no threshold (the sensor reports no 'high'; set Policy(hot_celsius=...))")
        if thr is None or thr.value is None:
            parts.append(f"throttling missing ({thr.missing if thr is not None else 'not read'})")
        else:
            return False, "not throttling; " + "; ".join(parts)
        return None, "inactive: " + "; ".join(parts)
    band = policy.temperature_band_c
    if t >= limit:
        return True, f"{t:.0f} °C >= {limit:g} °C"
    if was and t > limit - band:
        return True, f"{t:.0f} °C, not yet {limit - band:g} °C (hysteresis band)"
    return False, f"{t:.0f} °C < {limit:g} °C"


def update_modes(policy: Policy, readings: Mapping[str, Any], previous: Modes | None = None) -> Modes:
    """The device modes from the current readings (:class:`~hwtune.deploy._sensors.Reading` by name),
    keeping a mode on inside its hysteresis band."""
    prev = previous or Modes()
    low, why_low = _battery_mode(policy, readings, prev.low_battery)
    hot, why_hot = _hot_mode(policy, readings, prev.hot)
    return Modes(low, hot, {"low_battery": why_low, "hot": why_hot})


@dataclass(frozen=True)
class Part:
    """One part of the budget: whether it is active, its value, and why."""

    active: bool
    value: Any
    reason: str


@dataclass(frozen=True)
class Budget:
    """The limits in force now: the policy adjusted by the device's modes."""

    latency_ms: float | None
    percentile: float
    energy_mj: float | None
    preference: float
    parts: Mapping[str, Part]

    def to_dict(self) -> dict[str, Any]:
        return {k: asdict(p) for k, p in self.parts.items()}


def make_budget(policy: Policy, modes: Modes, *, have_latency: bool = True, have_energy: bool = True) -> Budget:
    """The budget now. ``have_latency`` / ``have_energy``: whether any model of the bundle has that
    cost (without one, that part of the policy is inactive, and says so)."""
    parts: dict[str, Part] = {}
    lat = policy.latency_ms
    if lat is None:
        parts["latency"] = Part(False, None, "no latency SLA in the policy")
    elif not have_latency:
        parts["latency"] = Part(False, lat, "inactive: no model of the bundle has a latency_ms")
        lat = None
    else:
        parts["latency"] = Part(True, lat, f"p{policy.latency_percentile:g} <= {lat:g} ms (policy)")
    caps = [(policy.energy_mj, "policy")]
    if modes.low_battery:
        caps.append((policy.low_battery_energy_mj, "low battery"))
    caps = [(c, src) for c, src in caps if c is not None]
    energy: float | None = None
    if not caps:
        parts["energy"] = Part(False, None, "no energy cap in the policy")
    elif not have_energy:
        parts["energy"] = Part(False, min(c for c, _ in caps), "inactive: no model of the bundle has an energy_mj")
    else:
        energy, src = min(caps)
        parts["energy"] = Part(True, energy, f"<= {energy:g} mJ per inference ({src})")
    pref, srcs = policy.preference, ["policy"]
    for on, value, name in ((modes.low_battery, policy.low_battery_preference, "low battery"), (modes.hot, policy.hot_preference, "hot")):
        if on and value > pref:
            pref, srcs = value, [name]
    parts["preference"] = Part(True, pref, f"{pref:g} ({', '.join(srcs)}; 0 = most accurate, 1 = fastest)")
    parts["low_battery"] = Part(modes.low_battery is not None, modes.low_battery, modes.why.get("low_battery", "not read"))
    parts["hot"] = Part(modes.hot is not None, modes.hot, modes.why.get("hot", "not read"))
    return Budget(lat, policy.latency_percentile, energy, pref, parts)


@dataclass(frozen=True)
class Candidate:
    """A model as :func:`choose` sees it: its rank, error, and costs (``None``: not measured)."""

    rank: int
    name: str
    error: float
    latency_ms: float | None
    """Stored latency: orders the models by speed."""
    predicted_ms: float | None
    """Latency now at the policy's percentile: the stored one scaled by what was observed."""
    energy_mj: float | None
    misses: tuple[int, int, int] | None = None
    """For the serving model: (requests over the SLA, requests observed, most the percentile allows
    among them); when given, it decides whether the model's latency fits (margin 0), not ``predicted_ms``."""
    streak: tuple[int, int] | None = None
    """For the serving model: (its newest requests over the SLA in a row, the streak that leaves it,
    ``Hysteresis.miss_streak``); a streak that long is a misfit whatever the other tests say."""


@dataclass(frozen=True)
class Decision:
    """The pick: ``kind`` is ``start``, ``stay``, ``forced`` (the serving model no longer fits) or ``better``."""

    rank: int
    kind: str
    reason: str


@functools.lru_cache(maxsize=4096)
def allowed_misses(n: int, share: float, confidence: float = 0.999) -> int:
    """The most requests over the SLA, of ``n``, that a model meeting it at ``1 - share`` shows with
    probability ``confidence``: the smallest k with P(Binomial(n, share) > k) < 1 - confidence."""
    if n <= 0 or share <= 0:
        return 0
    if share >= 1:
        return n
    log_q, log_p = math.log1p(-share), math.log(share)
    cdf, k = 0.0, 0
    log_pmf = n * log_q  # P(X = 0)
    while k <= n:
        cdf += math.exp(log_pmf)
        if cdf >= confidence:
            return k
        log_pmf += math.log(n - k) - math.log(k + 1) + log_p - log_q
        k += 1
    return n


def misfit(c: Candidate, b: Budget, margin: float = 0.0) -> str | None:
    """Why ``c`` does not fit ``b`` with ``margin``; ``None`` when it fits."""
    k = 1.0 - margin
    scale = f" x {k:g} (margin)" if margin else ""
    if b.latency_ms is not None:
        if c.streak is not None and c.streak[1] > 0 and c.streak[0] >= c.streak[1] and not margin:
            return f"its last {c.streak[0]} requests in a row over {b.latency_ms:g} ms (a streak of {c.streak[1]} leaves it)"
        if c.misses is not None and not margin:
            over, n, allowed = c.misses
            if over > allowed:
                return f"{over} of its last {n} requests over {b.latency_ms:g} ms (p{b.percentile:g} allows at most {allowed})"
        elif c.predicted_ms is None:
            return "no latency measured"
        elif c.predicted_ms > k * b.latency_ms:
            return f"predicted p{b.percentile:g} {c.predicted_ms:.3g} ms > {b.latency_ms:g} ms{scale}"
    if b.energy_mj is not None:
        if c.energy_mj is None:
            return "no energy measured"
        if c.energy_mj > k * b.energy_mj:
            return f"energy {c.energy_mj:.3g} mJ > {b.energy_mj:g} mJ{scale}"
    return None


def _speed(c: Candidate) -> float:
    return c.latency_ms if c.latency_ms is not None else math.inf


def pick(cands: Sequence[Candidate], preference: float) -> Candidate | None:
    """The preference's pick among ``cands`` (all assumed to fit): the fastest within the error tolerance."""
    if not cands:
        return None
    best, worst = min(c.error for c in cands), max(c.error for c in cands)
    tol = best + preference * (worst - best) + 1e-12
    return min((c for c in cands if c.error <= tol), key=lambda c: (_speed(c), c.error, c.rank))


def _fits_text(c: Candidate, b: Budget) -> str:
    bits = [f"error {c.error:.4g}"]
    if b.latency_ms is not None and c.misses is not None:
        bits.append(f"{c.misses[0]} of its last {c.misses[1]} requests over {b.latency_ms:g} ms (p{b.percentile:g} allows {c.misses[2]})")
    elif b.latency_ms is not None and c.predicted_ms is not None:
        bits.append(f"predicted p{b.percentile:g} {c.predicted_ms:.3g} ms <= {b.latency_ms:g} ms")
    if b.energy_mj is not None and c.energy_mj is not None:
        bits.append(f"energy {c.energy_mj:.3g} <= {b.energy_mj:g} mJ")
    if b.preference > 0:
        bits.append(f"preference {b.preference:g}")
    return ", ".join(bits)


def choose(cands: Sequence[Candidate], budget: Budget, current: int | None, *, margin: float = 0.0, dwell_over: bool = True,
           held: Mapping[int, str] | None = None) -> Decision:
    """The model to serve next (see the module for the rule).

    Args:
        cands: every model of the bundle, any order.
        current: rank of the serving model (``None`` before the first request).
        margin: the hysteresis margin for a switch that is not forced.
        dwell_over: whether the serving model has served its minimum dwell.
        held: ranks on hold (not chosen by a voluntary switch) -> why.
    """
    by_rank = {c.rank: c for c in cands}
    fitting = [c for c in cands if misfit(c, budget) is None]
    ideal = pick(fitting, budget.preference)
    if ideal is None:
        fastest = min(cands, key=lambda c: (c.predicted_ms if c.predicted_ms is not None else _speed(c), c.error, c.rank))
        why = "nothing fits (" + "; ".join(f"{c.name}: {misfit(c, budget)}" for c in sorted(cands, key=lambda c: c.rank)) + f"): the fastest, {fastest.name}"
        if current == fastest.rank:
            return Decision(current, "stay", why)
        return Decision(fastest.rank, "start" if current is None else "forced", why)
    if current is None:
        return Decision(ideal.rank, "start", f"{ideal.name} is the pick: {_fits_text(ideal, budget)}")
    cur = by_rank[current]
    over = misfit(cur, budget)
    held = held or {}
    if over is not None:  # the pick among what fits, a model on hold only when nothing else fits
        to = pick([c for c in fitting if c.rank not in held], budget.preference) or ideal
        return Decision(to.rank, "forced", f"{cur.name} no longer fits ({over}); {to.name} does: {_fits_text(to, budget)}")
    if not dwell_over:
        return Decision(current, "stay", f"{cur.name} fits ({_fits_text(cur, budget)}); minimum dwell not over")
    with_margin = [c for c in cands if c.rank == current or (misfit(c, budget, margin) is None and c.rank not in held)]
    target = pick(with_margin, budget.preference)
    if target is None or target.rank == current:
        if ideal.rank == current:
            why_not = ""
        elif ideal.rank in held and misfit(ideal, budget, margin) is None:
            why_not = f"; {ideal.name} would be the pick but is on hold ({held[ideal.rank]})"
        else:
            why_not = f"; {ideal.name} would be the pick but does not fit with the {margin:g} margin ({misfit(ideal, budget, margin)})"
        return Decision(current, "stay", f"{cur.name} fits ({_fits_text(cur, budget)}){why_not}")
    return Decision(target.rank, "better", f"{target.name} fits with the {margin:g} margin and is the pick: {_fits_text(target, budget)}")
