"""``train_classifier``: the trainer's entry point, in this process (:func:`~hwtune.train._trainer.fit`)
or in several with DistributedDataParallel (:func:`~hwtune.train._ddp.train_ddp`).

Kept apart from both so that neither imports the other's caller: ``_ddp`` uses ``_trainer.fit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from hwtune.train._ddp import train_ddp
from hwtune.train._speedups import TrainerOptions
from hwtune.train._trainer import EpochReporter, TrainResult, dataset_tensors, fit
from hwtune.train._training import resolve_training

if TYPE_CHECKING:
    import torch.nn as nn

    from hwtune.train._data import Dataset

__all__ = ["train_classifier"]


def train_classifier(
    model: "nn.Module",
    data: "Dataset",
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    device: str = "cpu",
    reporter: EpochReporter | None = None,
    options: TrainerOptions | Mapping[str, Any] | None = None,
    strict: bool = True,
    record_lr: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` with the trial's training ``params``; return validation and test error.

    Params read (see ``hwtune.train.TRAINING_SPECS`` for ranges): ``epochs`` (5), ``batch_size`` (64);
    ``optimizer`` (sgd) with ``lr``, ``weight_decay``, ``clip_norm`` and its own params; ``schedule``
    (constant) with its own params, ``warmup_epochs``, ``lr_find``; ``label_smoothing``, ``augment``,
    ``crop_padding``. ``dropout`` and the architecture params are the model builder's.

    The weights are re-initialised from ``seed`` first, so a run is deterministic on the CPU for a
    given ``seed`` (and the same automatic speed-up decisions). Data stay tensors (on the device
    when they fit): no per-sample Python work.

    Args:
        reporter: called after every epoch with (epoch, validation error); ``plateau`` also steps on it.
        options: the trainer's switches (:class:`TrainerOptions` or a dict of them).
        strict: a param that belongs to another optimizer / schedule than the chosen one is an error
            (``False``: ignored, as the study loop does for params shared by a searched choice).
        record_lr: keep the learning rate after every step in ``TrainResult.lr_history``.

    Raises:
        ConfigError: a param is unknown to its choice, out of range, or of another optimizer.
        NonFiniteLossError: the loss became NaN or infinite (the study records the trial failed).
    """
    import torch

    opts = TrainerOptions.from_mapping(options) if not isinstance(options, TrainerOptions) else options
    plan = resolve_training(params, strict=strict)
    if opts.ddp_processes > 1:
        return train_ddp(model, data, plan, seed=seed, device=device, reporter=reporter, options=opts, record_lr=record_lr)
    return fit(model, dataset_tensors(data), plan, seed=seed, device=torch.device(device), reporter=reporter, options=opts, record_lr=record_lr)
