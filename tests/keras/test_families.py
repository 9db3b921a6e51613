"""The Keras ``cnn`` / ``mlp`` families: the same params build the same network as PyTorch's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")

from hwtune.exceptions import ConfigError
from hwtune.keras import build_family
from hwtune.train import get_family


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


CNN_POINTS = [
    {"conv_layers": n, "filters_0": f, "filters_1": 2 * f, "filters_2": 3, "kernel_0": k, "kernel_1": 3, "dense_units": d, "batch_norm": bn, "dropout": dr}
    for n, f, k, d, bn, dr in itertools.product((1, 2, 3), (4, 9), (3, 5), (16, 33), (False, True), (0.0, 0.3))
][::5]


@pytest.mark.parametrize("params", CNN_POINTS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 11, 7)])
def test_cnn_has_the_same_trainable_parameters_as_pytorch(params, shape) -> None:
    torch_model = get_family("cnn").build(params, shape, 10)
    keras_model = build_family("cnn", params, shape, 10)
    assert _trainable(keras_model) == sum(p.numel() for p in torch_model.parameters())
    out = keras_model(np.zeros((2, *shape), dtype="float32"), training=False)
    assert tuple(out.shape) == (2, 10)


@pytest.mark.parametrize("params", [{"hidden_layers": 1, "units": 5}, {"hidden_layers": 3, "units_0": 64, "units_1": 7, "units_2": 30, "dropout": 0.1}])
@pytest.mark.parametrize("shape", [(64,), (1, 8, 8)])
def test_mlp_has_the_same_parameters_as_pytorch(params, shape) -> None:
    torch_model = get_family("mlp").build(params, shape, 3)
    keras_model = build_family("mlp", params, shape, 3)
    assert keras_model.count_params() == _trainable(keras_model) == sum(p.numel() for p in torch_model.parameters())


def test_the_same_params_build_the_same_initial_weights() -> None:
    p = {"conv_layers": 2, "filters_0": 4, "dense_units": 8}
    a, b = build_family("cnn", p, (1, 8, 8), 10), build_family("cnn", p, (1, 8, 8), 10)
    c = build_family("cnn", {**p, "dense_units": 9}, (1, 8, 8), 10)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_nb201_and_flat_cnn_input_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as e:
        build_family("nb201", {}, (3, 32, 32), 10)
    assert e.value.field == "model.family" and "framework: torch" in (e.value.fix or "")
    with pytest.raises(ConfigError) as e2:
        build_family("cnn", {}, (64,), 10)
    assert "mlp" in (e2.value.fix or "")
