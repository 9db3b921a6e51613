"""Cost features of the built-in families, computed from params without building anything.

The hardware cost of a network depends on its architecture only, and much of it is plain arithmetic
on the params: how many weights the builder creates, how many multiply-accumulates one sample needs,
how wide the map feeding the dense layer is. The cost model learns far better from these counts than
from the params themselves (a parameter count is a product of filters, kernels and map sizes, which
no linear model of the params can express).

These functions mirror the builders in ``_families.py`` line for line (the tests compare them with
the built networks) and are pure Python: no PyTorch, no NumPy. The sampler calls them for every
candidate it screens, thousands of times per proposal, so each call is a few microseconds.
``_families.FamilyCostFeatures`` binds one to a family's data set (input shape, classes).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from hwtune.exceptions import ConfigError

__all__ = ["cnn_cost_features", "mlp_cost_features", "nb201_cost_features", "nb201_cell", "CNN_COST_FEATURES", "MLP_COST_FEATURES", "NB201_COST_FEATURES"]

CNN_COST_FEATURES: tuple[str, ...] = ("params", "macs", "flat_width", "activations", "conv_layers")
"""Keys of :func:`cnn_cost_features`."""
MLP_COST_FEATURES: tuple[str, ...] = ("params", "macs", "activations", "hidden_layers")
"""Keys of :func:`mlp_cost_features`."""
NB201_COST_FEATURES: tuple[str, ...] = ("params", "macs", "conv_edges", "pool_edges", "skip_edges", "depth")
"""Keys of :func:`nb201_cost_features`."""
_NB201_EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")  # = tabular.NB201_EDGES
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # = tabular.NB201_OPS (pure Python here)


def _parse_arch(arch: str) -> tuple[str, ...]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> (a, b, c, d, e, f), as ``tabular.parse_arch``."""
    nodes = arch.strip().split("+")
    ops: list[str] = []
    for to, node in enumerate(nodes, start=1):
        edges = [e for e in node.strip("|").split("|") if e]
        if len(edges) != to:
            raise ValueError(f"cannot parse architecture {arch!r}: node {to} needs {to} edge(s)")
        for frm, e in enumerate(edges):
            op, _, src = e.partition("~")
            if src != str(frm):
                raise ValueError(f"cannot parse architecture {arch!r}: edge {e!r} should come from node {frm}")
            ops.append(op)
    if len(ops) != 6:
        raise ValueError(f"cannot parse architecture {arch!r}: an NB201 cell has 6 edges, got {len(ops)}")
    return tuple(ops)


def _layer_value(params: Mapping[str, Any], base: str, i: int, default: Any) -> Any:
    # the builders' rule: ``<base>_<i>``, else ``<base>`` for every layer, else the default
    return params.get(f"{base}_{i}", params.get(base, default))


def cnn_cost_features(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> dict[str, float]:
    """Cost features of a ``cnn`` network (see ``_build_cnn``), per sample.

    Args:
        params: the network's params (missing ones take the builder's defaults; others are ignored).
        input_shape: (C, H, W) of one sample.
        num_classes: outputs of the classifier.

    Returns:
        ``params``: trainable parameters (conv weights and biases, batch-norm scale and shift, the two
        dense layers), equal to ``sum(p.numel() for p in model.parameters())``;
        ``macs``: multiply-accumulates of the convolutions ('same' padding: one output per input pixel)
        and the dense layers;
        ``flat_width``: length of the flattened map feeding the dense layer;
        ``activations``: elements written by the layers in evaluation mode (conv, batch norm, ReLU,
        max-pool, dense, ReLU, classifier), the memory traffic besides the weights;
        ``conv_layers``: number of convolution layers.
    """
    if len(input_shape) != 3:
        raise ConfigError("model.family", f"cnn needs image input (C, H, W), got shape {tuple(input_shape)}.", "use family: mlp for flat features.")
    c, h, w = (int(s) for s in input_shape)
    bn = bool(params.get("batch_norm", False))
    n_conv = int(params.get("conv_layers", 1))
    n_params = 0
    macs = 0
    act = 0
    for i in range(n_conv):
        f = int(_layer_value(params, "filters", i, 16))
        k = int(_layer_value(params, "kernel", i, 3))
        weights = c * f * k * k
        out = f * h * w  # 'same' padding keeps the map size
        macs += weights * h * w
        if bn:  # conv without bias, then batch norm (scale and shift), then ReLU
            n_params += weights + 2 * f
            act += 3 * out
        else:  # conv with bias, then ReLU
            n_params += weights + f
            act += 2 * out
        if min(h, w) >= 2:
            h, w = h // 2, w // 2
            act += f * h * w
        c = f
    flat = c * h * w
    dense = int(params.get("dense_units", 64))
    n_params += flat * dense + dense + dense * num_classes + num_classes
    macs += flat * dense + dense * num_classes
    act += 2 * dense + num_classes
    return {
        "params": float(n_params),
        "macs": float(macs),
        "flat_width": float(flat),
        "activations": float(act),
        "conv_layers": float(n_conv),
    }


def mlp_cost_features(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> dict[str, float]:
    """Cost features of an ``mlp`` network (see ``_build_mlp``), per sample.

    Returns:
        ``params``: trainable parameters (weights and biases of every layer); ``macs``: multiply-
        accumulates of the dense layers; ``activations``: elements written in evaluation mode (each
        hidden layer's output and its ReLU, the classifier's output); ``hidden_layers``: their number.
    """
    n_in = math.prod(int(s) for s in input_shape)
    n_hidden = int(params.get("hidden_layers", 1))
    n_params = 0
    macs = 0
    act = 0
    for i in range(n_hidden):
        units = int(_layer_value(params, "units", i, 128))
        macs += n_in * units
        n_params += n_in * units + units
        act += 2 * units
        n_in = units
    macs += n_in * num_classes
    n_params += n_in * num_classes + num_classes
    act += num_classes
    return {"params": float(n_params), "macs": float(macs), "activations": float(act), "hidden_layers": float(n_hidden)}


def nb201_cell(params: Mapping[str, Any], require: bool = True) -> tuple[tuple[str, ...], int, int]:
    """(the six operations, channels, cells) of an ``nb201`` network's params.

    The cell is the six edge params ``edge_1_0 ... edge_3_2`` (a study file's), or an architecture
    string ``arch`` (``hwtune profile nb201 --arch``); ``channels`` / ``C`` default to 16,
    ``cells`` / ``N`` to 5 (the benchmark's). A missing edge is an error when ``require`` (the
    builder), else ``nor_conv_3x3`` (the cost features, like the other families' defaults).
    """
    if "arch" in params:
        try:
            ops = _parse_arch(str(params["arch"]))
        except ValueError as e:
            raise ConfigError("arch", f"{e}.", "write an architecture string such as '|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|'.") from None
    elif all(e in params for e in _NB201_EDGES) or not require:
        ops = tuple(str(params.get(e, "nor_conv_3x3")) for e in _NB201_EDGES)
    else:
        missing = [e for e in _NB201_EDGES if e not in params]
        raise ConfigError(
            "space", f"the nb201 family needs its cell architecture: the six edges {', '.join(_NB201_EDGES)} (missing {', '.join(missing)}), or an architecture string 'arch'.",
            f"add the missing edges to the space, each one of {', '.join(NB201_OPS)}.",
        )
    bad = [o for o in ops if o not in NB201_OPS]
    if bad:
        raise ConfigError("space", f"unknown nb201 operation(s) {bad}.", f"use {', '.join(NB201_OPS)}.")
    channels = int(params.get("channels", params.get("C", 16)))
    cells = int(params.get("cells", params.get("N", 5)))
    return ops, channels, cells


def nb201_cost_features(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> dict[str, float]:
    """Cost features of an ``nb201`` network (see ``_nb201.py``), per sample.

    Returns:
        ``params``: trainable parameters (equal to the built network's); ``macs``: multiply-
        accumulates of every convolution and the classifier (every edge is computed, as in the
        benchmark); ``conv_edges``, ``pool_edges``, ``skip_edges``: edges of each kind in all cells;
        ``depth``: convolutions and poolings on the longest path through one cell.
    """
    if len(input_shape) != 3:
        raise ConfigError("model.family", f"nb201 needs image input (C, H, W), got shape {tuple(input_shape)}.", "use an image data set.")
    c_in, h, w = (int(s) for s in input_shape)
    ops, C, N = nb201_cell(params, require=False)
    n_params = 9 * c_in * C + 2 * C  # stem conv (no bias) + batch norm
    macs = 9 * c_in * C * h * w
    c = C
    for stage in range(3):
        if stage > 0:  # residual reduction: two 3x3 ReLU-Conv-BN (the first strided) + AvgPool-Conv1x1 shortcut
            co, h, w = 2 * c, (h + 1) // 2, (w + 1) // 2
            n_params += 9 * c * co + 2 * co + 9 * co * co + 2 * co + c * co
            macs += (9 * c * co + 9 * co * co + c * co) * h * w
            c = co
        for o in ops:
            k = 3 if o == "nor_conv_3x3" else 1 if o == "nor_conv_1x1" else 0
            if k:
                n_params += N * (k * k * c * c + 2 * c)
                macs += N * k * k * c * c * h * w
    n_params += 2 * c + c * num_classes + num_classes  # last batch norm, classifier
    macs += c * num_classes
    # the longest path in the cell, counting convolutions and poolings (edges as in _nb201._EDGES)
    nodes = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    depth = [0, -1, -1, -1]
    for (to, frm), o in zip(nodes, ops):
        if o != "none" and depth[frm] >= 0:
            depth[to] = max(depth[to], depth[frm] + (o != "skip_connect"))
    return {
        "params": float(n_params),
        "macs": float(macs),
        "conv_edges": float(N * 3 * sum(o.startswith("nor_conv") for o in ops)),
        "pool_edges": float(N * 3 * sum(o == "avg_pool_3x3" for o in ops)),
        "skip_edges": float(N * 3 * sum(o == "skip_connect" for o in ops)),
        "depth": float(max(depth[3], 0)),
    }
