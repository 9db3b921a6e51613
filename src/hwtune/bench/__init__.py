"""Whole searches on tabulated benchmarks through the real study loop (like Syne Tune's simulator
backend): training and measuring are table look-ups, so a whole search takes seconds.

``hwtune bench`` (:mod:`hwtune.bench._bench_cli`, imported only by the CLI) compares hwtune's sampler
with random search and Optuna's samplers on NAS-Bench-201. ``bench`` sits above ``study``: nothing
below it imports it.
"""

from __future__ import annotations

from hwtune.bench._bench import (
    CHEAPEST_METHODS,
    CHECKPOINTS,
    CONSTRAINED_METHODS,
    EXTRA_METHODS,
    PARETO_METHODS,
    BenchResult,
    MethodResult,
    RunResult,
    regret_svg,
    run_bench,
    run_method,
)
from hwtune.bench._nb201_problem import NB201Problem, SimulatedNB201, nb201_cell_features, nb201_search_space

__all__ = [
    "run_bench",
    "run_method",
    "regret_svg",
    "BenchResult",
    "MethodResult",
    "RunResult",
    "CONSTRAINED_METHODS",
    "CHEAPEST_METHODS",
    "PARETO_METHODS",
    "EXTRA_METHODS",
    "CHECKPOINTS",
    "NB201Problem",
    "SimulatedNB201",
    "nb201_cell_features",
    "nb201_search_space",
]
