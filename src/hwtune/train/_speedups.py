"""Device speed-ups of the trainer, chosen automatically, each with a switch to turn it off.

==================  ======================================================================================
switch (default)    what ``auto`` does
==================  ======================================================================================
data_on_device      keep the whole data set as tensors on the device when it fits (CPU: always; CUDA:
(auto)              when it takes less than half of the free GPU memory); otherwise batches are gathered
                    on the host (pinned memory) and copied asynchronously. Never per-sample Python work.
amp (auto)          autocast to bf16 (CUDA without bf16: fp16 with a gradient scaler) when a short probe
                    measures a training step at least 10 % faster than in float32. On the CPU this is
                    tried only where the CPU has native bf16 (AVX512-BF16 / AMX). Small networks on a
                    GPU are often launch-bound, and then float32 stays.
channels_last       for networks with 2-D convolutions, the probe also times channels-last (with and without
(auto)              AMP); the fastest variant is used when it is at least 10 % faster than the plain one.
compile (false)     ``torch.compile`` the model (``true`` or a mode name such as ``max-autotune``).
==================  ======================================================================================

Probes time a few forward+backward steps on a batch of the real batch size before the weights are
re-initialised, so they do not change what is trained; their decisions are cached per architecture,
batch size and device within a process and recorded with the trial (``TrainResult.settings``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwtune.exceptions import ConfigError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

__all__ = ["TrainerOptions", "SpeedPlan", "choose_speedups", "cpu_has_native_bf16"]

_AMP = ("auto", "off", "bf16", "fp16")
PROBE_MIN_GAIN = 1.10
"""A probed speed-up is used only when the step is at least this many times faster."""


def _tri(v: Any, name: str, field: str) -> str:
    if v is True or v == "on":
        return "on"
    if v is False or v == "off" or v is None:
        return "off"
    if v == "auto":
        return "auto"
    raise ConfigError(f"{field}.{name}", f"expected auto, true or false, got {v!r}.", f"write {name}: auto, true or false.")


@dataclass(frozen=True)
class TrainerOptions:
    """Switches of the built-in trainer (study file: the ``trainer:`` section). Not searched.

    Attributes:
        amp: ``auto``, ``off`` (false), ``bf16`` or ``fp16`` (CUDA only).
        channels_last: ``auto``, true or false.
        compile: false, true, or a ``torch.compile`` mode (``default``, ``reduce-overhead``, ``max-autotune``).
        data_on_device: ``auto``, true or false.
        ddp_processes: train one trial with this many DistributedDataParallel processes (1: no DDP).
            On CUDA each process takes one GPU (``cuda:<index>`` .. ``cuda:<index + n - 1>``).
        ddp_backend: ``auto`` (nccl on CUDA, gloo on CPU), ``gloo`` or ``nccl``.
        ddp_timeout_s: how long the processes wait for each other before giving up.
    """

    amp: str | bool = "auto"
    channels_last: str | bool = "auto"
    compile: bool | str = False
    data_on_device: str | bool = "auto"
    ddp_processes: int = 1
    ddp_backend: str = "auto"
    ddp_timeout_s: float = 300.0
    where: str = field(default="trainer", compare=False, repr=False)

    def __post_init__(self) -> None:
        f = self.where
        amp = {True: "auto", False: "off", None: "off"}.get(self.amp, self.amp) if isinstance(self.amp, (bool, type(None))) else self.amp
        if amp not in _AMP:
            raise ConfigError(f"{f}.amp", f"unknown mixed-precision mode {self.amp!r}.", f"use one of: {', '.join(_AMP)}.")
        object.__setattr__(self, "amp", amp)
        object.__setattr__(self, "channels_last", _tri(self.channels_last, "channels_last", f))
        object.__setattr__(self, "data_on_device", _tri(self.data_on_device, "data_on_device", f))
        if not isinstance(self.compile, (bool, str)) or (isinstance(self.compile, str) and self.compile not in ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")):
            raise ConfigError(f"{f}.compile", f"expected true, false or a torch.compile mode, got {self.compile!r}.", "write compile: false, true, or a mode such as max-autotune.")
        if isinstance(self.ddp_processes, bool) or not isinstance(self.ddp_processes, int) or self.ddp_processes < 1:
            raise ConfigError(f"{f}.ddp_processes", f"must be a whole number >= 1, got {self.ddp_processes!r}.", "use 1 for one process, 2 or more for DistributedDataParallel.")
        if self.ddp_backend not in ("auto", "gloo", "nccl"):
            raise ConfigError(f"{f}.ddp_backend", f"unknown backend {self.ddp_backend!r}.", "use auto, gloo or nccl.")
        if not (self.ddp_timeout_s > 0):
            raise ConfigError(f"{f}.ddp_timeout_s", f"must be a positive number of seconds, got {self.ddp_timeout_s!r}.")

    @classmethod
    def from_mapping(cls, values: Any, field: str = "trainer") -> "TrainerOptions":
        """From a dict (study file) or pass an instance through; ``None`` gives the defaults."""
        if values is None:
            return cls(where=field)
        if isinstance(values, TrainerOptions):
            return values
        if not isinstance(values, dict):
            raise ConfigError(field, f"expected a mapping of switches, got {values!r}.")
        unknown = set(values) - {"amp", "channels_last", "compile", "data_on_device", "ddp_processes", "ddp_backend", "ddp_timeout_s"}
        if unknown:
            raise ConfigError(f"{field}.{sorted(unknown)[0]}", "unknown trainer switch.", "use amp, channels_last, compile, data_on_device, ddp_processes, ddp_backend, ddp_timeout_s.")
        return cls(**values, where=field)


@dataclass(frozen=True)
class SpeedPlan:
    """What the trainer does on the device for one run (recorded with the trial).

    Attributes:
        amp_dtype: autocast dtype (``None``: float32).
        grad_scaler: whether fp16 gradient scaling is used.
        channels_last: convert the model and batches to channels-last.
        data_on_device: whole data set on the device.
        compile: ``torch.compile`` mode (``None``: not compiled).
        probe_ms: median step times of the probed variants, in ms.
    """

    amp_dtype: Any = None
    grad_scaler: bool = False
    channels_last: bool = False
    data_on_device: bool = True
    compile: str | None = None
    probe_ms: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype is not None else "off",
            "grad_scaler": self.grad_scaler,
            "channels_last": self.channels_last,
            "data_on_device": self.data_on_device,
            "compile": self.compile or False,
            **({"probe_ms": dict(self.probe_ms)} if self.probe_ms else {}),
        }


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 flags in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


_PROBE_CACHE: dict[Any, tuple[bool, bool, dict[str, float]]] = {}


def _probe(model: "nn.Module", x: "torch.Tensor", variants: list[tuple[str, Any, bool]], rounds: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median ms of a forward+backward step of ``model`` on ``x`` for each (name, amp dtype, channels_last).

    The variants are timed in interleaved rounds (one step of each per round), so that a drift of
    the machine (clocks ramping up, caches warming, a neighbour's load) does not favour the variant
    timed last.
    """
    import torch
    import torch.nn.functional as F

    dev = x.device
    y = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    inputs = {cl: (x.contiguous(memory_format=torch.channels_last) if cl else x.contiguous()) for _, _, cl in variants}
    model.train()
    for r in range(warmup + rounds):
        for name, dtype, cl in variants:
            model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(inputs[cl]).float(), y)
            loss.backward()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
    model.to(memory_format=torch.contiguous_format)
    return {name: 1000 * sorted(t)[len(t) // 2] for name, t in times.items()}


def choose_speedups(model: "nn.Module", example: "torch.Tensor", data_bytes: int, options: TrainerOptions, device: "torch.device") -> SpeedPlan:
    """Decide AMP, channels-last, data placement and compilation for training ``model`` on ``device``.

    Args:
        model: the network (on ``device``); probes run forward+backward passes on it (the trainer
            re-initialises the weights afterwards).
        example: one training batch at the real batch size, on ``device``: (B, ...).
        data_bytes: size of the whole data set as float32 tensors.
    """
    import torch

    cuda = device.type == "cuda"
    # data placement
    if options.data_on_device == "auto":
        if cuda:
            free, _ = torch.cuda.mem_get_info(device)
            on_device = data_bytes < 0.5 * free
        else:
            on_device = True
    else:
        on_device = options.data_on_device == "on"
    # mixed precision
    amp_dtype: Any = None
    probe_amp = False
    if options.amp == "bf16":
        amp_dtype = torch.bfloat16
    elif options.amp == "fp16":
        if not cuda:
            raise ConfigError(f"{options.where}.amp", "fp16 autocast is for CUDA devices.", "use amp: bf16 or auto on the CPU.")
        amp_dtype = torch.float16
    elif options.amp == "auto":
        if cuda or cpu_has_native_bf16():
            probe_amp = True
    amp_candidate: Any = None
    if probe_amp:
        amp_candidate = torch.bfloat16 if (not cuda or torch.cuda.is_bf16_supported()) else torch.float16
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules()) and example.dim() == 4
    channels_last = options.channels_last == "on" and example.dim() == 4
    probe_cl = options.channels_last == "auto" and has_conv
    probe_ms: dict[str, float] = {}
    if probe_amp or probe_cl:
        key = (str(model), tuple(example.shape), str(device), torch.get_num_threads(), probe_amp, probe_cl, str(amp_dtype))
        if key not in _PROBE_CACHE:
            base_name = "fp32" if amp_dtype is None else str(amp_dtype).replace("torch.", "")
            amp_name = str(amp_candidate).replace("torch.", "")
            variants: list[tuple[str, Any, bool]] = [(base_name, amp_dtype, False)]
            if probe_amp:
                variants.append((amp_name, amp_candidate, False))
            if probe_cl:
                variants.append(("channels_last", amp_dtype, True))
            if probe_amp and probe_cl:
                variants.append((f"{amp_name}+channels_last", amp_candidate, True))
            ms = _probe(model, example, variants)
            best = min(variants, key=lambda v: ms[v[0]])
            if ms[best[0]] * PROBE_MIN_GAIN > ms[base_name]:
                best = variants[0]  # not clearly faster: keep the plain setting
            _PROBE_CACHE[key] = (best[1] is not amp_dtype, best[2], ms)
        use_amp, use_cl, probe_ms = _PROBE_CACHE[key]
        if use_amp:
            amp_dtype = amp_candidate
        channels_last = channels_last or use_cl
    comp = None if options.compile is False else ("default" if options.compile is True else str(options.compile))
    return SpeedPlan(amp_dtype, cuda and amp_dtype == torch.float16, channels_last, on_device, comp, probe_ms)
