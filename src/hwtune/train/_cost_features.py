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

__all__ = ["cnn_cost_features", "mlp_cost_features", "CNN_COST_FEATURES", "MLP_COST_FEATURES"]

CNN_COST_FEATURES: tuple[str, ...] = ("params", "macs", "flat_width", "activations", "conv_layers")
"""Keys of :func:`cnn_cost_features`."""
MLP_COST_FEATURES: tuple[str, ...] = ("params", "macs", "activations", "hidden_layers")
"""Keys of :func:`mlp_cost_features`."""


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
