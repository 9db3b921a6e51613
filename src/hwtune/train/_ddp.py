"""Data parallelism: one trial trained by several processes with DistributedDataParallel.

``trainer: {ddp_processes: N}`` makes :func:`~hwtune.train.train_classifier` launch N-1 worker
processes (multiprocessing *spawn*) and take part itself as rank 0, so that the per-epoch reports go
to the study's pruner from the calling process. Backend: NCCL on CUDA (rank ``r`` uses GPU
``index + r``), gloo on the CPU (what the tests and CI use).

Every rank re-initialises the same weights from the trial's seed, walks the same shuffled order and
trains on its share (``rank::N``) of each global batch of ``batch_size``; each rank's loss is a sum
weighted by ``N / batch`` so that DDP's average of the gradients is exactly the gradient of the
global batch's mean loss, as in single-process training. Results therefore match single-process
training up to floating-point summation order (and except for batch-norm statistics, which are per
rank, and dropout masks). Evaluation is sharded and its counts summed. Decisions that must agree
(speed-ups, the range test's rate, stopping after a pruned report) come from rank 0.
"""

from __future__ import annotations

import copy
import socket
import time
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Mapping

from hwtune.exceptions import ConfigError, TrialFailure
from hwtune.train._speedups import TrainerOptions
from hwtune.train._training import TrainingPlan

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from hwtune.train._data import Dataset
    from hwtune.train._trainer import EpochReporter, TrainResult

__all__ = ["train_ddp"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _device_for_rank(device: "torch.device", rank: int) -> "torch.device":
    import torch

    if device.type == "cuda":
        return torch.device("cuda", (device.index or 0) + rank)
    return device


def _worker(
    rank: int, world: int, port: int, backend: str, model: "nn.Module", tensors: Mapping[str, "torch.Tensor"],
    plan: TrainingPlan, seed: int, device: str, options: TrainerOptions, threads: int, queue: Any,
) -> None:
    """Entry point of rank ``rank`` > 0 (a spawned process)."""
    import torch
    import torch.distributed as dist

    from hwtune.train._trainer import fit

    try:
        torch.set_num_threads(threads)
        dev = _device_for_rank(torch.device(device), rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        queue.put((rank, "ready", None))
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=options.ddp_timeout_s))
        try:
            fit(model, tensors, plan, seed=seed, device=dev, reporter=None, options=options, rank=rank, world=world)
        finally:
            dist.destroy_process_group()
        queue.put((rank, "done", None))
    except BaseException as e:  # report to rank 0, then exit non-zero
        queue.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"))
        raise SystemExit(1) from None


def train_ddp(
    model: "nn.Module",
    data: "Dataset",
    plan: TrainingPlan,
    *,
    seed: int,
    device: str,
    reporter: "EpochReporter | None",
    options: TrainerOptions,
    record_lr: bool = False,
) -> "TrainResult":
    """Train with ``options.ddp_processes`` DDP processes; this process is rank 0 (see the module docstring).

    Raises:
        ConfigError: not enough GPUs, or already inside a process group.
        TrialFailure: a worker process failed (its error is in the message).
    """
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    from hwtune.train._trainer import dataset_tensors, fit

    world = options.ddp_processes
    dev = torch.device(device)
    backend = options.ddp_backend if options.ddp_backend != "auto" else ("nccl" if dev.type == "cuda" else "gloo")
    f = f"{options.where}.ddp_processes"
    if dev.type == "cuda" and torch.cuda.device_count() < (dev.index or 0) + world:
        raise ConfigError(f, f"{world} processes need {world} GPUs from {dev}, but {torch.cuda.device_count()} are visible.", "lower ddp_processes or make more GPUs visible.")
    if dev.type != "cuda" and backend == "nccl":
        raise ConfigError(f"{options.where}.ddp_backend", "nccl needs CUDA devices.", "use ddp_backend: gloo (or auto) on the CPU.")
    if dist.is_available() and dist.is_initialized():
        raise ConfigError(f, "this process is already part of a torch.distributed process group.", "use ddp_processes: 1 when hwtune itself runs under torchrun.")
    tensors = {k: t.share_memory_() for k, t in dataset_tensors(data).items()}
    model = model.cpu()
    port = _free_port()
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    threads = torch.get_num_threads()
    # one private copy of the model per worker: torch shares tensors passed to a process, and the
    # workers' training must not write into this process's (or each other's) weights
    procs = [
        ctx.Process(target=_worker, args=(r, world, port, backend, copy.deepcopy(model), tensors, plan, seed, str(dev), options, threads, queue), daemon=True)
        for r in range(1, world)
    ]
    for p in procs:
        p.start()
    errors: list[str] = []

    def drain() -> list[tuple[int, str, Any]]:
        msgs = []
        while not queue.empty():
            msgs.append(queue.get())
        errors.extend(m[2] for m in msgs if m[1] == "error")
        return msgs

    try:
        # wait until every worker has started (a worker that dies on start-up must not leave rank 0 waiting)
        ready: set[int] = set()
        deadline = time.monotonic() + options.ddp_timeout_s
        while len(ready) < world - 1:
            ready.update(r for r, what, _ in drain() if what == "ready")
            if errors or any(not p.is_alive() and p.exitcode not in (None, 0) for p in procs):
                raise TrialFailure(f"a DDP worker failed on start-up: {errors[0] if errors else 'exit code ' + str([p.exitcode for p in procs])}")
            if time.monotonic() > deadline:
                raise TrialFailure(f"DDP workers did not start within {options.ddp_timeout_s:g} s")
            time.sleep(0.01)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=world,
                                timeout=timedelta(seconds=options.ddp_timeout_s))
        try:
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            result = fit(model, tensors, plan, seed=seed, device=dev, reporter=reporter, options=options, rank=0, world=world, record_lr=record_lr)
        finally:
            dist.destroy_process_group()
        for p in procs:
            p.join(timeout=options.ddp_timeout_s)
        drain()
        if errors:
            raise TrialFailure(f"a DDP worker failed: {errors[0]}")
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
        drain()
        raise
    if result is None:  # pragma: no cover - rank 0 always returns a result or raises
        raise TrialFailure("DDP training returned no result")
    return result
