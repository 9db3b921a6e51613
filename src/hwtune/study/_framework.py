"""The framework adapter boundary: what a study needs from a deep-learning framework.

The loop (``_objective.py``), the sampler and the cost model never touch a framework. What a study
made from a study file needs from one is here, as one small abstract class:

- :meth:`Framework.build`: an untrained network of a built-in family from params;
- :meth:`Framework.example_input`: a zero batch the network takes;
- :meth:`Framework.measure`: its hardware costs through hwtune's meters, labelled with the runtime;
- :meth:`Framework.train`: train and evaluate it with the trial's training params, reporting the
  validation error after every epoch (so pruners work), seeded;
- :meth:`Framework.save`: write the network as the framework ships it;
- :meth:`Framework.save_kept` and :meth:`Framework.load_kept`: keep a trained network as an Optuna
  artifact (``keep_models``) and read it back, in the framework's own plain-data format, recorded as
  :attr:`Framework.kept_format` (PyTorch: a ``state_dict``; Keras: a ``.keras`` file);
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
import io
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
    "framework_for_kept_format",
    "framework_for_runtime",
    "get_framework",
    "runtimes",
    "state_from_bytes",
    "weights_bytes",
]

FRAMEWORKS: dict[str, tuple[str, str]] = {
    "torch": ("hwtune.study._framework", "TorchFramework"),
    "keras": ("hwtune.keras._adapter", "KerasFramework"),
}
"""Framework name -> (module, class) of its adapter, imported on first use."""

_RUNTIME_OWNER: dict[str, str] = {"torch": "torch", "torchscript": "torch", "onnxruntime": "torch", "keras": "keras"}
"""Each runtime a study can measure in belongs to one framework (stored with the study as ``runtime``)."""

_KEPT_FORMAT_OWNER: dict[str, str] = {"torch.state_dict": "torch", "keras": "keras"}
"""Each format a kept network is recorded with belongs to the framework that reads it (``Framework.kept_format``)."""

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

    # -- kept networks (keep_models; study._keep, study._models) ---------------------------------------
    kept_format: str = ""
    """Recorded with each network this framework keeps (``hwtune:model`` ``format``); a stored record's
    format says which framework reads it back (:func:`framework_for_kept_format`)."""
    kept_suffix: str = ""
    """The kept file's extension: its artifact's file name says its format."""
    kept_mimetype: str = "application/octet-stream"

    def save_kept(self, model: Any, path: Path) -> None:
        """Write the trained ``model`` to ``path`` (ending in :attr:`kept_suffix`) for the study to keep
        as an Optuna artifact: plain data only (no pickle)."""
        raise ConfigError("keep_models", f"framework {self.name} does not keep trained networks.", "use keep_models: none.")

    def load_kept(self, data: bytes, rebuild: Callable[[], Any], trial: int) -> Any:
        """The trained network of trial ``trial`` from the kept bytes ``data`` (already checked against
        their sha256), in inference mode, on the CPU, without running code from the file.
        ``rebuild()`` gives the untrained network of the trial's params, for a format of weights only."""
        raise ConfigError("trial", f"framework {self.name} does not read kept networks back.", "load the network with the hwtune and framework that kept it.")


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


def framework_for_kept_format(fmt: Any) -> Framework:
    """The adapter that reads a kept network recorded with format ``fmt`` (``None``: a record of before
    formats were compared, PyTorch's ``state_dict``)."""
    owner = _KEPT_FORMAT_OWNER.get(str(fmt) if fmt is not None else TorchFramework.kept_format)
    if owner is None:
        raise ConfigError("trial", f"the kept model has format {fmt!r}, which this hwtune does not read.",
                          f"load it with the hwtune that kept it (this one reads {', '.join(_KEPT_FORMAT_OWNER)}).")
    return get_framework(owner)


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

    kept_format = "torch.state_dict"
    kept_suffix = ".pt"

    def save_kept(self, model: Any, path: Path) -> None:
        """``torch.save`` of the ``state_dict`` (tensors on the CPU only; ``study._keep.weights_bytes``)."""
        if not callable(getattr(model, "state_dict", None)):
            raise TypeError(f"keep_model takes the trained torch.nn.Module in a PyTorch study, got {type(model).__name__}")
        Path(path).write_bytes(weights_bytes(model))

    def load_kept(self, data: bytes, rebuild: Callable[[], Any], trial: int) -> Any:
        """The rebuilt network with the ``state_dict`` loaded (``torch.load(weights_only=True)``). The
        network may be a Keras model of the torch backend (an nn.Module): hwtune kept those so before
        Keras studies kept ``.keras`` files."""
        state = state_from_bytes(data, f"trial {trial}")
        model = rebuild()
        if not callable(getattr(model, "load_state_dict", None)):
            raise ConfigError(
                "trial", f"the kept weights of trial {trial} are a PyTorch state_dict, and the network rebuilt from its params is a {type(model).__name__} without load_state_dict.",
                "a Keras study of the torch backend kept such weights: load it with KERAS_BACKEND=torch.")
        try:
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - load_state_dict of any module
            raise ConfigError("trial", f"the kept weights of trial {trial} do not fit the network rebuilt from its params: {str(e)[:300]}.", "pass the build_model the study ran with.") from None
        return model.eval()

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


def weights_bytes(model: Any) -> bytes:
    """``torch.save`` of the model's ``state_dict`` (on the CPU, tensors only)."""
    import torch

    for attr in ("_orig_mod", "module"):  # torch.compile / DistributedDataParallel wrappers
        inner = getattr(model, attr, None)
        if inner is not None and callable(getattr(inner, "state_dict", None)):
            model = inner
    state = {}
    for k, v in model.state_dict().items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state_dict entry {k!r} is a {type(v).__name__}, not a tensor; hwtune keeps tensors only (never pickles objects)")
        state[k] = v.detach().to("cpu").clone()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes, what: str, field_name: str = "trial") -> dict[str, Any]:
    """A ``state_dict`` from ``torch.save`` bytes, loaded with ``weights_only=True`` (tensors only)."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - weights_only refuses anything but tensors, with many exception types
        raise ConfigError(field_name, f"the weights {what} cannot be read as tensors: {type(e).__name__}: {str(e)[:200]}.", "use another trial's model.") from None
    if not isinstance(state, Mapping):
        raise ConfigError(field_name, f"the weights {what} hold a {type(state).__name__}, not a state_dict.", "use another trial's model.")
    return dict(state)
