"""Learning rates that adapt: a range test before training, and two online rules during it.

- :func:`lr_range_test` (``lr_find: true``; Smith, "Cyclical Learning Rates", 2017): train for a
  few steps while the rate grows exponentially from 1e-6 to 10, smooth the loss, stop when it
  diverges, and take the rate of the lowest smoothed loss divided by 10 (``rule="min10"``, the
  default) or the rate where the smoothed loss falls fastest per log-rate (``rule="steepest"``).
  The model and optimizer are restored afterwards; only the chosen rate is kept. Works with every
  optimizer and schedule. On MNIST with SGD+momentum ``steepest`` picked rates at the edge of
  divergence (the loss starts falling late in a short sweep, whatever the rate), so ``min10`` is the
  default; see docs/benchmarks.md.
- :class:`HypergradientLR` (``schedule: hypergradient``; Baydin et al., "Online Learning Rate
  Adaptation with Hypergradient Descent", ICLR 2018, multiplicative rule): before each step the rate
  is multiplied by ``1 - beta * cos(g_t, u_{t-1})``, where ``g_t`` is the current gradient and
  ``u_{t-1}`` the previous parameter update. Gradients that keep pointing the way the last update
  went raise the rate; gradients that turn back (overshoot) lower it. Using the update (not the raw
  gradient) makes it work for every optimizer (momentum, Adam...). Costs one copy of the weights.
- :class:`BoldDriverLR` (``schedule: bold_driver``; Battiti 1989, the "bold driver" controller):
  every ``bold_every`` steps the loss on a fixed held-out batch (taken out of the training split) is
  measured; if it fell since the last check, the rate is multiplied by ``bold_up``, else by ``bold_down``.

Shapes: every tensor here is a model parameter or its gradient, of the parameter's own shape.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from hwtune.train._optim import get_lr, set_lr

if TYPE_CHECKING:
    import torch

__all__ = ["lr_range_test", "HypergradientLR", "BoldDriverLR", "LR_BOUNDS"]

LR_BOUNDS = (1e-8, 10.0)
"""Online methods keep the rate within these bounds."""


def lr_range_test(
    step: Callable[[], float],
    opt: "torch.optim.Optimizer",
    *,
    lr_min: float = 1e-6,
    lr_max: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.9,
    diverge: float = 4.0,
    rule: str = "min10",
) -> tuple[float, list[tuple[float, float]]]:
    """Run a learning-rate range test and pick a rate.

    Args:
        step: runs one training step at the optimizer's current rate and returns its loss.
        opt: the optimizer whose rate is swept (its state is changed: restore it afterwards).
        lr_min, lr_max: the sweep's first and last rate (geometric).
        steps: most steps of the sweep.
        smoothing: exponential smoothing of the loss (with bias correction).
        diverge: stop when the smoothed loss exceeds this multiple of its minimum.
        rule: ``steepest`` (the rate where the smoothed loss falls fastest before its minimum,
            measured over a window of 5 % of the sweep) or ``min10`` (the lowest loss's rate / 10).
            ``steepest`` falls back to ``min10`` when the loss never clearly fell.

    Returns:
        The chosen rate (within [lr_min, lr_max]) and the (rate, smoothed loss) history.
    """
    steps = max(2, int(steps))
    growth = (lr_max / lr_min) ** (1.0 / (steps - 1))
    avg, best, best_lr = 0.0, math.inf, lr_min
    history: list[tuple[float, float]] = []
    for i in range(steps):
        lr = lr_min * growth**i
        set_lr(opt, lr)
        loss = step()
        if not math.isfinite(loss):
            break
        avg = smoothing * avg + (1 - smoothing) * loss
        smooth = avg / (1 - smoothing ** (i + 1))
        history.append((lr, smooth))
        if smooth < best * (1 - 1e-9):  # a real improvement, not rounding of a flat loss
            best, best_lr = smooth, lr
        if i >= 5 and smooth > diverge * best:
            break
    pick = best_lr / 10.0
    if rule == "steepest" and len(history) >= 3:
        losses = [h[1] for h in history]
        end = losses.index(min(losses))
        w = max(2, steps // 20)
        slopes = [(losses[i] - losses[i - w]) / math.log(history[i][0] / history[i - w][0]) for i in range(w, end + 1)]
        if slopes and min(slopes) < 0 and min(losses) < 0.98 * losses[0]:
            i = w + slopes.index(min(slopes))
            pick = math.sqrt(history[i][0] * history[i - w][0])  # middle of the steepest window
    elif rule not in ("steepest", "min10"):
        raise ValueError(f"unknown range-test rule {rule!r}")
    return min(lr_max, max(lr_min, pick)), history


class HypergradientLR:
    """Multiplicative hypergradient descent on the learning rate (see the module docstring).

    Call :meth:`before_step` after the backward pass (gradients final: unscaled, clipped, reduced
    across processes) and :meth:`after_step` after ``optimizer.step()``.
    """

    def __init__(self, opt: "torch.optim.Optimizer", beta: float = 0.02) -> None:
        self.opt = opt
        self.beta = float(beta)
        self.params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        self._before: list["torch.Tensor"] | None = None
        self._update: list["torch.Tensor"] | None = None

    def before_step(self) -> None:
        import torch

        with torch.no_grad():
            if self._update is not None and self.beta > 0:
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
                dot = torch.stack([(g.float() * u).sum() for g, u in zip(grads, self._update)]).sum()
                gg = torch.stack([g.float().pow(2).sum() for g in grads]).sum()
                uu = torch.stack([u.pow(2).sum() for u in self._update]).sum()
                d, n = float(dot), math.sqrt(float(gg) * float(uu))
                if n > 0 and math.isfinite(d / n):
                    lr = get_lr(self.opt) * (1.0 - self.beta * (d / n))
                    set_lr(self.opt, min(LR_BOUNDS[1], max(LR_BOUNDS[0], lr)))
            if self._before is None:
                self._before = [p.detach().float().clone() for p in self.params]
            else:
                for b, p in zip(self._before, self.params):
                    b.copy_(p.detach())

    def after_step(self) -> None:
        import torch

        assert self._before is not None
        with torch.no_grad():
            # the update just made: new weights - old weights (reuse the snapshot's memory)
            for b, p in zip(self._before, self.params):
                b.neg_().add_(p.detach().float())
            self._update, self._before = self._before, self._update


class BoldDriverLR:
    """Bold driver: a controller driven by the loss on a held-out batch (see the module docstring)."""

    def __init__(self, opt: "torch.optim.Optimizer", heldout_loss: Callable[[], float], up: float = 1.05, down: float = 0.5, every: int = 20) -> None:
        self.opt = opt
        self.heldout_loss = heldout_loss
        self.up, self.down, self.every = float(up), float(down), max(1, int(every))
        self._steps = 0
        self._last = heldout_loss()

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        self._steps += 1
        if self._steps % self.every:
            return
        loss = self.heldout_loss()
        factor = self.up if loss < self._last else self.down
        set_lr(self.opt, min(LR_BOUNDS[1], max(LR_BOUNDS[0], get_lr(self.opt) * factor)))
        self._last = loss
