"""The NAS-Bench-201 hardware table: published accuracies and latencies of 15,625 cells."""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["NB201_OPS", "NB201_EDGES", "NB201Table", "load_nb201", "parse_arch", "format_arch"]

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five candidate operations of an edge, in a fixed order (index = code)."""

NB201_EDGES: tuple[str, ...] = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
"""The six edges of a cell, in the order of the arch string: node 1 <- 0, node 2 <- 0,1, node 3 <- 0,1,2."""

ACCURACY_COLUMNS = {"cifar10": "acc_cifar10", "cifar100": "acc_cifar100", "imagenet16": "acc_imagenet16"}


def parse_arch(arch: str) -> tuple[str, ...]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> ``(a, b, c, d, e, f)``."""
    ops = []
    for node in arch.strip().split("+"):
        for tok in node.strip("|").split("|"):
            if not tok:
                continue
            op, _, _src = tok.partition("~")
            if op not in NB201_OPS:
                raise ValueError(f"unknown operation {op!r} in architecture {arch!r}; known: {NB201_OPS}")
            ops.append(op)
    if len(ops) != 6:
        raise ValueError(f"architecture {arch!r} has {len(ops)} edges, expected 6")
    return tuple(ops)


def format_arch(ops: tuple[str, ...] | list[str]) -> str:
    """Inverse of :func:`parse_arch`."""
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


@dataclass(frozen=True)
class NB201Table:
    """The whole table as arrays (row i is one architecture).

    Attributes:
        index: NATS-Bench index, shape (n,).
        arch: architecture strings, shape (n,).
        ops: operation codes into :data:`NB201_OPS`, shape (n, 6).
        accuracy: task name (``cifar10``, ``cifar100``, ``imagenet16``) -> test accuracy %, shape (n,).
        latency: device name (e.g. ``pixel3``, ``titanxp_1``) -> latency ms, shape (n,).
    """

    index: np.ndarray
    arch: np.ndarray
    ops: np.ndarray
    accuracy: dict[str, np.ndarray]
    latency: dict[str, np.ndarray]

    @property
    def devices(self) -> list[str]:
        return sorted(self.latency)

    def row_of(self, ops: tuple[str, ...]) -> int:
        """Row number of an architecture given by its six operations."""
        return self._row_by_code[tuple(NB201_OPS.index(o) for o in ops)]

    @property
    def _row_by_code(self) -> dict[tuple[int, ...], int]:
        cache = self.__dict__.get("_cache_rows")
        if cache is None:
            cache = {tuple(int(c) for c in r): i for i, r in enumerate(self.ops)}
            object.__setattr__(self, "_cache_rows", cache)
        return cache


def _default_path() -> Path:
    return Path(str(resources.files("hwtune.tabular").joinpath("nb201_hw.csv.gz")))


@lru_cache(maxsize=4)
def load_nb201(path: str | None = None) -> NB201Table:
    """Load the table shipped with hwtune (or the file at ``path``)."""
    p = Path(path) if path else _default_path()
    if not p.exists():
        raise FileNotFoundError(f"NB201 table not found at {p}; pass the path of nb201_hw.csv.gz")
    with gzip.open(p, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    lat_cols = [c for c in rows[0] if c.startswith("lat_ms_")]
    arch = np.array([r["arch"] for r in rows])
    ops = np.array([[NB201_OPS.index(o) for o in parse_arch(a)] for a in arch], dtype=np.int8)
    return NB201Table(
        index=np.array([int(r["index"]) for r in rows]),
        arch=arch,
        ops=ops,
        accuracy={k: np.array([float(r[c]) for r in rows]) for k, c in ACCURACY_COLUMNS.items()},
        latency={c[len("lat_ms_"):]: np.array([float(r[c]) for r in rows]) for c in lat_cols},
    )
