"""The NAS-Bench-201 cell network."""

from __future__ import annotations

import pytest
import torch

from hwtune.hardware import count_flops, count_parameters
from hwtune.tabular import format_arch, load_nb201
from hwtune.train._nb201 import NB201Cell, build_nb201, nb201_ops

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_largest_network_matches_the_published_size() -> None:
    # NAS-Bench-201 publishes 1.5315 M parameters and 220.11 M FLOPs (multiply-adds) for this cell on CIFAR-10
    net = build_nb201(ALL_3X3)
    assert count_parameters(net) == 1_531_546
    macs = count_flops(net.eval(), (torch.zeros(1, 3, 32, 32),)) / 2
    assert macs / 1e6 == pytest.approx(220.11, rel=2e-3)


def test_smallest_network_has_only_the_skeleton() -> None:
    # stem, 2 reduction blocks, last BN and the classifier: 0.0733 M
    assert count_parameters(build_nb201(ALL_NONE)) == 73_306


def test_output_shape_and_options() -> None:
    net = build_nb201(("nor_conv_1x1", "skip_connect", "avg_pool_3x3", "none", "nor_conv_3x3", "skip_connect")).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        small = build_nb201(ALL_3X3, C=8, N=1, num_classes=100).eval()
        assert small(torch.randn(1, 3, 16, 16)).shape == (1, 100)
    assert len([m for m in small.modules() if isinstance(m, NB201Cell)]) == 3
    assert len([m for m in net.modules() if isinstance(m, NB201Cell)]) == 15


def test_cell_wiring_follows_the_arch_string() -> None:
    # all skip: node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    cell = NB201Cell(nb201_ops("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"), 4)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(cell(x), 4 * x)
    # only edge 3<-1 is skip, the rest none: output = node1 = 0 (edge 1<-0 is none)
    cell = NB201Cell(("none", "none", "none", "none", "skip_connect", "none"), 4)
    assert torch.count_nonzero(cell(x)) == 0
    # edge 1<-0 skip and 3<-1 skip: output = x
    cell = NB201Cell(("skip_connect", "none", "none", "none", "skip_connect", "none"), 4)
    assert torch.allclose(cell(x), x)


def test_all_none_network_ignores_its_input() -> None:
    net = build_nb201(ALL_NONE).eval()
    with torch.no_grad():
        a, b = net(torch.randn(1, 3, 32, 32)), net(torch.randn(1, 3, 32, 32))
    assert torch.allclose(a, b)


def test_every_arch_of_the_table_parses_and_a_sample_builds() -> None:
    table = load_nb201()
    for i in (0, 1, 777, 15624):
        arch = str(table.arch[i])
        net = build_nb201(arch, N=1)
        assert net.ops == nb201_ops(arch)
        assert format_arch(net.ops) == arch


def test_bad_architectures_are_explained() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        build_nb201("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="6 edges"):
        build_nb201(("none",) * 5)
    with pytest.raises(ValueError, match="unknown operation"):
        build_nb201(("none",) * 5 + ("sep_conv",))
    with pytest.raises(ValueError, match="C must be"):
        build_nb201(ALL_NONE, C=0)
