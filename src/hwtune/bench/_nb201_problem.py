"""NB201 as a benchmark problem: the search space, exact optima, and the simulated backend.

The simulated backend gives a :class:`hwtune.Study` the three callables of a real run:

- ``build_model(params)``: the architecture's row in the table (nothing is built);
- ``measure(model, params)``: a :class:`HardwareReport` whose ``latency_ms`` is the table's latency on the
  chosen device, labelled ``measured:<device> (HELP)`` (cost 0, but counted);
- ``train_and_evaluate(model, params, ctx)``: ``{"error": 1 - accuracy / 100}`` from the table's
  published NATS-Bench accuracy (cost 1: one trained network).

So the bench exercises the real study loop (proposal, measure-before-train gating, storage, records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.tabular import NB201_EDGES, NB201_OPS, load_nb201, nb201_cell_structure, nb201_space
from hwtune.tabular._nb201 import ACCURACY_COLUMNS

__all__ = ["NB201Problem", "SimulatedNB201", "nb201_search_space", "nb201_cell_features"]


nb201_search_space = nb201_space
"""The six edges of the NB201 cell, each one of five operations (architecture params)."""


@dataclass
class NB201Problem:
    """One tabulated problem: an accuracy column, a latency column and (optionally) a latency limit.

    Args:
        task: ``cifar10``, ``cifar100`` or ``imagenet16``.
        device: a latency column of the table (``pixel3``, ``fpga``, ``titanxp_1``...).
        limit_ms: latency limit in ms, or
        quantile: the limit as this quantile of the device's latencies over the whole space.
        max_error: error bound (fraction) for the cheapest-latency mode, or
        error_quantile: the bound as this quantile of the task's errors (0.05: the best 5 %).
    """

    task: str = "cifar10"
    device: str = "pixel3"
    limit_ms: float | None = None
    quantile: float | None = None
    max_error: float | None = None
    error_quantile: float | None = None
    table: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        t = self.table if self.table is not None else load_nb201()
        self.table = t
        if self.task not in ACCURACY_COLUMNS:
            raise ConfigError("task", f"unknown task {self.task!r}.", f"use one of {', '.join(ACCURACY_COLUMNS)}.")
        if self.device not in t.latency:
            raise ConfigError("device", f"unknown device {self.device!r}.", f"use one of {', '.join(t.devices)}.")
        self.acc = t.accuracy[self.task]
        self.err = 1.0 - self.acc / 100.0
        self.lat = t.latency[self.device]
        if self.limit_ms is not None and self.quantile is not None:
            raise ConfigError("limit", "give either a limit in ms or a quantile, not both.")
        if self.quantile is not None:
            if not (0.0 < self.quantile <= 1.0):
                raise ConfigError("quantile", f"must be in (0, 1], got {self.quantile}.")
            self.limit = float(np.quantile(self.lat, self.quantile))
        else:
            self.limit = float(self.limit_ms) if self.limit_ms is not None else None  # type: ignore[assignment]
        if self.max_error is not None and self.error_quantile is not None:
            raise ConfigError("error bound", "give either max_error or error_quantile, not both.")
        if self.error_quantile is not None:
            self.error_bound: float | None = float(np.quantile(self.err, self.error_quantile))
        else:
            self.error_bound = self.max_error
        self.space = nb201_search_space()
        self._rows = {tuple(int(c) for c in r): i for i, r in enumerate(t.ops)}

    # -- exact answers ---------------------------------------------------------------------------------
    @property
    def feasible(self) -> np.ndarray:
        return self.lat <= self.limit if self.limit is not None else np.ones(len(self.lat), dtype=bool)

    @property
    def best_feasible_accuracy(self) -> float:
        f = self.feasible
        if not f.any():
            raise ConfigError("limit", f"no architecture has latency <= {self.limit} ms on {self.device}.", "raise the limit.")
        return float(self.acc[f].max())

    @property
    def cheapest_feasible_latency(self) -> float:
        """Lowest latency among architectures with error within the bound (cheapest-latency mode)."""
        assert self.error_bound is not None
        ok = self.err <= self.error_bound
        return float(self.lat[ok].min())

    def describe(self) -> str:
        parts = [f"nb201 {self.task} on {self.device}"]
        if self.limit is not None:
            q = f" ({self.quantile:.0%} quantile)" if self.quantile is not None else ""
            parts.append(f"latency_ms <= {self.limit:.4g}{q}")
        if self.error_bound is not None:
            parts.append(f"error <= {self.error_bound:.4g}")
        return ", ".join(parts)

    # -- rows -----------------------------------------------------------------------------------------
    def row(self, params: Mapping[str, Any]) -> int:
        return self._rows[tuple(NB201_OPS.index(params[e]) for e in NB201_EDGES)]

    def params_of(self, row: int) -> dict[str, str]:
        return {e: NB201_OPS[int(c)] for e, c in zip(NB201_EDGES, self.table.ops[row])}


class SimulatedNB201:
    """The three callables of a study, answered from the table, with counters.

    Args:
        problem: the problem.
        measure_first: measure before training (the study loop's gating); when False the measurement
            is made after training (the "unaware" / "learned constraint" baselines): ``measure``
            returns an empty report and ``train_and_evaluate`` also returns ``latency_ms``.
    """

    def __init__(self, problem: NB201Problem, *, measure_first: bool = True) -> None:
        self.problem = problem
        self.measure_first = measure_first
        self.measured: set[int] = set()
        self.n_measurements = 0
        self.trained_rows: list[int] = []

    def build_model(self, params: dict[str, Any]) -> int:
        return self.problem.row(params)

    def _measure_row(self, row: int) -> float:
        self.n_measurements += 1
        self.measured.add(row)
        return float(self.problem.lat[row])

    def measure(self, model: int, params: dict[str, Any]) -> Any:
        from hwtune.hardware import HardwareReport, Measurement

        if not self.measure_first:
            return HardwareReport({})
        v = self._measure_row(model)
        src = f"measured:{self.problem.device} (HELP)"
        return HardwareReport({"latency_ms": Measurement("latency_ms", v, "ms", src)}, device={"name": self.problem.device, "source": "HELP table"})

    def train_and_evaluate(self, model: int, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        self.trained_rows.append(model)
        out = {"error": float(self.problem.err[model])}
        if not self.measure_first:
            lat = float(self.problem.lat[model]) if model in self.measured else self._measure_row(model)
            out["latency_ms"] = lat
        return out


def nb201_cell_features(params: Mapping[str, Any]) -> dict[str, float]:
    """Features of an NB201 cell known without training (for ``HwSampler(features=...)``): per
    operation, how many edges use it and how many of those lie on an input-output path; whether the
    cell is connected; the longest path in convolutions/poolings (:func:`hwtune.tabular.nb201_cell_structure`)."""
    return nb201_cell_structure(params)
