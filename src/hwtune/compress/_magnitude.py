"""Magnitude (unstructured) pruning: zero single weights of convolution and linear layers.

Two rules: the mission's threshold, zero every weight with ``|w| < alpha * max|w|`` of its layer
(:func:`prune_by_alpha`), and a target share of zeros, over the whole network or per layer
(:func:`prune_to_sparsity`). Both act **in place** and return the masks they applied.

Masks are ``torch.nn.utils.prune`` custom masks (``weight = weight_orig * weight_mask``, recomputed
by a forward pre-hook): the maintained PyTorch way, so the zeros stay zero through any optimizer,
trainer or distillation loop without a hook in the training step; calling a rule again on a pruned
network combines the masks (iterative pruning with fine-tuning). :func:`make_permanent` folds them
into plain weights before export.

What it buys, honestly: the network keeps its dense shape, and dense kernels do not run faster on
zeros, so latency is unchanged (no speed-up is claimed; none was measured). It buys a smaller stored
model: :func:`compressed_size_mb` measures the deflate-compressed weights file, and
:func:`sparsity_report` counts the zeros.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwtune.compress._validate import check_fraction
from hwtune.exceptions import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SCOPES", "LayerSparsity", "SparsityReport", "compressed_size_mb", "make_permanent", "prune_by_alpha", "prune_to_sparsity", "sparsity_report"]

SCOPES = ("global", "layer")
"""Where a target sparsity applies: the network's weights together, or each layer's."""


def _layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The convolution and linear layers with a weight: what magnitude pruning acts on."""
    from torch import nn

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            yield name, m


def _weights(model: nn.Module) -> list[tuple[str, nn.Module, torch.Tensor]]:
    out = [(n, m, m.weight.detach()) for n, m in _layers(model)]  # the masked weight when already pruned
    if not out:
        raise ConfigError("model", "the network has no convolution or linear layer to prune.", "leave prune_alpha / sparsity out for this model.")
    return out


def _apply(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply ``{layer: bool mask (True = kept)}`` as ``torch.nn.utils.prune`` custom masks."""
    from torch.nn.utils import prune

    mods = dict(model.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(mods[name], "weight", mask.to(dtype=mods[name].weight.dtype))
    return masks


def prune_by_alpha(model: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
    """Zero, in place, every weight whose ``|w| < alpha * max|w|`` of its layer (convs and linears).

    Args:
        model: the network; pruned in place (``copy.deepcopy`` it first to keep the original).
        alpha: strictly in (0, 1); the share of each layer's largest magnitude below which a weight
            is zeroed.

    Returns:
        ``{layer name: bool mask}``, True where the weight is kept, shape of the layer's weight.

    Raises:
        ConfigError: ``alpha`` outside (0, 1), NaN or not a number (naming ``prune_alpha``).
    """
    a = check_fraction(alpha, "prune_alpha", "share of each layer's largest |w| below which weights are zeroed")
    masks = {}
    for name, _, w in _weights(model):
        mag = w.abs()
        masks[name] = mag >= a * mag.max()
    return _apply(model, masks)


def prune_to_sparsity(model: nn.Module, sparsity: float, scope: str = "global") -> dict[str, torch.Tensor]:
    """Zero, in place, the smallest-magnitude weights until ``sparsity`` of them are zero.

    Args:
        model: the network; pruned in place. Weights already zero count toward the target.
        sparsity: strictly in (0, 1): the share of conv / linear weights that end up zero
            (``round(sparsity * n)`` of them, ties broken by position).
        scope: ``"global"``: one ranking over every layer's weights (layers end up uneven);
            ``"layer"``: each layer reaches the share on its own.

    Returns:
        ``{layer name: bool mask}``, True where the weight is kept.

    Raises:
        ConfigError: a bad ``sparsity`` (naming ``sparsity``) or ``scope`` (naming ``sparsity_scope``).
    """
    import torch

    s = check_fraction(sparsity, "sparsity", "share of the weights set to zero")
    if scope not in SCOPES:
        raise ConfigError("sparsity_scope", f"unknown sparsity scope {scope!r}.", f"use one of {', '.join(SCOPES)}.")
    layers = _weights(model)

    def keep_mask(mag: torch.Tensor, k: int) -> torch.Tensor:
        flat = torch.ones(mag.numel(), dtype=torch.bool, device=mag.device)
        flat[torch.argsort(mag.flatten(), stable=True)[:k]] = False
        return flat

    if scope == "layer":
        masks = {n: keep_mask(w.abs(), round(s * w.numel())).view_as(w) for n, _, w in layers}
    else:
        mags = torch.cat([w.abs().flatten().float().cpu() for _, _, w in layers])
        flat = keep_mask(mags, round(s * mags.numel()))
        masks, start = {}, 0
        for n, _, w in layers:
            masks[n] = flat[start : start + w.numel()].view_as(w).to(w.device)
            start += w.numel()
    return _apply(model, masks)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every ``torch.nn.utils.prune`` mask into its weight, in place (plain parameters again,
    the zeros kept): before export or saving a state dict with the usual keys. Returns ``model``."""
    from torch.nn.utils import prune

    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
    return model


@dataclass(frozen=True)
class LayerSparsity:
    """Zeros of one layer's weight: ``size`` weights, ``nonzero`` of them not zero."""

    name: str
    size: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        """Share of the layer's weights that are zero."""
        return 1.0 - self.nonzero / self.size if self.size else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Zeros of a network's conv / linear weights, per layer and in all.

    Attributes:
        layers: one entry per conv / linear layer, in registration order.
        size: weights of those layers in all; ``nonzero``: how many are not zero.
        params: every parameter of the network (biases, norms included); ``params_nonzero``: not zero.
    """

    layers: tuple[LayerSparsity, ...]
    size: int
    nonzero: int
    params: int
    params_nonzero: int

    @property
    def sparsity(self) -> float:
        """Share of all conv / linear weights that are zero (the global sparsity)."""
        return 1.0 - self.nonzero / self.size if self.size else 0.0

    def __str__(self) -> str:
        rows = [f"{'layer':<24}{'weights':>10}{'nonzero':>10}{'sparsity':>10}"]
        rows += [f"{l.name or '(model)':<24}{l.size:>10}{l.nonzero:>10}{l.sparsity:>10.1%}" for l in self.layers]
        rows.append(f"{'all conv/linear':<24}{self.size:>10}{self.nonzero:>10}{self.sparsity:>10.1%}")
        return "\n".join(rows)


def sparsity_report(model: nn.Module) -> SparsityReport:
    """Count the zeros of ``model``'s conv / linear weights (masked weights as the network uses them)."""
    import torch

    layers = tuple(LayerSparsity(n, w.numel(), int(torch.count_nonzero(w))) for n, _, w in _weights(model))
    # every parameter as the network computes with it: a pruned weight counts with its mask applied
    state = _effective_state(model)
    params = [state[n.removesuffix("_orig")] for n, _ in model.named_parameters()]
    return SparsityReport(
        layers=layers,
        size=sum(l.size for l in layers),
        nonzero=sum(l.nonzero for l in layers),
        params=sum(p.numel() for p in params),
        params_nonzero=sum(int(torch.count_nonzero(p)) for p in params),
    )


def _effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as the network computes with it: ``weight`` (masked) for ``weight_orig`` +
    ``weight_mask``, everything else as stored."""
    state = dict(model.state_dict())
    for prefix, m in model.named_modules():
        for pname in [k.removesuffix("_mask") for k in dict(m.named_buffers(recurse=False)) if k.endswith("_mask")]:
            key = f"{prefix}.{pname}" if prefix else pname
            state.pop(f"{key}_orig", None)
            state.pop(f"{key}_mask", None)
            state[key] = getattr(m, pname).detach()
    return state


def compressed_size_mb(model: nn.Module) -> float:
    """Measured size in MB (10^6 bytes) of the network's weights stored compactly: the effective
    state dict (masks folded in) saved with ``torch.save`` and deflate-compressed into a zip file,
    written to a temporary file and its size read back. Zeros compress well; dense random weights
    barely do, so comparing a pruned network with its original shows what magnitude pruning buys."""
    import torch

    buf = io.BytesIO()
    torch.save({k: v.contiguous().cpu() for k, v in _effective_state(model).items()}, buf)
    fd, path = tempfile.mkstemp(suffix=".zip", prefix="hwtune-size-")
    os.close(fd)
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.writestr("state_dict.pt", buf.getvalue())
        return os.path.getsize(path) / 1e6
    finally:
        os.unlink(path)
