"""Knowledge distillation (issue 14, part 4): the loss, and a short fine-tuning of a compressed
network against a teacher (the same network before compression, a user model, or the study's best).

Loss (Hinton et al. 2015), per batch, batch mean::

    (1 - beta) * CE(student, targets) + beta * T^2 * KL(softmax(teacher / T) || softmax(student / T))

``T^2`` keeps the soft term's gradients on the scale of the hard one as ``T`` grows. The KL is
PyTorch's ``F.kl_div(log_softmax(student / T), log_softmax(teacher / T), log_target=True,
reduction="batchmean")``: the sum over classes of ``p_t * (log p_t - log p_s)``, averaged over the
batch (``reduction="mean"`` would also divide by the number of classes, which is not the KL).

Why a loop of its own rather than the built-in trainer (``hwtune.train._trainer.fit``): the trainer's
step hard-codes ``F.cross_entropy`` on in-memory splits with the whole training plan around it
(schedules, adaptive rates, AMP, DDP, epoch reports); a second loss would need an edit inside that
step. The pieces that fit are reused: optimizers by hwtune's names and params
(:func:`hwtune.train.resolve_training` + :func:`hwtune.train.build_optimizer`, with its
``clip_norm``), and the trainer's seeding by ``torch.manual_seed``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwtune.exceptions import ConfigError, NonFiniteLossError

if TYPE_CHECKING:
    import torch

__all__ = ["DistillResult", "check_distill_params", "distill", "distillation_loss"]


def check_distill_params(beta: Any, T: Any) -> tuple[float, float]:
    """``(beta, T)`` as floats, or a :class:`ConfigError` naming ``distill_beta`` / ``distill_T`` and the fix."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ConfigError("distill_beta", f"{beta!r} is not a number.", "use a weight in [0, 1] (0: plain cross-entropy, 1: teacher only).") from None
    if not (0.0 <= b <= 1.0):  # NaN fails too
        raise ConfigError("distill_beta", f"{b} is outside [0, 1].", "use a weight in [0, 1] (0: plain cross-entropy, 1: teacher only).")
    try:
        t = float(T)
    except (TypeError, ValueError):
        raise ConfigError("distill_T", f"{T!r} is not a number.", "use a temperature > 0 (1 to 8 is usual; 4 is common).") from None
    if not (t > 0.0) or math.isinf(t):
        raise ConfigError("distill_T", f"temperature {t} must be a finite number > 0.", "use a temperature > 0 (1 to 8 is usual; 4 is common).")
    return b, t


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, beta: float, T: float) -> torch.Tensor:
    """``(1 - beta) * CE(student, targets) + beta * T^2 * KL(softmax(teacher/T) || softmax(student/T))``.

    Args:
        student_logits: (N, classes), with gradients.
        teacher_logits: (N, classes); detached here (the teacher is not trained).
        targets: (N,) int64 class labels.
        beta: weight of the teacher's term in [0, 1]; ``0`` is plain cross-entropy.
        T: softmax temperature > 0.

    Returns:
        A scalar tensor (batch mean).

    Raises:
        ConfigError: ``distill_beta`` outside [0, 1], ``distill_T`` <= 0, or logits of other shapes.
    """
    import torch.nn.functional as F

    b, t = check_distill_params(beta, T)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ConfigError("distill", f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ.", "distill from a teacher with the same classes, on the same batch.")
    ce = F.cross_entropy(student_logits, targets)
    if b == 0.0:
        return ce
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits.detach() / t, dim=1), reduction="batchmean", log_target=True)
    return (1.0 - b) * ce + b * t * t * kl


@dataclass
class DistillResult:
    """What :func:`distill` did: the mean loss of each epoch (``losses[0]`` is the first), and its settings."""

    losses: list[float]
    steps: int
    settings: dict[str, Any] = field(default_factory=dict)


def _device_of(model: Any) -> torch.device:
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def distill(
    student: Any,
    teacher: Any,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epochs: int = 1,
    lr: float | None = None,
    beta: float = 0.5,
    T: float = 4.0,
    *,
    optimizer: str = "adam",
    optimizer_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> DistillResult:
    """Fine-tune ``student`` in place for ``epochs`` passes over ``loader`` with :func:`distillation_loss`
    against ``teacher`` (eval mode, no gradients; both restored to their modes afterwards).

    Args:
        student: the compressed ``torch.nn.Module`` (its weights are updated).
        teacher: a ``torch.nn.Module`` with the same classes (or any callable returning logits).
        loader: re-iterable ``(x, y)`` batches, e.g. a ``DataLoader`` over the training split
            (shuffling is the loader's; seed it for a reproducible run).
        epochs: passes over ``loader`` (>= 1).
        lr: learning rate (default: the optimizer's hwtune default, adam 0.001, sgd 0.05).
        beta, T: as :func:`distillation_loss`.
        optimizer: an hwtune optimizer name (``sgd``, ``adam``, ...: :data:`hwtune.train.OPTIMIZERS`).
        optimizer_params: its hwtune params (``momentum``, ``weight_decay``, ``clip_norm``, ...).
        seed: ``torch.manual_seed`` before the first step (dropout masks).
        device: where to train (default: the student's device); the teacher and batches are moved there.

    Raises:
        ConfigError: bad ``distill_beta`` / ``distill_T`` / ``distill_epochs``, an unknown optimizer
            or param, an empty loader.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    import torch

    from hwtune.train import build_optimizer, resolve_training

    b, t = check_distill_params(beta, T)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError("distill_epochs", f"{epochs!r} is not a positive integer.", "use 1 or more fine-tuning epochs.")
    plan = resolve_training({"optimizer": optimizer, **({"lr": lr} if lr is not None else {}), **dict(optimizer_params or {})}, field="distill")
    dev = torch.device(device) if device is not None else _device_of(student)
    student.to(dev)
    if hasattr(teacher, "to"):
        teacher.to(dev)
    torch.manual_seed(seed)
    opt = build_optimizer(plan, student.parameters())
    clip = float(getattr(plan, "clip_norm", 0.0) or 0.0)
    was_s, was_t = bool(getattr(student, "training", True)), bool(getattr(teacher, "training", False))
    student.train()
    if hasattr(teacher, "eval"):
        teacher.eval()
    losses: list[float] = []
    steps = 0
    try:
        for epoch in range(epochs):
            total, n = 0.0, 0
            for xb, yb in loader:
                xb, yb = xb.to(dev), yb.to(dev)
                with torch.no_grad():
                    tl = teacher(xb)
                loss = distillation_loss(student(xb), tl, yb, b, t)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"distillation loss became {float(loss)} at epoch {epoch + 1}, step {steps + 1}; lower the learning rate (lr) or the temperature (distill_T).")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(student.parameters(), clip)
                opt.step()
                total += float(loss.detach()) * len(yb)
                n += len(yb)
                steps += 1
            if n == 0:
                raise ConfigError("distill", "the loader gave no batches.", "pass (x, y) batches of the training split (a list or a DataLoader that can be iterated again).")
            losses.append(total / n)
    finally:
        student.train(was_s)
        if hasattr(teacher, "train"):
            teacher.train(was_t)
    settings = {"optimizer": plan.optimizer, "lr": plan.lr, "beta": b, "T": t, "epochs": epochs, "seed": seed, "device": str(dev)}
    return DistillResult(losses, steps, settings)
