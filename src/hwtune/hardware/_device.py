"""Devices a model is measured on; each describes itself for the report."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any, Iterator

from hwtune.exceptions import ConfigError

__all__ = ["CPUDevice", "CUDADevice", "Device", "available_cpu_count", "cpu_model_name", "parse_device"]


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


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the duration of the block, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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

    def activate(self) -> contextlib.AbstractContextManager[None]:
        """Set torch's thread count for the duration of a measurement or training."""
        return torch_threads(self.resolved_threads())

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

    def sync(self) -> None:
        """Wait for queued work (nothing to wait for on the CPU)."""


@dataclass(frozen=True)
class CUDADevice:
    """An NVIDIA GPU by torch's CUDA index (which honours ``CUDA_VISIBLE_DEVICES``).

    Attributes:
        index: CUDA device index as torch numbers them (the n-th visible GPU).
        threads: host (CPU) threads torch uses meanwhile; ``None``: every CPU this process may use.
    """

    index: int = 0
    threads: int | None = None

    @property
    def kind(self) -> str:
        return "cuda"

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.index}"

    def resolved_threads(self) -> int:
        return self.threads or available_cpu_count()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make this GPU torch's current device and fix the host thread count meanwhile."""
        import torch

        with torch_threads(self.resolved_threads()), torch.cuda.device(self.index):
            yield

    def sync(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)

    def uuid(self) -> str | None:
        """The GPU's UUID as torch reports it (``None`` where this torch does not)."""
        import torch

        u = getattr(torch.cuda.get_device_properties(self.index), "uuid", None)
        return str(u) if u is not None else None

    def nvml(self) -> tuple[Any, Any]:
        """``(pynvml module, handle)`` of this GPU; raises ``NVMLUnavailable`` with the reason."""
        from hwtune.hardware._nvml import NVMLUnavailable, get_nvml, nvml_handle

        nv = get_nvml()
        key = (self.index, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if key not in _NVML_HANDLES:
            try:
                _NVML_HANDLES[key] = nvml_handle(nv, self.index, uuid=self.uuid())
            except Exception as e:  # noqa: BLE001
                raise NVMLUnavailable(f"no NVML handle for cuda:{self.index}: {e}") from None
        return nv, _NVML_HANDLES[key]

    def describe(self) -> dict[str, Any]:
        import torch

        from hwtune.hardware._nvml import NVMLUnavailable, describe_gpu

        props = torch.cuda.get_device_properties(self.index)
        d: dict[str, Any] = {
            "type": "cuda",
            "index": self.index,
            "model": props.name,
            "compute_capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.total_memory / 1e9, 2),
            "cuda_runtime": torch.version.cuda,
            "torch": torch.__version__,
            "threads": self.resolved_threads(),
            "host_cpu": cpu_model_name(),
            "host": platform.node(),
        }
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            d["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
        try:
            nv, h = self.nvml()
            d.update(describe_gpu(nv, h))
        except NVMLUnavailable as e:
            d["nvml"] = f"unavailable: {e}"
        return d

    def to_spec(self) -> str:
        return f"cuda:{self.index}"


_NVML_HANDLES: dict[tuple[int, str | None], Any] = {}

Device = CPUDevice | CUDADevice
"""The devices hwtune measures on; each has ``kind``, ``torch_device``, ``activate()``,
``describe()``, ``resolved_threads()``, ``to_spec()`` and ``sync()``."""


def parse_device(spec: str | None, threads: int | None = None, field: str = "device", *, check: bool = True) -> CPUDevice | CUDADevice:
    """Parse ``"cpu"``, ``"cpu:<threads>"``, ``"cuda"`` or ``"cuda:<index>"`` (``gpu`` = ``cuda``), or
    ``"remote://host:port?token_file=..."`` (a ``RemoteDevice``: measured by ``hwtune agent serve``).

    Args:
        spec: the text; ``None`` means ``"cpu"``.
        threads: (host) thread count; wins over ``cpu:<threads>``.
        field: name of the field, for error messages.
        check: for a GPU, check that torch sees CUDA and that the index exists.
    """
    if spec and spec.strip().lower().startswith("remote://"):  # measured by an agent (hwtune agent serve)
        from hwtune.hardware._remote import parse_remote

        return parse_remote(spec, field)  # type: ignore[return-value]
    spec = (spec or "cpu").strip().lower()
    kind, _, rest = spec.partition(":")
    if kind not in ("cpu", "cuda", "gpu"):
        raise ConfigError(field, f"unknown device {spec!r}.", "use 'cpu', 'cpu:<threads>', 'cuda', 'cuda:<index>' or 'remote://host:port'.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{field}.threads", f"must be a positive integer, got {threads!r}.")
    if kind == "cpu" and rest and threads is None:
        if not rest.isdigit() or int(rest) < 1:
            raise ConfigError(field, f"thread count {rest!r} is not a positive integer.", "write e.g. 'cpu:1'.")
        threads = int(rest)
    if threads is not None and threads > available_cpu_count():
        raise ConfigError(f"{field}.threads", f"{threads} threads but only {available_cpu_count()} CPUs are available.", f"use at most {available_cpu_count()}.")
    if kind == "cpu":
        return CPUDevice(threads)
    if rest and not rest.isdigit():
        raise ConfigError(field, f"GPU index {rest!r} is not a non-negative integer.", "write e.g. 'cuda:0'.")
    index = int(rest) if rest else 0
    if check:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                field,
                f"{spec!r} asks for an NVIDIA GPU but torch sees none (torch {torch.__version__}, CUDA build: {torch.version.cuda}).",
                "install a CUDA build of torch on a machine with an NVIDIA GPU and driver, check CUDA_VISIBLE_DEVICES, or use 'cpu'.",
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                field,
                f"GPU index {index} does not exist: torch sees {count} GPU(s) (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}).",
                f"use an index below {count}.",
            )
    return CUDADevice(index, threads)
