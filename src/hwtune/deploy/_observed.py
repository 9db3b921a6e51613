"""The latencies the selector observes itself: a moving percentile per model, and the slowdown.

Every request adds the latency observed for the model that served it. Two estimates come out:

- **A model's own moving percentile**: the policy's percentile of its last ``size`` observed
  latencies (as ratios to its stored latency, so that requests of several batch sizes mix), none
  older than ``max_age_s``, once there are ``min_samples`` of them. For the model
  that serves, this is what its latency is now; for one that served a little while ago, what it was
  then (it ages out after ``max_age_s``, so a model left because the machine was busy is tried again
  only once that evidence is gone).
- **The slowdown** over the last ``size`` requests (whichever model served them), in two parts: the
  *factor*, the median of ``observed / stored`` (a busy core runs every model's arithmetic slower by
  about the same factor), and the *wait*, the policy's percentile of what is left,
  ``observed - stored x factor`` in ms (the time a request waits for the core, which does not grow
  with the model: measured here, a 0.2 ms and a 1.5 ms model both saw 4-12 ms scheduler waits at their
  p99 under a competing process). A model without fresh observations of its own is predicted as the
  less of two readings of the same requests: proportional, ``stored x`` the percentile of
  ``observed / stored``, and additive, ``stored x factor + wait``. A busy machine raises both and the
  selector moves down the front; a quiet one lowers them and it moves back up. Neither reading alone
  fits a real machine: scaling by the percentile turns a small model's scheduler wait into a many-fold
  slowdown of every larger one (the selector then stays at the bottom of the front while the machine
  is merely noisy), and adding a large model's waits to a small one ignores that a short request is
  rarely preempted (the selector then drops to the fastest model at every contention). The less of the
  two is the optimistic reading; the serving model's own requests then decide whether it really fits
  (``_policy``'s miss test), and a model that had to be left is held out for a while.

The stored latency is per batch of the size it was measured at; a request of a larger batch is
expected to take ``batch / stored batch`` times as long (a smaller one: as long, an overestimate), and
the ratio is taken against that, so the window corrects the rough batch scaling as it does the load.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

__all__ = ["LatencyTracker", "Slowdown"]


@dataclass(frozen=True)
class Slowdown:
    """How the stored latencies translate into latencies now: ``stored x factor + wait_ms``."""

    factor: float
    wait_ms: float
    samples: int
    source: str
    """``observed`` (the window) or ``prior`` (too few samples yet: factor 1, no wait)."""
    ratio: float = 1.0
    """The percentile of observed / stored itself (the proportional reading)."""

    def apply(self, stored_ms: float) -> float:
        """The more favourable of the two readings: ``stored x ratio`` and ``stored x factor + wait``."""
        return min(stored_ms * self.ratio, stored_ms * self.factor + self.wait_ms)

    def describe(self) -> str:
        if self.source == "prior":
            return "stored latencies as they are (too few requests observed yet)"
        return (f"stored x {self.ratio:.3g}, or stored x {self.factor:.3g} + {self.wait_ms:.3g} ms, whichever is less "
                f"(percentile ratio; median ratio and wait; over the last {self.samples} requests)")


def quantile(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between order statistics (NumPy's default), of a sorted list."""
    pos = (len(sorted_vals) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


class _Window:
    """The newest ``size`` (time, value, payload) no older than ``max_age_s``; values kept sorted too
    (O(size) per add, in C)."""

    def __init__(self, size: int, max_age_s: float) -> None:
        self.size, self.max_age_s = size, max_age_s
        self.order: deque[tuple[float, float, tuple[float, float]]] = deque()
        self.sorted: list[float] = []

    def expire(self, now: float) -> None:
        while self.order and (len(self.order) > self.size or now - self.order[0][0] > self.max_age_s):
            _, v, _ = self.order.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, v)]

    def add(self, now: float, v: float, payload: tuple[float, float] = (0.0, 0.0)) -> None:
        self.order.append((now, v, payload))
        bisect.insort(self.sorted, v)
        self.expire(now)


class LatencyTracker:
    """Observed latencies: per model, and as observed / stored ratios of recent requests.

    Args:
        size: requests kept (per model, and in the ratio window).
        max_age_s: older observations are dropped.
        min_samples: fewer fresh samples than this: no estimate (the stored latency is used).
    """

    def __init__(self, size: int = 200, max_age_s: float = 10.0, min_samples: int = 20) -> None:
        if size < 1 or min_samples < 1 or not max_age_s > 0:
            raise ValueError("size and min_samples must be >= 1 and max_age_s > 0")
        self.size, self.max_age_s, self.min_samples = size, max_age_s, min(min_samples, size)
        self._ratios = _Window(size, max_age_s)
        self._own: dict[int, _Window] = {}

    def add(self, now: float, model: int, observed_ms: float, expected_ms: float) -> None:
        """One request's observed latency (ms) served by ``model``, whose stored latency scaled to
        the request's batch is ``expected_ms``."""
        if not (math.isfinite(observed_ms) and observed_ms >= 0 and expected_ms > 0):
            return
        r = observed_ms / expected_ms
        self._ratios.add(now, r, (observed_ms, expected_ms))
        self._own.setdefault(model, _Window(self.size, self.max_age_s)).add(now, r)

    def slowdown(self, now: float, percentile: float) -> Slowdown:
        """Median ratio and the ``percentile`` (%) of the wait over the fresh requests (the prior,
        factor 1 and no wait, with too few of them)."""
        w = self._ratios
        w.expire(now)
        n = len(w.sorted)
        if n < self.min_samples:
            return Slowdown(1.0, 0.0, n, "prior")
        factor = quantile(w.sorted, 0.5)
        waits = sorted(obs - exp * factor for _, _, (obs, exp) in w.order)
        return Slowdown(factor, max(0.0, quantile(waits, percentile / 100.0)), n, "observed", quantile(w.sorted, percentile / 100.0))

    def own(self, now: float, model: int, percentile: float) -> tuple[float, int] | None:
        """``model``'s own moving ``percentile`` of observed / stored latency and its sample count, or
        ``None`` with too few fresh samples."""
        w = self._own.get(model)
        if w is None:
            return None
        w.expire(now)
        if len(w.sorted) < self.min_samples:
            return None
        return quantile(w.sorted, percentile / 100.0), len(w.sorted)

    def over(self, now: float, model: int, ratio: float) -> tuple[int, int]:
        """How many of ``model``'s fresh observations exceed ``ratio`` x stored, and how many there are."""
        w = self._own.get(model)
        if w is None:
            return 0, 0
        w.expire(now)
        return len(w.sorted) - bisect.bisect_right(w.sorted, ratio), len(w.sorted)

    def over_since(self, now: float, model: int, ratio: float, span_s: float) -> tuple[int, int]:
        """How many of ``model``'s observations of the last ``span_s`` seconds exceed ``ratio`` x
        stored, and how many there are."""
        w = self._own.get(model)
        if w is None:
            return 0, 0
        w.expire(now)
        over = n = 0
        for t, v, _ in reversed(w.order):  # newest first: stop at the first one older than the span
            if now - t > span_s:
                break
            over, n = over + (v > ratio), n + 1
        return over, n

    def streak_over(self, now: float, model: int, ratio: float) -> tuple[int, float]:
        """How many of ``model``'s newest fresh observations, in a row, exceed ``ratio`` x stored, and
        the seconds from the first of them to ``now``."""
        w = self._own.get(model)
        if w is None:
            return 0, 0.0
        w.expire(now)
        k, first = 0, now
        for t, v, _ in reversed(w.order):
            if v <= ratio:
                break
            k, first = k + 1, t
        return k, now - first

    def counts(self, now: float) -> dict[int, int]:
        """Fresh samples per model."""
        out = {}
        for m, w in self._own.items():
            w.expire(now)
            if w.sorted:
                out[m] = len(w.sorted)
        return out
