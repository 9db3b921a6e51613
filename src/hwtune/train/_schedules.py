"""Learning-rate schedules by name, stepped after every batch, with an optional linear warm-up.

=================  ==========================================  ======================================
schedule           PyTorch / hwtune                            own params (defaults)
=================  ==========================================  ======================================
constant           (none)
step               ``StepLR``                                  step_epochs (1), step_gamma (0.5)
exponential        ``ExponentialLR``                           exp_gamma (0.7 per epoch)
cosine             ``CosineAnnealingLR`` (to the last step)    min_lr_factor (0)
cosine_restarts    ``CosineAnnealingWarmRestarts``             restart_epochs (1), restart_mult (2), min_lr_factor (0)
plateau            ``ReduceLROnPlateau`` on validation error   plateau_factor (0.3), plateau_patience (0)
onecycle           ``OneCycleLR`` (peak = lr)                  onecycle_pct (0.3), onecycle_div (25)
hypergradient      :class:`~hwtune.train._adaptive.HypergradientLR`   hypergrad_beta (0.02)
bold_driver        :class:`~hwtune.train._adaptive.BoldDriverLR`      bold_up (1.05), bold_down (0.5), bold_every (20)
=================  ==========================================  ======================================

Durations are in epochs and converted to steps, so a schedule means the same at any batch size.
``warmup_epochs`` puts a linear warm-up (``LinearLR`` from lr/100 to lr) in front of any of them;
the schedule then starts, with the steps that are left, when the warm-up ends. ``plateau`` is stepped
once per epoch with the validation error. ``onecycle`` also cycles the momentum (or Adam's beta1)
between 0.85/0.95 of its value and its value when the optimizer has one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from hwtune.train._optim import get_lr
from hwtune.train._training import SCHEDULE_NAMES, TrainingPlan

if TYPE_CHECKING:
    import torch

__all__ = ["SCHEDULES", "LRController"]

SCHEDULES: tuple[str, ...] = SCHEDULE_NAMES

WARMUP_START_FACTOR = 0.01


class LRController:
    """Drives the optimizer's learning rate through one training run.

    Call :meth:`before_step` after the backward pass (gradients final), :meth:`after_step` after
    ``optimizer.step()``, and :meth:`after_epoch` with the validation error after each epoch.

    Args:
        plan: the trial's training plan (schedule, its params, warm-up).
        opt: the optimizer, already at the initial rate.
        steps_per_epoch: optimizer steps in one epoch.
        heldout_loss: loss on a fixed held-out batch (needed by ``bold_driver`` only).
        record: keep the rate after every step in :attr:`history`.
    """

    def __init__(
        self,
        plan: TrainingPlan,
        opt: "torch.optim.Optimizer",
        steps_per_epoch: int,
        heldout_loss: Callable[[], float] | None = None,
        record: bool = False,
    ) -> None:
        import torch

        self.plan = plan
        self.opt = opt
        self.spe = max(1, int(steps_per_epoch))
        self.total = self.spe * plan.epochs
        self.heldout_loss = heldout_loss
        self.base_lr = get_lr(opt)
        self.warmup_steps = min(self.total - 1, int(round(plan.warmup_epochs * self.spe))) if plan.warmup_epochs > 0 else 0
        self.history: list[float] | None = [] if record else None
        self._step = 0
        self._main: Any = None
        self._main_steps = 0
        self._warmup: Any = None
        if self.warmup_steps > 0:
            self._warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=WARMUP_START_FACTOR, end_factor=1.0, total_iters=self.warmup_steps)
        else:
            self._start_main()

    @property
    def lr(self) -> float:
        return get_lr(self.opt)

    def _start_main(self) -> None:
        import torch.optim.lr_scheduler as S

        p, k, opt = self.plan, self.plan.schedule_kwargs, self.opt
        remaining = max(1, self.total - self.warmup_steps)
        base = get_lr(opt)
        self._main_total = remaining
        if p.schedule == "constant":
            self._main = None
        elif p.schedule == "step":
            self._main = S.StepLR(opt, step_size=max(1, round(float(k["step_epochs"]) * self.spe)), gamma=float(k["step_gamma"]))
        elif p.schedule == "exponential":
            self._main = S.ExponentialLR(opt, gamma=float(k["exp_gamma"]) ** (1.0 / self.spe))
        elif p.schedule == "cosine":
            self._main = S.CosineAnnealingLR(opt, T_max=remaining, eta_min=base * float(k["min_lr_factor"]))
        elif p.schedule == "cosine_restarts":
            self._main = S.CosineAnnealingWarmRestarts(
                opt, T_0=max(1, round(float(k["restart_epochs"]) * self.spe)), T_mult=int(k["restart_mult"]),
                eta_min=base * float(k["min_lr_factor"]),
            )
        elif p.schedule == "plateau":
            self._main = S.ReduceLROnPlateau(opt, mode="min", factor=float(k["plateau_factor"]), patience=int(k["plateau_patience"]))
        elif p.schedule == "onecycle":
            momentum = self._momentum()
            self._main = S.OneCycleLR(
                opt, max_lr=base, total_steps=remaining, pct_start=float(k["onecycle_pct"]), div_factor=float(k["onecycle_div"]),
                cycle_momentum=momentum is not None,
                base_momentum=(momentum or 0.0) * 0.85 / 0.95, max_momentum=momentum or 0.0,
            )
        elif p.schedule == "hypergradient":
            from hwtune.train._adaptive import HypergradientLR

            self._main = HypergradientLR(opt, beta=float(k["hypergrad_beta"]))
        elif p.schedule == "bold_driver":
            from hwtune.train._adaptive import BoldDriverLR

            if self.heldout_loss is None:
                raise ValueError("bold_driver needs a held-out loss")
            self._main = BoldDriverLR(opt, self.heldout_loss, up=float(k["bold_up"]), down=float(k["bold_down"]), every=int(k["bold_every"]))
        else:  # pragma: no cover - resolve_training rejects unknown names
            raise ValueError(f"unknown schedule {p.schedule!r}")

    def _momentum(self) -> float | None:
        g = self.opt.param_groups[0]
        if "betas" in g:
            return float(g["betas"][0])
        m = g.get("momentum")
        return float(m) if m else None

    @property
    def _online(self) -> bool:
        return self._main is not None and hasattr(self._main, "before_step")

    def before_step(self) -> None:
        if self._warmup is None and self._online:
            self._main.before_step()

    def after_step(self) -> None:
        self._step += 1
        if self._warmup is not None:
            self._warmup.step()
            if self._step >= self.warmup_steps:
                self._warmup = None
                self._start_main()
        elif self._main is not None and self.plan.schedule != "plateau":
            if self._online:
                self._main.after_step()
            elif self._main_steps < self._main_total - (0 if self.plan.schedule != "onecycle" else 1):
                self._main.step()
            self._main_steps += 1
        if self.history is not None:
            self.history.append(self.lr)

    def after_epoch(self, val_error: float) -> None:
        if self._warmup is None and self.plan.schedule == "plateau" and self._main is not None and math.isfinite(val_error):
            self._main.step(val_error)
