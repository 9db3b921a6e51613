"""Data augmentation of image batches, in torch, on the batch's device (no per-sample Python work).

``augment``: ``none``, ``crop`` (zero-pad by ``crop_padding`` pixels, then take a random crop of the
original size), ``flip`` (mirror left-right with probability 1/2), ``crop_flip`` (both). Random
numbers come from a seeded generator on the batch's device, so augmentation is reproducible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["Augmenter", "random_crop", "random_flip"]


def random_crop(x: "torch.Tensor", padding: int, generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """Random crops of a zero-padded batch.

    Args:
        x: images, shape (B, C, H, W).
        padding: pixels of zero padding on each side; each image moves by up to ± ``padding``.

    Returns:
        Shape (B, C, H, W), same dtype and device.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=generator)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    # gather rows, then columns: (B, C, H+2p, W+2p) -> (B, C, H, W+2p) -> (B, C, H, W)
    rows = (oy + ar_h).view(b, 1, h, 1).expand(b, c, h, w + 2 * padding)
    cols = (ox + ar_w).view(b, 1, 1, w).expand(b, c, h, w)
    xr = xp.gather(2, rows)
    return xr.gather(3, cols)


def random_flip(x: "torch.Tensor", generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """Mirror each image left-right with probability 1/2. ``x``: (B, C, H, W) -> same shape."""
    import torch

    flip = torch.rand((x.shape[0], 1, 1, 1), device=x.device, generator=generator) < 0.5
    return torch.where(flip, x.flip(-1), x)


class Augmenter:
    """Applies the trial's augmentation to training batches of shape (B, C, H, W)."""

    def __init__(self, kind: str, padding: int, device: "torch.device | str", seed: int) -> None:
        import torch

        self.crop = kind in ("crop", "crop_flip")
        self.flip = kind in ("flip", "crop_flip")
        self.padding = int(padding)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        if x.dim() != 4:
            return x  # augmentation is for images; flat features pass through
        if self.crop:
            x = random_crop(x, self.padding, self.generator)
        if self.flip:
            x = random_flip(x, self.generator)
        return x
