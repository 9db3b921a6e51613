"""The built-in families ``cnn`` and ``mlp`` as Keras 3 models, from the same params as PyTorch's.

Each layer mirrors ``hwtune.train._families`` (same widths, kernels, pooling, dense layer, dropout,
batch norm), so an architecture has the same trainable parameters in both frameworks (tests check
it). Inputs are hwtune's arrays as they are, channels first ``(C, H, W)``: on the torch backend the
layers run channels first (PyTorch's own layout); on TensorFlow and JAX a first ``Permute`` turns the
batch channels last, the layout their CPU convolutions take. Layers have fixed names, so that the
weights of one build load into another (``state_dict`` on the torch backend).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from hwtune.exceptions import ConfigError
from hwtune.keras._backend import backend_name, import_keras

__all__ = ["KERAS_FAMILIES", "build_family", "build_seed"]


def _layer_value(params: Mapping[str, Any], base: str, i: int, default: Any) -> Any:
    return params.get(f"{base}_{i}", params.get(base, default))


def build_seed(params: Mapping[str, Any], seed: int = 0) -> int:
    """A seed for the initial weights from the params (the same network is built the same way)."""
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return (zlib.crc32(text.encode()) ^ (int(seed) * 2654435761)) & 0x7FFFFFFF


def _build_cnn(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    keras = import_keras()
    layers = keras.layers
    if len(input_shape) != 3:
        raise ConfigError("model.family", f"cnn needs image input (C, H, W), got shape {input_shape}.", "use family: mlp for flat features.")
    _, h, w = input_shape
    first = backend_name() == "torch"
    fmt = "channels_first" if first else "channels_last"
    bn = bool(params.get("batch_norm", False))
    seq: list[Any] = [keras.Input(tuple(input_shape), name="x")]
    if not first:
        seq.append(layers.Permute((2, 3, 1), name="to_channels_last"))
    for i in range(int(params.get("conv_layers", 1))):
        filters = int(_layer_value(params, "filters", i, 16))
        kernel = int(_layer_value(params, "kernel", i, 3))
        seq.append(layers.Conv2D(filters, kernel, padding="same", use_bias=not bn, data_format=fmt, name=f"conv_{i}"))
        if bn:
            seq.append(layers.BatchNormalization(axis=1 if first else -1, epsilon=1e-5, momentum=0.9, name=f"bn_{i}"))
        seq.append(layers.ReLU(name=f"relu_{i}"))
        if min(h, w) >= 2:
            seq.append(layers.MaxPooling2D(2, data_format=fmt, name=f"pool_{i}"))
            h, w = h // 2, w // 2
    seq += [layers.Flatten(name="flatten"), layers.Dense(int(params.get("dense_units", 64)), activation="relu", name="dense")]
    if float(params.get("dropout", 0.0)) > 0:
        seq.append(layers.Dropout(float(params["dropout"]), name="dropout"))
    seq.append(layers.Dense(num_classes, name="logits"))
    return keras.Sequential(seq, name="hwtune_cnn")


def _build_mlp(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    keras = import_keras()
    layers = keras.layers
    seq: list[Any] = [keras.Input(tuple(input_shape), name="x")]
    if len(input_shape) != 1:
        seq.append(layers.Flatten(name="flatten"))
    for i in range(int(params.get("hidden_layers", 1))):
        seq.append(layers.Dense(int(_layer_value(params, "units", i, 128)), activation="relu", name=f"dense_{i}"))
        if float(params.get("dropout", 0.0)) > 0:
            seq.append(layers.Dropout(float(params["dropout"]), name=f"dropout_{i}"))
    seq.append(layers.Dense(num_classes, name="logits"))
    return keras.Sequential(seq, name="hwtune_mlp")


KERAS_FAMILIES = {"cnn": _build_cnn, "mlp": _build_mlp}
"""Built-in families Keras builds (``nb201`` is PyTorch's only)."""


def build_family(family: str, params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> Any:
    """An untrained Keras model of ``family``; its initial weights are seeded from the params."""
    if family not in KERAS_FAMILIES:
        raise ConfigError("model.family", f"framework keras builds the families {', '.join(KERAS_FAMILIES)}, not {family!r}.", f"use family: {' or '.join(KERAS_FAMILIES)}, or framework: torch.")
    keras = import_keras()
    keras.utils.set_random_seed(build_seed(params, seed))
    return KERAS_FAMILIES[family](params, tuple(int(s) for s in input_shape), int(num_classes))
