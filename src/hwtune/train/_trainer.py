"""The built-in trainer: SGD on in-memory tensors, one validation report per epoch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from hwtune.exceptions import NonFiniteLossError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from hwtune.train._data import Dataset

__all__ = ["TrainResult", "train_classifier", "evaluate_error", "EpochReporter"]

EpochReporter = Callable[[int, float], None]
"""Called after each epoch with (epoch starting at 1, validation error); may raise to stop training."""


@dataclass(frozen=True)
class TrainResult:
    """Metrics of one training run (errors are shares in [0, 1])."""

    error: float
    test_error: float
    train_loss: float
    epochs: int
    train_time_s: float

    def metrics(self) -> dict[str, float]:
        return {
            "error": self.error,
            "accuracy": 1.0 - self.error,
            "test_error": self.test_error,
            "train_loss": self.train_loss,
            "epochs": float(self.epochs),
            "train_time_s": self.train_time_s,
        }


def evaluate_error(model: "nn.Module", x: "torch.Tensor", y: "torch.Tensor", batch_size: int = 1024) -> float:
    """Share of misclassified samples."""
    import torch

    model.eval()
    wrong = 0
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            wrong += int((model(x[i : i + batch_size]).argmax(1) != y[i : i + batch_size]).sum())
    return wrong / max(1, len(y))


def train_classifier(
    model: "nn.Module",
    data: "Dataset",
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    device: str = "cpu",
    reporter: EpochReporter | None = None,
) -> TrainResult:
    """Train ``model`` with SGD on ``data`` and return validation and test error.

    Params read: ``lr`` (0.05), ``momentum`` (0.9), ``weight_decay`` (0), ``batch_size`` (64),
    ``epochs`` (5). Data stay tensors on ``device`` (no per-sample Python work). The weights are
    re-initialised from ``seed`` first, so results are deterministic on CPU for a given ``seed``.

    Raises:
        NonFiniteLossError: when the loss becomes NaN or infinite (the study records the trial failed).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    # Re-initialise from the seed: the model was built (and measured) before this call, with
    # whatever the global RNG held then, so its initial weights are not reproducible by themselves.
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    gen = torch.Generator().manual_seed(seed)
    lr = float(params.get("lr", 0.05))
    epochs = int(params.get("epochs", 5))
    batch_size = int(params.get("batch_size", 64))
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=float(params.get("momentum", 0.9)),
        weight_decay=float(params.get("weight_decay", 0.0)),
    )
    to = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=device)  # noqa: E731
    xtr, ytr = to(data.x_train, torch.float32), to(data.y_train, torch.int64)
    xva, yva = to(data.x_val, torch.float32), to(data.y_val, torch.int64)
    xte, yte = to(data.x_test, torch.float32), to(data.y_test, torch.int64)
    model.to(device)
    n = len(ytr)
    start = time.perf_counter()
    last_loss = math.nan
    val_error = math.nan
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at epoch {epoch}, step {i // batch_size + 1} (lr={lr:g}); "
                    "a lower learning rate usually fixes this"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last_loss = total / count
        val_error = evaluate_error(model, xva, yva)
        if reporter is not None:
            reporter(epoch, val_error)
    return TrainResult(val_error, evaluate_error(model, xte, yte), last_loss, epochs, time.perf_counter() - start)
