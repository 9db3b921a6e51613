"""Structured channel pruning (issue 14, part 1): smaller dense networks of the built-in families."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
from torch import nn

from hwtune.compress._structured import prunable_layers, prune_channels
from hwtune.exceptions import ConfigError
from hwtune.hardware._device import torch_threads
from hwtune.train import get_family

NB201_ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def _cnn(filters: int = 64, dense: int = 64, bn: bool = False) -> nn.Module:
    return get_family("cnn").build({"conv_layers": 2, "filters": filters, "dense_units": dense, "batch_norm": bn}, (1, 28, 28), 10)


def _widths(model: nn.Module) -> list[int]:
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("bn", [False, True])
def test_cnn_halves_channels_keeps_output_and_leaves_input_untouched(bn: bool) -> None:
    model = _cnn(bn=bn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 1, 28, 28)
    pruned = prune_channels(model, x, 0.5)
    assert _widths(model) == [64, 64, 64, 10]
    assert _widths(pruned) == [32, 32, 32, 10]  # output layer's width kept
    for k, v in model.state_dict().items():  # the original, batch-norm statistics included, untouched
        assert torch.equal(v, before[k]), k
    assert pruned(x).shape == model(x).shape == (3, 10)
    # the pruned network is exactly the family's 32/32 network in size
    assert _n_params(pruned) == _n_params(_cnn(32, 32, bn))
    assert _n_params(pruned) < 0.3 * _n_params(model)


def test_pruning_removes_the_least_important_channels_without_changing_the_function() -> None:
    model = _cnn(filters=8, dense=16).eval()
    conv0, conv1 = model[0], model[3]
    dead = [1, 4, 6, 7]  # channels that contribute nothing: zero filters and zero input columns
    with torch.no_grad():
        conv0.weight[dead] = 0
        conv0.bias[dead] = 0
        conv1.weight[:, dead] = 0
    x = torch.randn(4, 1, 28, 28)
    pruned = prune_channels(model, x, {"0": 0.5})
    assert _widths(pruned)[:2] == [4, 8]
    kept = [i for i in range(8) if i not in dead]
    assert torch.equal(pruned[0].weight, conv0.weight[kept])
    with torch.no_grad():
        assert torch.allclose(pruned(x), model(x), atol=1e-5)


def test_mlp_units_shrink() -> None:
    model = get_family("mlp").build({"hidden_layers": 2, "units": 40}, (1, 8, 8), 10)
    x = torch.randn(2, 1, 8, 8)
    pruned = prune_channels(model, x, 0.25, importance="l2")
    assert _widths(pruned) == [30, 30, 10]
    assert pruned(x).shape == (2, 10)


def test_nb201_cell_with_skip_and_sum_edges_prunes_to_a_working_network() -> None:
    model = get_family("nb201").build({"arch": NB201_ARCH, "channels": 16, "cells": 1}, (3, 32, 32), 10)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    pruned = prune_channels(model, x, 0.5)
    assert pruned.training  # mode kept
    convs_before = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    convs_after = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert convs_after == [c // 2 for c in convs_before]
    assert pruned.classifier.out_features == 10
    pruned.eval()
    with torch.no_grad():
        assert pruned(x).shape == (2, 10)
        assert torch.isfinite(pruned(x)).all()
    assert _n_params(pruned) < 0.35 * _n_params(model)


def test_per_layer_and_global_ratios() -> None:
    model = _cnn(filters=16, dense=32)
    x = torch.randn(2, 1, 28, 28)
    assert prunable_layers(model) == ["0", "3", "7"]
    assert _widths(prune_channels(model, x, {"3": 0.75})) == [16, 4, 32, 10]
    g = prune_channels(model, x, 0.5, global_pruning=True)
    assert _widths(g)[-1] == 10 and sum(_widths(g)[:3]) < sum(_widths(model)[:3])
    assert g(x).shape == (2, 10)
    # a ratio that would empty a layer keeps one channel
    assert _widths(prune_channels(_cnn(filters=4, dense=4), x, 0.99)) == [1, 1, 1, 10]


def test_pruned_network_is_faster_on_one_cpu_thread() -> None:
    from hwtune.hardware import CPUDevice, profile

    model = _cnn(filters=64, dense=64)
    x = torch.randn(8, 1, 28, 28)
    pruned = prune_channels(model, x, 0.5)
    fast: dict = {"metrics": ["latency_ms"], "target_rel_ci": 0.2, "max_time_s": 0.5, "warmup_runs": 2, "warmup_s": 0.0, "min_repeats": 6, "windows": 3, "max_retries": 0, "reference": False}
    full_ms = profile(model, x, CPUDevice(1), **fast).measurements["latency_ms"].value
    pruned_ms = profile(pruned, x, CPUDevice(1), **fast).measurements["latency_ms"].value
    # the 64->64 conv has a quarter of its multiply-adds left: a generous margin, not a benchmark
    assert pruned_ms < 0.8 * full_ms, (pruned_ms, full_ms)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, math.nan, "0.5", True, None])
def test_bad_ratio_names_prune_ratio(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        prune_channels(_cnn(8, 8), torch.randn(1, 1, 28, 28), bad)  # type: ignore[arg-type]
    assert e.value.field == "prune_ratio" and e.value.fix


def test_bad_per_layer_ratio_and_importance() -> None:
    model, x = _cnn(8, 8), torch.randn(1, 1, 28, 28)
    with pytest.raises(ConfigError) as e:
        prune_channels(model, x, {"9": 0.5})  # the output layer
    assert e.value.field == "prune_ratio.9" and "0, 3, 7" in str(e.value)
    with pytest.raises(ConfigError) as e:
        prune_channels(model, x, {"0": 2.0})
    assert e.value.field == "prune_ratio.0"
    with pytest.raises(ConfigError) as e:
        prune_channels(model, x, {"0": 0.5}, global_pruning=True)
    assert e.value.field == "prune_ratio"
    with pytest.raises(ConfigError) as e:
        prune_channels(model, x, 0.5, importance="taylor")
    assert e.value.field == "prune_importance"
    with pytest.raises(ConfigError) as e:  # only the output layer: nothing may be pruned
        prune_channels(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), x, 0.5)
    assert e.value.field == "prune_ratio"


def test_a_network_the_graph_cannot_prune_gives_a_config_error() -> None:
    class Bad(nn.Module):  # channels reshaped into the batch: no valid channel pruning exists
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).mean((2, 3))
            return self.fc(y.reshape(-1, 4).repeat(1, 2).reshape(x.shape[0], 8))

    with pytest.raises(ConfigError) as e:
        prune_channels(Bad(), torch.randn(2, 1, 6, 6), 0.5)
    assert e.value.field == "prune_ratio"
