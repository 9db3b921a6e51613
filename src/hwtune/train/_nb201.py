"""The NAS-Bench-201 cell network, built for any architecture string of the benchmark.

Macro skeleton (Dong & Yang, "NAS-Bench-201", ICLR 2020): a 3x3 convolution stem with batch norm;
three stages of ``N`` cells with ``C``, ``2C`` and ``4C`` channels, separated by residual reduction
blocks (stride 2); batch norm + ReLU, global average pooling and a linear classifier.

A cell is a DAG of four nodes: node ``i`` is the sum over ``j < i`` of ``op(i, j)(node j)`` and
the cell's output is node 3. The six edges take one of five operations: ``none`` (zero),
``skip_connect`` (identity), ``nor_conv_1x1`` and ``nor_conv_3x3`` (ReLU-Conv-BN), ``avg_pool_3x3``.

As in the benchmark's reference implementation the network computes every edge, ``none`` edges
included (a multiplication by zero), so that measured costs are those of the benchmark's networks.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hwtune.tabular._nb201 import NB201_OPS, parse_arch

__all__ = ["build_nb201", "NB201Network", "NB201Cell", "ResNetReduction", "nb201_ops"]


def nb201_ops(arch: str | Sequence[str]) -> tuple[str, ...]:
    """The six operations of ``arch``: an arch string ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` or a sequence."""
    if isinstance(arch, str):
        return parse_arch(arch)
    ops = tuple(arch)
    if len(ops) != 6:
        raise ValueError(f"an NB201 cell has 6 edges, got {len(ops)} operations: {ops}")
    bad = [o for o in ops if o not in NB201_OPS]
    if bad:
        raise ValueError(f"unknown operation(s) {bad}; known: {NB201_OPS}")
    return ops


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros of the input's shape (computed, as the reference does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _edge_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown operation {name!r}; known: {NB201_OPS}")


_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""(to, from) of the six edges, in the order of the arch string."""


class NB201Cell(nn.Module):
    """One cell: four nodes, six edges with the given operations, ``C`` channels in and out.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, ops: Sequence[str], c: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(_edge_op(o, c) for o in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[j]) for k, (to, j) in enumerate(_EDGES) if to == i))  # type: ignore[arg-type]
        return nodes[3]


class ResNetReduction(nn.Module):
    """Residual reduction block between stages: halves H and W, ``c_in`` -> ``c_out`` channels.

    ``ReLUConvBN(3x3, stride 2) -> ReLUConvBN(3x3)`` plus a shortcut ``AvgPool(2) -> Conv1x1``.
    Shapes: (B, c_in, H, W) -> (B, c_out, H/2, W/2).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell architecture.

    Shapes: (B, 3, H, W) -> (B, num_classes) logits; the benchmark uses H = W = 32 (CIFAR).
    """

    def __init__(self, ops: Sequence[str], C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetReduction(c, 2 * c))
                c *= 2
            layers.extend(NB201Cell(self.ops, c) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pooling(x), 1))


def build_nb201(arch: str | Sequence[str], C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The NAS-Bench-201 network of ``arch`` (untrained).

    Args:
        arch: an architecture string of the nb201 table (``|nor_conv_3x3~0|+|...|``) or its six
            operations in the string's edge order.
        C: channels of the first stage (16 in the benchmark); stages have C, 2C, 4C.
        N: cells per stage (5 in the benchmark).
        num_classes: outputs of the classifier (10 for CIFAR-10).
        in_channels: image channels.

    Returns:
        An ``nn.Module`` mapping (B, in_channels, H, W) images to (B, num_classes) logits.
    """
    for name, v in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return NB201Network(nb201_ops(arch), C=C, N=N, num_classes=num_classes, in_channels=in_channels)
