"""Tabulated benchmarks of real published measurements, shipped with hwtune (see PROVENANCE.md)."""

from hwtune.tabular._nb201 import NB201_EDGES, NB201_OPS, NB201Table, format_arch, load_nb201, parse_arch
from hwtune.tabular._nb201_cell import nb201_cell_structure, nb201_space
from hwtune.tabular._nb201_prior import NB201_TASKS, nb201_error_prior

__all__ = ["NB201_OPS", "NB201_EDGES", "NB201Table", "load_nb201", "parse_arch", "format_arch", "nb201_space", "nb201_cell_structure", "nb201_error_prior", "NB201_TASKS"]
