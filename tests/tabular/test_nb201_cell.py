"""The NB201 cell's structure, shared by the cost models and the search."""

from __future__ import annotations

import pytest

from hwtune.tabular import NB201_EDGES, nb201_cell_structure, nb201_space, parse_arch


def _cell(arch: str) -> dict[str, str]:
    return dict(zip(NB201_EDGES, parse_arch(arch)))


def test_space_is_six_edges_of_five_operations():
    s = nb201_space()
    assert list(s) == list(NB201_EDGES)
    assert all(s[e].role == "architecture" and len(s[e].choices) == 5 for e in NB201_EDGES)


def test_structure_of_known_cells():
    # input -> node1 (conv3x3) -> output (skip); the other edges none
    f = nb201_cell_structure(_cell("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"))
    assert f["n_nor_conv_3x3"] == 1 and f["alive_nor_conv_3x3"] == 1 and f["n_skip_connect"] == 1
    assert f["connected"] == 1 and f["depth"] == 1
    # a convolution that feeds nothing is counted but not alive; no path to the output: disconnected
    f = nb201_cell_structure(_cell("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"))
    assert f["n_nor_conv_3x3"] == 1 and f["alive_nor_conv_3x3"] == 0 and f["alive_avg_pool_3x3"] == 0
    assert f["connected"] == 0 and f["depth"] == 0
    # longest path: conv, conv, pool through nodes 1 and 2
    f = nb201_cell_structure(_cell("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"))
    assert f["depth"] == 3 and f["connected"] == 1


def test_unknown_operation_names_the_edge():
    cell = _cell("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    cell[NB201_EDGES[2]] = "conv_5x5"
    with pytest.raises(ValueError, match=NB201_EDGES[2]):
        nb201_cell_structure(cell)
