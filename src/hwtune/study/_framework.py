"""The framework adapter boundary: what a study needs from a deep-learning framework.

The loop (``_objective.py``), the sampler and the cost model never touch a framework. What a study
made from a study file needs from one is here, as one small abstract class:

- :meth:`Framework.build`: an untrained network of a built-in family from params;
- :meth:`Framework.example_input`: a zero batch the network takes;
- :meth:`Framework.measure`: its hardware costs through hwtune's meters, labelled with the runtime;
- :meth:`Framework.train`: train and evaluate it with the trial's training params, reporting the
  validation error after every epoch (so pruners work), seeded;
- :meth:`Framework.save`: write the network as the framework ships it;
- :meth:`Framework.check_space` and :meth:`Framework.check_runtime`: refuse, before anything is
  written, what the framework cannot do (naming the param or the runtime).

:class:`TorchFramework` is the PyTorch adapter (everything hwtune did before frameworks existed);
``hwtune.keras.KerasFramework`` is Keras 3's. A framework is looked up by *name* (``framework:`` of a
study file, or the study's ``runtime``, which belongs to exactly one framework) in :data:`FRAMEWORKS`:
the study layer never imports an adapter that lives above it (``hwtune.keras`` imports ``study`` for
its Tuner); the adapter's module is imported by name when a study asks for it, as a plugin is.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = [
    "FRAMEWORKS",
    "Framework",
    "TorchFramework",
    "TrainOutcome",
    "framework_for_runtime",
    "get_framework",
    "runtimes",
]

FRAMEWORKS: dict[str, tuple[str, str]] = {
    "torch": ("hwtune.study._framework", "TorchFramework"),
    "keras": ("hwtune.keras._adapter", "KerasFramework"),
}
"""Framework name -> (module, class) of its adapter, imported on first use."""

_RUNTIME_OWNER: dict[str, str] = {"torch": "torch", "torchscript": "torch", "onnxruntime": "torch", "keras": "keras"}
"""Each runtime a study can measure in belongs to one framework (stored with the study as ``runtime``)."""

_INSTANCES: dict[str, Framework] = {}


TrainOutcome = tuple[dict[str, float], dict[str, Any]]
"""``(metrics, settings)`` of one training: ``error``, ``accuracy``, ``test_error``... and the
trainer's plain-data settings (stored as ``hwtune:train_settings``)."""


class Framework(ABC):
    """One deep-learning framework as a study uses it (see the module docstring)."""

    name: str = ""
    runtimes: tuple[str, ...] = ()
    default_runtime: str = ""

    def check_runtime(self, runtime: Any, device: Any = None, field: str = "runtime", *, installed: bool = True) -> str:
        """``runtime`` if this framework measures in it (and, with ``installed``, can here), else a
        :class:`ConfigError` naming ``field``."""
        if runtime not in self.runtimes:
            raise ConfigError(field, f"framework {self.name} does not measure in runtime {runtime!r}.", f"use one of {', '.join(self.runtimes)} (or leave runtime out).")
        return str(runtime)

    def check_space(self, space: Any, runtime: str) -> None:
        """Refuse params this framework cannot apply (named in the error); default: none refused."""

    @abstractmethod
    def build(self, family: str, params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
        """An untrained network of built-in ``family``."""

    @abstractmethod
    def example_input(self, shape: tuple[int, ...]) -> Any:
        """A zero batch of ``shape`` (batch first) that the framework's networks take."""

    @abstractmethod
    def measure(self, model: Any, params: Mapping[str, Any], shape: tuple[int, ...], device: Any, metrics: Iterable[str], runtime: str, **kwargs: Any) -> Any:
        """``HardwareReport`` of ``model`` on ``device`` with a zero batch of ``shape``, in ``runtime``."""

    @abstractmethod
    def train(self, model: Any, data: Any, params: Mapping[str, Any], *, seed: int, device: Any, reporter: Callable[[int, float], None] | None, options: Any = None) -> TrainOutcome:
        """Train ``model`` in place on ``data`` (``hwtune.train.Dataset``); report ``(epoch, error)``."""

    @abstractmethod
    def save(self, model: Any, path: str | Path) -> Path:
        """Write ``model`` as the framework ships it; returns the file."""

    def param_count(self, model: Any) -> int | None:
        """The network's parameter count, when it is cheap to have (``None`` otherwise)."""
        return None

    def load(self, path: str | Path) -> Any:
        """A network written by :meth:`save`, loaded without running code from the file."""
        raise ConfigError("format", f"framework {self.name} does not load saved networks.", "export with another format.")

    @abstractmethod
    def predict(self, model: Any, x: Any) -> Any:
        """Outputs (numpy) of ``model`` on inputs ``x`` (numpy, batch first), in inference mode."""


def get_framework(name: Any, field: str = "framework") -> Framework:
    """The adapter of framework ``name`` (imported on first use)."""
    if not isinstance(name, str) or name not in FRAMEWORKS:
        raise ConfigError(field, f"unknown framework {name!r}.", f"use one of {', '.join(FRAMEWORKS)}.")
    if name not in _INSTANCES:
        module, cls = FRAMEWORKS[name]
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


def framework_for_runtime(runtime: Any, field: str = "runtime") -> Framework:
    """The adapter of the framework that ``runtime`` belongs to."""
    if not isinstance(runtime, str) or runtime not in _RUNTIME_OWNER:
        raise ConfigError(field, f"unknown runtime {runtime!r}.", f"use one of {', '.join(runtimes())}.")
    return get_framework(_RUNTIME_OWNER[runtime])


def runtimes() -> tuple[str, ...]:
    """Every runtime a study can measure in, of every framework."""
    return tuple(_RUNTIME_OWNER)


class TorchFramework(Framework):
    """PyTorch: the built-in families as ``nn.Module``s, ``hwtune.train``'s trainer, and the network
    measured exported to ONNX Runtime (default), TorchScript or eager PyTorch."""

    name = "torch"
    runtimes = ("torch", "torchscript", "onnxruntime")
    default_runtime = "onnxruntime"

    def check_runtime(self, runtime: Any, device: Any = None, field: str = "runtime", *, installed: bool = True) -> str:
        from hwtune.hardware import check_runtime

        if runtime in _RUNTIME_OWNER and runtime not in self.runtimes:
            raise ConfigError(field, f"runtime {runtime!r} measures networks of framework {_RUNTIME_OWNER[runtime]}, and this study's is torch.", f"use one of {', '.join(self.runtimes)}, or framework: {_RUNTIME_OWNER[runtime]}.")
        return check_runtime(runtime, device, field, installed=installed)

    def check_space(self, space: Any, runtime: str) -> None:
        from hwtune.compress import check_compression_space

        check_compression_space(space, runtime)

    def build(self, family: str, params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
        from hwtune.train import get_family

        return get_family(family).build(params, input_shape, num_classes)

    def example_input(self, shape: tuple[int, ...]) -> Any:
        import torch

        return torch.zeros(shape)

    def measure(self, model: Any, params: Mapping[str, Any], shape: tuple[int, ...], device: Any, metrics: Iterable[str], runtime: str, **kwargs: Any) -> Any:
        from hwtune.compress._plan import compression_plan
        from hwtune.hardware import profile_in_runtime

        plan = compression_plan(dict(params))
        if plan is not None and plan.int8:  # measured as it runs: the int8 model in ONNX Runtime
            from hwtune.compress import measure_int8

            return measure_int8(model, self.example_input(shape), device, tuple(metrics), **kwargs)
        return profile_in_runtime(model, self.example_input(shape), device, tuple(metrics), runtime=runtime, **kwargs)

    def train(self, model: Any, data: Any, params: Mapping[str, Any], *, seed: int, device: Any, reporter: Callable[[int, float], None] | None, options: Any = None) -> TrainOutcome:
        from hwtune.train import train_classifier

        with device.activate():
            # strict=False: a param shared by only some of the searched optimizers / schedules is
            # ignored in the trials where it does not apply (validate_space checked the rest)
            res = train_classifier(model, data, params, seed=seed, device=device.torch_device, reporter=reporter, options=options, strict=False)
        return res.metrics(), res.settings

    def save(self, model: Any, path: str | Path) -> Path:
        import torch

        p = Path(path)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, p)
        return p

    def param_count(self, model: Any) -> int | None:
        return int(sum(int(p.numel()) for p in model.parameters()))

    def predict(self, model: Any, x: Any) -> Any:
        import torch

        was = bool(getattr(model, "training", False))
        model.eval()
        try:
            with torch.no_grad():
                return model(torch.as_tensor(x)).detach().cpu().numpy()
        finally:
            model.train(was)
