"""NAS-Bench-201 helpers: the search space of a cell and features computed from it without training."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from hwtune.tabular import NB201_EDGES, NB201_OPS, NB201Table, nb201_cell_structure, nb201_space

__all__ = ["nb201_space", "nb201_params", "nb201_derived", "nb201_derived_full", "NB201_DERIVED_KEYS", "NB201_DERIVED_FULL_KEYS"]

# CIFAR network of NAS-Bench-201: 3 stages of 5 cells, (channels, feature-map side) per stage
_STAGES: tuple[tuple[int, int], ...] = ((16, 32), (32, 16), (64, 8))
_CELLS_PER_STAGE = 5
_OPS_SHORT = {"nor_conv_3x3": "conv3", "nor_conv_1x1": "conv1", "avg_pool_3x3": "pool", "skip_connect": "skip"}

NB201_DERIVED_FULL_KEYS: tuple[str, ...] = (
    "mflops", "mparams", "act_mb",
    "n_conv3", "n_conv1", "n_pool", "n_skip",
    "alive_conv3", "alive_conv1", "alive_pool", "alive_skip",
    "connected", "depth",
)
"""Names returned by :func:`nb201_derived_full`."""

NB201_DERIVED_KEYS: tuple[str, ...] = ("mflops", "mparams", "n_conv3", "n_conv1", "n_pool", "n_skip")
"""Names returned by :func:`nb201_derived`: FLOPs, parameters and layer counts by type."""


def nb201_params(table: NB201Table, rows: Sequence[int] | np.ndarray | None = None) -> list[dict[str, str]]:
    """Param dicts ``{edge: op}`` of table rows (all rows by default)."""
    codes = table.ops if rows is None else table.ops[np.asarray(rows, dtype=int)]
    return [{e: NB201_OPS[int(c)] for e, c in zip(NB201_EDGES, r)} for r in codes]


def nb201_derived(params: Mapping[str, Any]) -> dict[str, float]:
    """FLOPs (millions), parameters (millions) and the number of edges of each operation type.

    The compact set used by the cost models: on the NB201 table a model on these few features is
    more accurate from 10-50 measurements than one on richer sets (docs/benchmarks.md).

    Args:
        params: ``{edge name: operation}`` for the six :data:`hwtune.tabular.NB201_EDGES`.
    """
    full = nb201_derived_full(params)
    return {k: full[k] for k in NB201_DERIVED_KEYS}


def nb201_derived_full(params: Mapping[str, Any]) -> dict[str, float]:
    """Features of an NB201 cell network (CIFAR-10 size, 32x32 input) known without training.

    Counts over all six edges (``n_*``) and over the edges that reach the output (``alive_*``);
    ``connected`` (1 when the cell output depends on its input); ``depth`` (most convolutions and
    poolings on one input-output path); whole-network multiply-adds x 2 in millions (``mflops``),
    parameters in millions (``mparams``) and activation megabytes written per sample by the cells'
    operations (``act_mb``), all counting every non-zero operation as PyTorch executes it.

    Args:
        params: ``{edge name: operation}`` for the six :data:`hwtune.tabular.NB201_EDGES`.
    """
    ops = [str(params[e]) for e in NB201_EDGES]
    cell = nb201_cell_structure(params)  # validates the operations
    out: dict[str, float] = {}
    for op, short in _OPS_SHORT.items():
        out[f"n_{short}"] = cell[f"n_{op}"]
        out[f"alive_{short}"] = cell[f"alive_{op}"]
    out["connected"] = cell["connected"]
    out["depth"] = cell["depth"]
    # whole network: stem, 3 stages of cells, 2 residual reduction blocks, classifier
    macs = 9 * 3 * 16 * 32 * 32
    n_params = 9 * 3 * 16 + 2 * 16
    act = 0.0
    for s, (c, hw) in enumerate(_STAGES):
        px = hw * hw
        cell_macs = out["n_conv3"] * 9 * c * c * px + out["n_conv1"] * c * c * px + out["n_pool"] * 9 * c * px
        cell_params = out["n_conv3"] * (9 * c * c + 2 * c) + out["n_conv1"] * (c * c + 2 * c)
        n_real = sum(o != "none" for o in ops)
        macs += _CELLS_PER_STAGE * cell_macs
        n_params += _CELLS_PER_STAGE * cell_params
        act += _CELLS_PER_STAGE * n_real * c * px * 4 / 1e6
        if s > 0:  # reduction block into this stage
            cin = _STAGES[s - 1][0]
            macs += 9 * cin * c * px + 9 * c * c * px + cin * c * px
            n_params += 9 * cin * c + 9 * c * c + cin * c + 4 * c
    macs += 64 * 10
    n_params += 64 * 10 + 10
    out["mflops"] = 2.0 * macs / 1e6
    out["mparams"] = n_params / 1e6
    out["act_mb"] = act
    return {k: out[k] for k in NB201_DERIVED_FULL_KEYS}
