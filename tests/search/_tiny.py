"""A small tabulated problem (4 categorical params x 5 choices = 625 networks) for fast search tests.

Latency adds per-choice costs (bigger choices cost more); error falls with bigger choices, with an
interaction between the first two params and a deterministic pseudo-random part, so that the best
feasible network lies near the latency limit but is not trivially the most expensive one.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np

from hwtune.hardware import HardwareReport, Measurement
from hwtune.space import CategoricalParam, SearchSpace

CHOICES = ("none", "small", "medium", "large", "huge")
NAMES = ("a", "b", "c", "d")
COST = {"none": 0.1, "small": 0.6, "medium": 1.2, "large": 2.0, "huge": 3.1}
GAIN = {"none": 0.0, "small": 0.05, "medium": 0.08, "large": 0.10, "huge": 0.11}


def space() -> SearchSpace:
    return SearchSpace({n: CategoricalParam(role="architecture", choices=CHOICES) for n in NAMES})


def _jitter(cfg: tuple[str, ...]) -> float:
    return (zlib.crc32("|".join(cfg).encode()) % 1000) / 1000.0


class Tiny:
    """Table of all 625 networks and the three study callables, with counters."""

    def __init__(self, quantile: float = 0.3, measure_first: bool = True) -> None:
        self.configs = list(itertools.product(CHOICES, repeat=len(NAMES)))
        self.lat = np.array([sum(COST[c] for c in cfg) + 0.3 * (cfg[0] == cfg[1] != "none") for cfg in self.configs])
        err = []
        for cfg in self.configs:
            e = 0.5 - sum(GAIN[c] for c in cfg) - 0.04 * (cfg[0] == "large" and cfg[1] in ("small", "medium")) + 0.004 * _jitter(cfg)
            err.append(min(0.95, max(0.02, e)))
        self.err = np.array(err)
        self.limit = float(np.quantile(self.lat, quantile))
        self.index = {cfg: i for i, cfg in enumerate(self.configs)}
        self.measure_first = measure_first
        self.n_measurements = 0
        self.trained: list[int] = []
        self.proposed: list[int] = []

    @property
    def feasible(self) -> np.ndarray:
        return self.lat <= self.limit

    def best_feasible_error(self) -> float:
        return float(self.err[self.feasible].min())

    def row(self, params: dict[str, Any]) -> int:
        return self.index[tuple(params[n] for n in NAMES)]

    # -- study callables ---------------------------------------------------------------------------
    def build_model(self, params: dict[str, Any]) -> int:
        r = self.row(params)
        self.proposed.append(r)
        return r

    def measure(self, model: int, params: dict[str, Any]) -> HardwareReport:
        self.n_measurements += 1
        return HardwareReport({"latency_ms": Measurement("latency_ms", float(self.lat[model]), "ms", "measured:tiny")})

    def train_and_evaluate(self, model: int, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        self.trained.append(model)
        return {"error": float(self.err[model])}

    # -- scores --------------------------------------------------------------------------------------
    def regret(self) -> float:
        """Error regret of the best feasible trained network (1.0 when none)."""
        ok = [r for r in self.trained if self.feasible[r]]
        return float(min(self.err[ok]) - self.best_feasible_error()) if ok else 1.0
