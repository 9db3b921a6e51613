"""The built-in trainer: searchable optimizers, schedules, adaptive rates and regularisation on
in-memory tensors, device speed-ups, optional DistributedDataParallel, one validation report per epoch.

What a trial's params choose is described in :mod:`hwtune.train._training` (the table of params),
:mod:`~hwtune.train._optim`, :mod:`~hwtune.train._schedules`, :mod:`~hwtune.train._adaptive` and
:mod:`~hwtune.train._augment`; the switches that are not searched (AMP, channels-last, compile,
data placement, DDP) in :mod:`~hwtune.train._speedups`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from hwtune.exceptions import NonFiniteLossError
from hwtune.train._speedups import TrainerOptions, choose_speedups
from hwtune.train._training import TrainingPlan

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from hwtune.train._data import Dataset

__all__ = ["TrainResult", "fit", "dataset_tensors", "evaluate_error", "EpochReporter", "TrainerOptions"]

EpochReporter = Callable[[int, float], None]
"""Called after each epoch with (epoch starting at 1, validation error); may raise to stop training
(``optuna.TrialPruned`` when the study's pruner stops the trial)."""

_SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@dataclass(frozen=True)
class TrainResult:
    """Metrics of one training run (errors are shares in [0, 1]).

    Attributes:
        settings: what the run did besides its params: the resolved training plan, the device
            speed-ups chosen (and probe timings), thread counts, DDP processes, the rate the range
            test picked, params that were ignored. Plain data, for the trial's records.
        lr_history: the learning rate after every step (only when asked for with ``record_lr``).
    """

    error: float
    test_error: float
    train_loss: float
    epochs: int
    train_time_s: float
    settings: dict[str, Any] = field(default_factory=dict, compare=False)
    lr_history: tuple[float, ...] | None = field(default=None, compare=False, repr=False)

    def metrics(self) -> dict[str, float]:
        out = {
            "error": self.error,
            "accuracy": 1.0 - self.error,
            "test_error": self.test_error,
            "train_loss": self.train_loss,
            "epochs": float(self.epochs),
            "train_time_s": self.train_time_s,
        }
        for key in ("train_threads", "train_images_per_s", "lr_found"):
            v = self.settings.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[key] = float(v)
        return out


def _count_wrong(model: "nn.Module", x: "torch.Tensor", y: "torch.Tensor", batch_size: int, device: "torch.device | None",
                 autocast_dtype: Any, channels_last: bool) -> int:
    import torch

    wrong = torch.zeros((), dtype=torch.long, device=device if device is not None else x.device)
    dev_type = (device or x.device).type
    with torch.inference_mode(), torch.autocast(dev_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        for i in range(0, len(y), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if device is not None and xb.device != device:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if channels_last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            wrong += (model(xb).argmax(1) != yb).sum()
    return int(wrong)


def evaluate_error(
    model: "nn.Module",
    x: "torch.Tensor",
    y: "torch.Tensor",
    batch_size: int = 1024,
    *,
    device: "torch.device | str | None" = None,
    autocast_dtype: Any = None,
    channels_last: bool = False,
) -> float:
    """Share of misclassified samples.

    Args:
        x: inputs (N, ...); y: labels (N,). Batches are moved to ``device`` when given.
        autocast_dtype: evaluate under autocast to this dtype (``None``: float32).
    """
    import torch

    model.eval()
    dev = torch.device(device) if device is not None else None
    return _count_wrong(model, x, y, batch_size, dev, autocast_dtype, channels_last) / max(1, len(y))


def dataset_tensors(data: "Dataset") -> dict[str, "torch.Tensor"]:
    """The six arrays of ``data`` as CPU tensors (float32 inputs, int64 labels), sharing memory where possible."""
    import torch

    return {
        k: torch.as_tensor(np.ascontiguousarray(getattr(data, k)), dtype=torch.int64 if k.startswith("y") else torch.float32)
        for k in _SPLITS
    }


def _reinit(model: "nn.Module", seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    # Re-initialise from the seed: the model was built (and measured) before this call, with
    # whatever the global RNG held then, so its initial weights are not reproducible by themselves.
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def fit(
    model: "nn.Module",
    tensors: Mapping[str, "torch.Tensor"],
    plan: TrainingPlan,
    *,
    seed: int,
    device: "torch.device",
    reporter: EpochReporter | None,
    options: TrainerOptions,
    rank: int = 0,
    world: int = 1,
    record_lr: bool = False,
) -> TrainResult | None:
    """The training loop shared by single-process and DDP training (returns ``None`` on ranks > 0).

    ``tensors`` holds the six splits as CPU tensors (see :func:`dataset_tensors`). With ``world > 1``
    a ``torch.distributed`` process group must be initialised: every rank walks the same shuffled
    order and trains on its share of each global batch, gradients are averaged by DDP with weights that
    make the update equal to the single-process one, and evaluation is sharded.
    """
    start = time.perf_counter()
    ddp = world > 1
    with warnings.catch_warnings():
        if ddp:
            # a convolution with one input channel yields weight gradients whose strides differ from
            # DDP's bucket views; harmless (DDP copies them), but it warns on every step
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        return _fit(model, tensors, plan, seed=seed, device=device, reporter=reporter, options=options,
                    rank=rank, world=world, record_lr=record_lr, start=start)


def _fit(
    model: "nn.Module",
    tensors: Mapping[str, "torch.Tensor"],
    plan: TrainingPlan,
    *,
    seed: int,
    device: "torch.device",
    reporter: EpochReporter | None,
    options: TrainerOptions,
    rank: int,
    world: int,
    record_lr: bool,
    start: float,
) -> TrainResult | None:
    import torch
    import torch.nn.functional as F

    from hwtune.train._optim import build_optimizer, get_lr
    from hwtune.train._schedules import LRController

    ddp = world > 1
    if ddp:
        import torch.distributed as dist
    dev = device
    if dev.type == "cuda" and dev.index is None:  # "cuda" -> "cuda:<current>": tensors report their index
        dev = torch.device("cuda", torch.cuda.current_device())
    xtr, ytr = tensors["x_train"], tensors["y_train"]
    n_total = len(ytr)
    B = plan.batch_size
    # bold driver: a fixed held-out batch taken out of the training split
    held: tuple[torch.Tensor, torch.Tensor] | None = None
    if plan.schedule == "bold_driver":
        h = max(1, min(512, n_total // 10))
        perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed + 7919))
        keep = perm[h:].sort().values
        held = (xtr[perm[:h]], ytr[perm[:h]])
        xtr, ytr = xtr[keep], ytr[keep]
    n = len(ytr)
    data_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    model.to(dev)
    local_b = max(1, math.ceil(min(B, n) / world))
    speed = choose_speedups(model, xtr[:local_b].to(dev), data_bytes, options, dev)
    if ddp:
        box: list[Any] = [speed]
        dist.broadcast_object_list(box, src=0)  # every rank trains the same way as rank 0 decided
        speed = box[0]
    _reinit(model, seed)
    gen = torch.Generator().manual_seed(seed)

    def place(t: torch.Tensor) -> torch.Tensor:
        if speed.data_on_device:
            return t.to(dev)
        return t.pin_memory() if dev.type == "cuda" else t

    xtr, ytr = place(xtr), place(ytr)
    xva, yva, xte, yte = (place(tensors[k]) for k in ("x_val", "y_val", "x_test", "y_test"))
    if held is not None:
        held = (held[0].to(dev), held[1].to(dev))
    cl = speed.channels_last
    if cl:
        model.to(memory_format=torch.channels_last)
    amp_dtype = speed.amp_dtype

    def autocast() -> Any:
        return torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()

    ls = plan.label_smoothing
    aug = None
    if plan.augment != "none":
        from hwtune.train._augment import Augmenter

        aug = Augmenter(plan.augment, plan.crop_padding, dev, seed + 1 + rank)

    def to_dev(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if xb.device != dev:
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        if cl and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    steps_per_epoch = math.ceil(n / B)
    settings: dict[str, Any] = {"plan": plan.describe(), "speedups": speed.describe(), "ddp_processes": world,
                                "train_threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}
    if plan.ignored:
        settings["ignored_params"] = list(plan.ignored)

    # learning-rate range test: sweep on the eager, unwrapped model, then restore everything
    lr = plan.lr
    if plan.lr_find:
        from hwtune.train._adaptive import lr_range_test

        saved = copy.deepcopy(model.state_dict())
        opt = build_optimizer(plan, model.parameters(), lr)
        scaler0 = torch.amp.GradScaler(dev.type) if speed.grad_scaler else None
        rgen = torch.Generator().manual_seed(seed + 104729)
        state = {"order": torch.randperm(n, generator=rgen), "pos": 0}
        model.train()

        def range_step() -> float:
            if state["pos"] + local_b > n:
                state["order"], state["pos"] = torch.randperm(n, generator=rgen), 0
            idx = state["order"][state["pos"] : state["pos"] + local_b]
            state["pos"] += local_b
            xb, yb = to_dev(xtr[idx.to(xtr.device)], ytr[idx.to(ytr.device)])
            with autocast():
                loss = F.cross_entropy(model(xb), yb, label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            if scaler0 is not None:
                scaler0.scale(loss).backward()
                scaler0.unscale_(opt)
            else:
                loss.backward()
            if plan.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), plan.clip_norm)
            if scaler0 is not None:
                scaler0.step(opt)
                scaler0.update()
            else:
                opt.step()
            return float(loss.detach())

        lr, _ = lr_range_test(range_step, opt, steps=min(100, max(20, 3 * steps_per_epoch)), rule=plan.lr_find_rule)
        model.load_state_dict(saved)
        if ddp:
            box = [lr]
            dist.broadcast_object_list(box, src=0)
            lr = box[0]
        settings["lr_found"] = lr

    net: Any = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if speed.compile:
        net = torch.compile(net, mode=None if speed.compile == "default" else speed.compile)
    eval_net = net if (speed.compile and not ddp) else model
    opt = build_optimizer(plan, model.parameters(), lr)
    scaler = torch.amp.GradScaler(dev.type) if speed.grad_scaler else None

    def heldout_loss() -> float:
        assert held is not None
        model.eval()
        with torch.no_grad(), autocast():
            xb, yb = to_dev(*held)
            v = float(F.cross_entropy(model(xb), yb))
        model.train()
        return v

    ctrl = LRController(plan, opt, steps_per_epoch, heldout_loss if held is not None else None, record=record_lr)
    unscale = plan.clip_norm > 0 or plan.schedule == "hypergradient"
    # NaN / inf losses: checked every step on the CPU, at the end of each epoch on a GPU (a check
    # there waits for the device, which costs more than it saves), across all ranks with DDP
    host_loss = dev.type == "cpu" and not ddp
    params_list = [p for p in model.parameters() if p.requires_grad]

    def count_wrong(x: torch.Tensor, y: torch.Tensor) -> float:
        if not ddp:
            eval_net.eval()
            return _count_wrong(eval_net, x, y, 1024, dev, amp_dtype, cl) / max(1, len(y))
        eval_net.eval()
        w = torch.tensor([_count_wrong(eval_net, x[rank::world], y[rank::world], 1024, dev, amp_dtype, cl)], dtype=torch.float64, device=dev)
        dist.all_reduce(w)
        return float(w.item()) / max(1, len(y))

    last_loss = math.nan
    val_error = math.nan
    epochs_run = 0
    for epoch in range(1, plan.epochs + 1):
        net.train()
        order = torch.randperm(n, generator=gen)
        if order.device != xtr.device:
            order = order.to(xtr.device)
        total = torch.zeros((), dtype=torch.float32, device=dev)
        total_f = 0.0
        for s, i in enumerate(range(0, n, B)):
            idx = order[i : i + B]
            nb = len(idx)
            if ddp:
                idx = idx[rank::world]
            xb, yb = to_dev(xtr[idx], ytr[idx])
            if aug is not None:
                xb = aug(xb)
            with autocast():
                out = net(xb)
                if ddp:  # DDP averages over ranks: weight so that the update is the full batch's mean
                    loss = F.cross_entropy(out, yb, label_smoothing=ls, reduction="sum") * (world / nb)
                else:
                    loss = F.cross_entropy(out, yb, label_smoothing=ls)
            if host_loss:  # on the CPU reading the loss costs nothing: check every step
                lv = loss.item()
                if not math.isfinite(lv):
                    raise NonFiniteLossError(
                        f"loss became {lv} at epoch {epoch}, step {s + 1} (lr={get_lr(opt):g}); "
                        "a lower learning rate usually fixes this"
                    )
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if unscale:
                    scaler.unscale_(opt)
            else:
                loss.backward()
            if plan.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(params_list, plan.clip_norm)
            ctrl.before_step()
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            ctrl.after_step()
            if host_loss:
                total_f += lv * nb
            else:  # on a GPU (or with DDP) accumulate on the device, without waiting for it
                total.add_(loss.detach(), alpha=nb / world)
        if ddp:
            dist.all_reduce(total)
        last_loss = (total_f if host_loss else float(total.item())) / n
        if not math.isfinite(last_loss):
            raise NonFiniteLossError(
                f"loss became {last_loss} in epoch {epoch} (lr={get_lr(opt):g}); a lower learning rate usually fixes this"
            )
        val_error = count_wrong(xva, yva)
        epochs_run = epoch
        ctrl.after_epoch(val_error)
        if reporter is not None or ddp:
            stop_exc: BaseException | None = None
            if reporter is not None and rank == 0:
                try:
                    reporter(epoch, val_error)
                except BaseException as e:  # pruned (or interrupted): stop every rank, then re-raise
                    stop_exc = e
            if ddp:
                flag = torch.tensor([1.0 if stop_exc is not None else 0.0], device=dev)
                dist.broadcast(flag, src=0)
                if flag.item() > 0 and stop_exc is None:
                    return None
            if stop_exc is not None:
                raise stop_exc
    test_error = count_wrong(xte, yte)
    elapsed = time.perf_counter() - start
    if rank != 0:
        return None
    settings["train_images_per_s"] = n * epochs_run / elapsed if elapsed > 0 else 0.0
    if plan.schedule != "constant" or plan.warmup_epochs > 0:
        settings["final_lr"] = get_lr(opt)
    return TrainResult(val_error, test_error, last_loss, epochs_run, elapsed, settings,
                       tuple(ctrl.history) if ctrl.history is not None else None)
