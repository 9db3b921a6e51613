"""The NAS-Bench-201 cell as a search space, and what its graph says without training.

Shared by the cost models (``hwtune.costmodel``: derived features) and the search (``hwtune.search``:
features of the bench's model family), so that both read the same cell structure.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from hwtune.space import CategoricalParam, SearchSpace
from hwtune.tabular._nb201 import NB201_EDGES, NB201_OPS

__all__ = ["nb201_space", "nb201_cell_structure", "NB201_EDGE_NODES"]

NB201_EDGE_NODES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""(from node, to node) of each edge, in the order of :data:`NB201_EDGES` (topological by target)."""


def nb201_space() -> SearchSpace:
    """The NB201 cell as a search space: six categorical edges, each one of five operations (architecture)."""
    return SearchSpace({e: CategoricalParam(role="architecture", choices=NB201_OPS) for e in NB201_EDGES})


def nb201_cell_structure(params: Mapping[str, Any]) -> dict[str, float]:
    """Structure of a cell ``{edge name: operation}``: per operation (not ``none``), how many edges use
    it (``n_<op>``) and how many of those lie on a path from the cell input to its output
    (``alive_<op>``); ``connected`` (1 when the output depends on the input); ``depth`` (most
    convolutions and poolings on one input-output path)."""
    ops = tuple(str(params[e]) for e in NB201_EDGES)
    for e, o in zip(NB201_EDGES, ops):
        if o not in NB201_OPS:
            raise ValueError(f"{e}: unknown operation {o!r}; known: {NB201_OPS}")
    return dict(_structure(ops))


@lru_cache(maxsize=None)
def _structure(ops: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    real = [o != "none" for o in ops]
    fed = [True, False, False, False]  # reachable from the input (node 0)
    for (i, j), r in zip(NB201_EDGE_NODES, real):
        if r and fed[i]:
            fed[j] = True
    drains = [False, False, False, True]  # reaches the output (node 3)
    for (i, j), r in reversed(list(zip(NB201_EDGE_NODES, real))):
        if r and drains[j]:
            drains[i] = True
    alive = [r and fed[i] and drains[j] for (i, j), r in zip(NB201_EDGE_NODES, real)]
    out: dict[str, float] = {}
    for op in NB201_OPS[1:]:
        out[f"n_{op}"] = float(sum(o == op for o in ops))
        out[f"alive_{op}"] = float(sum(o == op and a for o, a in zip(ops, alive)))
    out["connected"] = float(any(alive))
    depth = [0.0, float("-inf"), float("-inf"), float("-inf")]
    for (i, j), o, a in zip(NB201_EDGE_NODES, ops, alive):
        if a:
            depth[j] = max(depth[j], depth[i] + (o != "skip_connect"))
    out["depth"] = depth[3] if depth[3] != float("-inf") else 0.0
    return tuple(out.items())
