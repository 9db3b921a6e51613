"""Magnitude pruning (issue 14, part 2): the alpha * max|w| rule, target sparsity, reports, sizes."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from hwtune.compress._magnitude import (
    compressed_size_mb,
    make_permanent,
    prune_by_alpha,
    prune_to_sparsity,
    sparsity_report,
)
from hwtune.exceptions import ConfigError
from hwtune.hardware._device import torch_threads
from hwtune.train import get_family


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def _cnn(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return get_family("cnn").build({"conv_layers": 2, "filters": 16, "dense_units": 32, "batch_norm": bn}, (1, 12, 12), 10)


def _layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def test_alpha_rule_zeroes_exactly_the_weights_below_alpha_times_max() -> None:
    model = _cnn()
    before = _layer_weights(model)
    masks = prune_by_alpha(model, 0.3)
    after = _layer_weights(model)
    assert set(masks) == set(before) == {"0", "3", "7", "9"}
    for name, w in before.items():
        # hand computation, element by element
        threshold = 0.3 * max(abs(v) for v in w.flatten().tolist())
        expected = torch.tensor([0.0 if abs(v) < threshold else v for v in w.flatten().tolist()]).view_as(w)
        assert torch.equal(after[name], expected), name
        assert torch.equal(masks[name], expected != 0)
        assert 0 < int((after[name] == 0).sum()) < w.numel()
    x = torch.randn(2, 1, 12, 12)
    assert model(x).shape == (2, 10)


def test_masks_stay_applied_through_fine_tuning_and_combine_when_pruned_again() -> None:
    model = _cnn()
    masks = prune_by_alpha(model, 0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, w in _layer_weights(model).items():
        assert torch.all(w[~masks[name]] == 0), name
        assert torch.any(w[masks[name]] != 0)
    first = sparsity_report(model).sparsity
    prune_by_alpha(model, 0.4)  # iterative: a second round on top of the first
    assert sparsity_report(model).sparsity > first
    for name, w in _layer_weights(model).items():
        assert torch.all(w[~masks[name]] == 0), name


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.87])
def test_layer_sparsity_hits_the_target_in_every_layer(sparsity: float) -> None:
    model = _cnn()
    prune_to_sparsity(model, sparsity, scope="layer")
    for layer in sparsity_report(model).layers:
        assert abs((layer.size - layer.nonzero) - sparsity * layer.size) <= 1, layer


def test_global_sparsity_hits_the_target_and_ranks_across_layers() -> None:
    model = _cnn()
    before = _layer_weights(model)
    prune_to_sparsity(model, 0.6, scope="global")
    report = sparsity_report(model)
    assert abs((report.size - report.nonzero) - 0.6 * report.size) <= 1
    # one ranking over all layers: every zeroed weight is no larger than every kept one
    after = _layer_weights(model)
    zeroed = torch.cat([before[n][after[n] == 0].abs() for n in before])
    kept = torch.cat([before[n][after[n] != 0].abs() for n in before])
    assert zeroed.max() <= kept.min()
    assert len({round(layer.sparsity, 2) for layer in report.layers}) > 1  # layers end up uneven


def test_sparsity_report_counts_and_permanent_masks() -> None:
    model = _cnn(bn=True)
    dense = sparsity_report(model)
    assert dense.sparsity == 0 and dense.params == sum(p.numel() for p in model.parameters())
    prune_to_sparsity(model, 0.5, scope="layer")
    report = sparsity_report(model)
    by_hand = sum(int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert report.nonzero == by_hand
    assert report.params == dense.params and report.params_nonzero == dense.params_nonzero - (report.size - report.nonzero)
    assert "all conv/linear" in str(report)
    x = torch.randn(2, 1, 12, 12)
    model.eval()
    y = model(x)
    make_permanent(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert torch.equal(model(x), y)
    assert sparsity_report(model).nonzero == report.nonzero


def test_compressed_size_shrinks_with_sparsity_and_is_measured_on_effective_weights() -> None:
    model = get_family("mlp").build({"hidden_layers": 2, "units": 256}, (1, 16, 16), 10)
    raw_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    dense_mb = compressed_size_mb(model)
    assert 0.8 * raw_mb < dense_mb < 1.2 * raw_mb  # random float weights barely compress
    pruned = copy.deepcopy(model)
    prune_to_sparsity(pruned, 0.9, scope="global")
    sparse_mb = compressed_size_mb(pruned)
    assert sparse_mb < 0.35 * dense_mb, (sparse_mb, dense_mb)
    assert compressed_size_mb(make_permanent(pruned)) == pytest.approx(sparse_mb, rel=0.02)


@pytest.mark.parametrize("bad", [0, 1, 1.0, -0.5, 2, math.nan, "0.3", True, None])
def test_bad_alpha_and_sparsity_name_their_field(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        prune_by_alpha(_cnn(), bad)  # type: ignore[arg-type]
    assert e.value.field == "prune_alpha" and e.value.fix
    with pytest.raises(ConfigError) as e:
        prune_to_sparsity(_cnn(), bad)  # type: ignore[arg-type]
    assert e.value.field == "sparsity" and e.value.fix


def test_bad_scope_and_a_network_without_layers() -> None:
    with pytest.raises(ConfigError) as e:
        prune_to_sparsity(_cnn(), 0.5, scope="channel")
    assert e.value.field == "sparsity_scope"
    with pytest.raises(ConfigError):
        prune_by_alpha(nn.Sequential(nn.ReLU()), 0.5)
