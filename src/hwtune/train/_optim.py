"""Optimizers by name: PyTorch's implementations with hwtune's param names.

=========  ==========================  =============================================
name       PyTorch                     own params (defaults)
=========  ==========================  =============================================
sgd        ``torch.optim.SGD``         momentum (0.9), nesterov (false)
adagrad    ``torch.optim.Adagrad``     lr_decay (0), eps (1e-10)
rmsprop    ``torch.optim.RMSprop``     alpha (0.99), eps (1e-8), momentum (0), centered (false)
adam       ``torch.optim.Adam``        beta1 (0.9), beta2 (0.999), eps (1e-8), amsgrad (false)
adamw      ``torch.optim.AdamW``       as adam; weight_decay defaults to 0.01 (decoupled)
=========  ==========================  =============================================

Every optimizer also reads ``lr`` (sgd 0.05, adagrad 0.01, the others 0.001), ``weight_decay`` (0)
and ``clip_norm`` (gradient clipping by global norm, 0 = off; applied by the trainer).
Plain SGD is ``momentum: 0``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from hwtune.train._training import OPTIMIZER_NAMES, TrainingPlan

if TYPE_CHECKING:
    import torch

__all__ = ["OPTIMIZERS", "build_optimizer", "set_lr", "get_lr"]

OPTIMIZERS: dict[str, str] = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}
"""hwtune optimizer name -> class name in ``torch.optim``."""

assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES


def build_optimizer(plan: TrainingPlan, parameters: Iterable["torch.nn.Parameter"], lr: float | None = None) -> "torch.optim.Optimizer":
    """PyTorch optimizer of ``plan`` over ``parameters`` (``lr`` overrides ``plan.lr``)."""
    import torch

    cls = getattr(torch.optim, OPTIMIZERS[plan.optimizer])
    kwargs: dict[str, Any] = dict(plan.optimizer_kwargs)
    return cls(parameters, lr=plan.lr if lr is None else lr, weight_decay=plan.weight_decay, **kwargs)


def set_lr(opt: "torch.optim.Optimizer", lr: float) -> None:
    """Set every param group's learning rate."""
    for g in opt.param_groups:
        g["lr"] = lr


def get_lr(opt: "torch.optim.Optimizer") -> float:
    """Learning rate of the first param group."""
    return float(opt.param_groups[0]["lr"])
