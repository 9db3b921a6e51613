from __future__ import annotations

import pytest
import torch

from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace
from hwtune.train import get_family


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_cnn_builds_for_every_layer_count(shape):
    fam = get_family("cnn")
    for layers in (1, 2, 3):
        params = {"conv_layers": layers, "dense_units": 16, **{f"filters_{i}": 4 + i for i in range(layers)}, **{f"kernel_{i}": 5 for i in range(layers)}}
        model = fam.build(params, shape, 10)
        assert model(torch.zeros(2, *shape)).shape == (2, 10)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in model) == layers


def test_more_filters_means_more_params():
    fam = get_family("cnn")
    small = fam.build({"conv_layers": 1, "filters_0": 4, "dense_units": 16}, (1, 8, 8), 10)
    big = fam.build({"conv_layers": 1, "filters_0": 32, "dense_units": 16}, (1, 8, 8), 10)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(big) > count(small)


def test_validate_space_names_unknown_and_out_of_range_params():
    fam = get_family("cnn")
    ok = SearchSpace.from_dict({"conv_layers": {"type": "int", "low": 1, "high": 3}, "lr": {"type": "float", "low": 0.01, "high": 0.1}})
    fam.validate_space(ok, (1, 8, 8), 10)
    with pytest.raises(ConfigError) as e:
        fam.validate_space(SearchSpace.from_dict({"kernels": {"type": "int", "low": 1, "high": 3}}), (1, 8, 8), 10)
    assert e.value.field == "space.kernels" and "filters_<i>" in str(e.value)
    with pytest.raises(ConfigError) as e:
        fam.validate_space(SearchSpace.from_dict({"conv_layers": {"type": "int", "low": 1, "high": 12}}), (1, 8, 8), 10)
    assert e.value.field == "space.conv_layers"
    with pytest.raises(ConfigError, match="unknown model family"):
        get_family("vit")


def test_mlp_family():
    model = get_family("mlp").build({"hidden_layers": 2, "units_0": 32, "units_1": 8}, (1, 8, 8), 10)
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
