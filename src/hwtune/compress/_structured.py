"""Structured channel pruning: remove whole output channels, so the network stays dense and smaller.

The dependency graph (which layers' channels are coupled: a conv's outputs, the next conv's inputs,
a batch norm between them, residual sums and cell edges that must agree) is torch-pruning's DepGraph
(Fang et al., CVPR 2023), a maintained library, rather than one of our own. Channels are ranked by the
L1 or L2 norm of their weights, summed over the coupled layers of a group.

On an *untrained* network (to measure its cost before training) the ranking is by the magnitude of the
random initialisation, i.e. arbitrary: only the pruned widths matter there, and they depend on
``ratio`` alone. On a *trained* network (to deliver it) the ranking is by the trained weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwtune.compress._validate import check_fraction
from hwtune.exceptions import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["IMPORTANCES", "prunable_layers", "prune_channels"]

IMPORTANCES = ("l1", "l2")
"""Channel importance criteria: the L1 or L2 norm of a channel's weights."""

_FIELD = "prune_ratio"


def _layer_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _output_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The last conv/linear layer in registration order: the classifier, whose width is never pruned."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _layer_types())]
    if not layers:
        raise ConfigError(_FIELD, "the network has no convolution or linear layer to prune.", "leave prune_ratio out for this model.")
    return layers[-1]


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the layers whose output channels ``prune_channels`` may remove (convs and linears,
    the output layer excepted): the keys a per-layer ``ratio`` dict may use."""
    out_name, _ = _output_layer(model)
    return [n for n, m in model.named_modules() if isinstance(m, _layer_types()) and n != out_name]


def _check_ratio(ratio: Any, model: nn.Module, global_pruning: bool) -> dict[str, float]:
    """``{layer name: ratio}`` from one number (every prunable layer) or a per-layer dict."""
    names = prunable_layers(model)
    if not names:
        raise ConfigError(_FIELD, "the network has no layer to prune besides its output layer, whose width is kept.", "leave prune_ratio out for this model.")
    if not isinstance(ratio, Mapping):
        return dict.fromkeys(names, check_fraction(ratio, _FIELD, "share of each layer's output channels removed"))
    if global_pruning:
        raise ConfigError(_FIELD, "a per-layer prune_ratio cannot be combined with global pruning.", "give one number with global_pruning=True, or per-layer ratios without it.")
    if not ratio:
        raise ConfigError(_FIELD, "the per-layer prune_ratio is empty.", "give {layer name: ratio} for at least one layer, or one number for all layers.")
    per: dict[str, float] = {}
    for name, r in ratio.items():
        if name not in names:
            raise ConfigError(f"{_FIELD}.{name}", f"{name!r} is not a prunable layer of this network (the output layer never is).", f"use one of: {', '.join(names)}.")
        per[name] = check_fraction(r, f"{_FIELD}.{name}", "share of the layer's output channels removed")
    return per


def _keep_one(ratio: float, width: int) -> float:
    """``ratio``, lowered where it would remove every channel of a ``width``-wide layer (torch-pruning
    keeps ``int(width * (1 - ratio))`` channels and silently skips a layer it would empty)."""
    return min(ratio, (width - 1) / width - 1e-9) if width > 1 else 0.0


def _widths(model: nn.Module) -> dict[str, int]:
    from torch import nn

    out: dict[str, int] = {}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            out[n] = m.out_channels
        elif isinstance(m, nn.Linear):
            out[n] = m.out_features
    return out


def prune_channels(
    model: nn.Module,
    example_input: torch.Tensor,
    ratio: float | Mapping[str, float],
    importance: str = "l1",
    global_pruning: bool = False,
) -> nn.Module:
    """A copy of ``model`` with a share of the output channels of its layers removed (a dense network).

    Args:
        model: a ``torch.nn.Module`` (the built-in ``cnn``, ``mlp`` and ``nb201`` families are
            tested); it is left untouched.
        example_input: one batch the network accepts, shape ``(B, ...)``, on the model's device;
            used to trace the dependency graph.
        ratio: share of output channels removed, strictly in (0, 1): one number for every prunable
            layer, or ``{layer name: ratio}`` (names from :func:`prunable_layers`; the others are
            kept whole). A layer coupled to others (a residual stage, an NB201 cell) is pruned with
            its group. The output layer's width is never pruned.
        importance: ``"l1"`` or ``"l2"``: the norm of a channel's weights ranks it (on an untrained
            network that ranking is by the random initialisation).
        global_pruning: rank channels across all layers at once (the ratio is then the network's
            share; layers end up uneven) instead of layer by layer.

    Returns:
        The pruned copy, in the training mode of ``model``; same output shape as ``model``.

    Raises:
        ConfigError: a bad ``ratio`` (naming ``prune_ratio``), a bad ``importance``, or a network
            the dependency graph cannot prune (naming ``prune_ratio`` for that network).
    """
    per_layer = _check_ratio(ratio, model, bool(global_pruning))
    if importance not in IMPORTANCES:
        raise ConfigError("prune_importance", f"unknown channel importance {importance!r}.", f"use one of {', '.join(IMPORTANCES)}.")
    try:
        import torch_pruning as tp
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(_FIELD, "structured pruning needs torch-pruning, which is not installed.", "pip install 'hwtune[compress]'.") from None
    import torch

    pruned = copy.deepcopy(model)
    was_training = pruned.training
    pruned.eval()  # tracing runs a forward pass: batch-norm statistics must not move
    out_name, out_layer = _output_layer(pruned)
    mods, widths = dict(pruned.named_modules()), _widths(pruned)
    kind = type(model).__name__
    try:
        with torch.enable_grad():  # DepGraph traces the autograd graph
            pruner = tp.pruner.MetaPruner(
                pruned,
                example_input,
                importance=tp.importance.MagnitudeImportance(p=1 if importance == "l1" else 2),
                pruning_ratio=next(iter(per_layer.values())) if global_pruning else 0.0,
                pruning_ratio_dict=None if global_pruning else {mods[n]: _keep_one(r, widths[n]) for n, r in per_layer.items()},
                global_pruning=bool(global_pruning),
                ignored_layers=[out_layer],
            )
            pruner.step()
        with torch.no_grad():
            mode = model.training  # the original is only read: its mode is restored below
            model.eval()
            try:
                want = model(example_input).shape
            finally:
                model.train(mode)
            got = pruned(example_input).shape
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(_FIELD, f"structured pruning cannot handle this {kind} network: {type(e).__name__}: {e}.", "leave prune_ratio out for this model family, or use magnitude pruning (prune_alpha / sparsity).") from e
    if got != want:
        raise ConfigError(_FIELD, f"structured pruning broke this {kind} network: output shape {tuple(got)} instead of {tuple(want)}.", "leave prune_ratio out for this model family.")
    empty = [n for n, w in _widths(pruned).items() if w < 1]
    if empty:
        raise ConfigError(_FIELD, f"the ratio removes every channel of {', '.join(empty)}.", "choose a smaller prune_ratio.")
    if _widths(pruned).get(out_name) != _widths(model).get(out_name):  # pragma: no cover - guarded by ignored_layers
        raise ConfigError(_FIELD, "structured pruning changed the output layer's width.", "leave prune_ratio out for this model family.")
    pruned.train(was_training)
    return pruned

