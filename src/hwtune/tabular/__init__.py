"""Tabulated benchmarks of real published measurements, shipped with hwtune (see PROVENANCE.md)."""

from hwtune.tabular._nb201 import NB201_EDGES, NB201_OPS, NB201Table, format_arch, load_nb201, parse_arch

__all__ = ["NB201_OPS", "NB201_EDGES", "NB201Table", "load_nb201", "parse_arch", "format_arch"]
