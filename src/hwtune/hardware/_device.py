"""Devices a model is measured on; each describes itself for the report."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any, Iterator

from hwtune.exceptions import ConfigError

__all__ = ["CPUDevice", "available_cpu_count", "cpu_model_name", "parse_device"]


def available_cpu_count() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class CPUDevice:
    """This machine's CPU with a fixed number of torch threads.

    Attributes:
        threads: intra-op threads used while measuring (and training); fixed and recorded
            because latency depends on it. ``None`` means every CPU this process may use.
    """

    threads: int | None = None

    @property
    def kind(self) -> str:
        return "cpu"

    @property
    def torch_device(self) -> str:
        return "cpu"

    def resolved_threads(self) -> int:
        return self.threads or available_cpu_count()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Set torch's thread count for the duration of a measurement or training."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.resolved_threads())
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "type": "cpu",
            "model": cpu_model_name(),
            "threads": self.resolved_threads(),
            "cpus_available": available_cpu_count(),
            "torch": torch.__version__,
            "host": platform.node(),
        }

    def to_spec(self) -> str:
        return "cpu" if self.threads is None else f"cpu:{self.threads}"


def parse_device(spec: str | None, threads: int | None = None, field: str = "device") -> CPUDevice:
    """Parse ``"cpu"`` or ``"cpu:<threads>"``; explicit ``threads`` wins."""
    spec = (spec or "cpu").strip().lower()
    kind, _, rest = spec.partition(":")
    if kind != "cpu":
        raise ConfigError(
            field,
            f"unknown or unsupported device {spec!r}.",
            "use 'cpu' or 'cpu:<threads>' (NVIDIA GPUs arrive with the hardware-measurement subsystem).",
        )
    if rest and threads is None:
        if not rest.isdigit() or int(rest) < 1:
            raise ConfigError(field, f"thread count {rest!r} is not a positive integer.", "write e.g. 'cpu:1'.")
        threads = int(rest)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{field}.threads", f"must be a positive integer, got {threads!r}.")
    if threads is not None and threads > available_cpu_count():
        raise ConfigError(f"{field}.threads", f"{threads} threads but only {available_cpu_count()} CPUs are available.", f"use at most {available_cpu_count()}.")
    return CPUDevice(threads)
