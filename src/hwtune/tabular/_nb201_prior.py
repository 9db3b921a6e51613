"""Published NB201 accuracies as prior knowledge of a cell's error on another task.

A cell that is accurate on CIFAR-100 is nearly always accurate on CIFAR-10 and ImageNet16-120 too
(NATS-Bench's own observation; in the shipped table the rank correlation of the three tasks' accuracies
is 0.9+). A search over the NB201 cell on a new task therefore starts from a useful guess: the
published errors of the same cell on other tasks. :func:`nb201_error_prior` returns them as features
``params -> {"published_error_<task>": log(error)}`` for the sampler's error surrogate
(``HwSampler(error_prior=...)``), which learns from the study's own trained networks how far to trust
them (a kernel block of its own: a prior the data contradicts gets a long lengthscale, i.e. no weight).

The values are measurements of other people (``published:NATS-Bench``, see PROVENANCE.md); they
enter the sampler's ranking only and are never reported as a trial's error.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from hwtune.tabular._nb201 import ACCURACY_COLUMNS, NB201_EDGES, NB201_OPS, load_nb201

__all__ = ["nb201_error_prior", "NB201ErrorPrior", "NB201_TASKS"]

NB201_TASKS: tuple[str, ...] = tuple(ACCURACY_COLUMNS)


class NB201ErrorPrior:
    """``params -> {"published_error_<task>": log(published error)}`` of an NB201 cell (picklable: the
    table is read on first use in each process).

    Attributes:
        names: the feature names; source: where the values come from.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.names = tuple(f"published_error_{t}" for t in self.tasks)
        self.source = "published:NATS-Bench (" + ", ".join(self.tasks) + ")"
        self._logerr: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_logerr": None}

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        table = load_nb201()
        if self._logerr is None:
            self._logerr = {t: np.log(np.maximum(1.0 - table.accuracy[t] / 100.0, 1e-3)) for t in self.tasks}
        r = table._row_by_code[tuple(_CODE[str(params.get(e, MISSING_EDGE))] for e in NB201_EDGES)]
        return {f"published_error_{t}": float(v[r]) for t, v in self._logerr.items()}


_CODE = {o: i for i, o in enumerate(NB201_OPS)}
MISSING_EDGE = "nor_conv_3x3"
"""An edge a study leaves out is this operation (as the ``nb201`` model family builds it)."""


def nb201_error_prior(tasks: Sequence[str] | None = None, *, exclude: str | None = None) -> NB201ErrorPrior:
    """The published errors of a cell on ``tasks`` (default: all three) as prior features.

    Args:
        tasks: the published tasks to use.
        exclude: a task left out (the benchmark's own target: its column is the answer, not a prior).
    """
    use = [t for t in (tasks or NB201_TASKS) if t != exclude]
    unknown = [t for t in use if t not in ACCURACY_COLUMNS]
    if unknown or not use:
        raise ValueError(f"unknown or no NB201 tasks {unknown or use}; known: {', '.join(NB201_TASKS)}")
    return NB201ErrorPrior(use)


def _rank_agreement() -> dict[tuple[str, str], float]:
    """Spearman correlation of the published accuracies between tasks (the docstring's 0.9+)."""
    from scipy.stats import spearmanr

    t = load_nb201()
    out = {}
    for i, a in enumerate(NB201_TASKS):
        for b in NB201_TASKS[i + 1 :]:
            out[(a, b)] = float(spearmanr(t.accuracy[a], t.accuracy[b]).statistic)
    return out if all(math.isfinite(v) for v in out.values()) else {}
