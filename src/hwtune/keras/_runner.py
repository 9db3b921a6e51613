"""Measuring a Keras model for real: backend-native inference through hwtune's meters.

:class:`KerasRunner` is a ``hardware.ModelRunner``, so ``hardware.profile`` times a Keras model with
the same windows, intervals, reference network and energy meters as a PyTorch one. One inference is
the backend's own call, not ``model.predict`` (whose per-call overhead of building a data adapter and
a step function is not the network's):

- torch: the model *is* a ``torch.nn.Module``; it is called under ``torch.no_grad()`` with a tensor;
- tensorflow: ``tf.function(model(x, training=False), jit_compile=True)`` (XLA), traced in the warm-up;
- jax: ``jax.jit`` of ``model.stateless_call`` with the model's variables.

Values are labelled ``[keras-<backend>]`` (``measured:timer[keras-torch]``); ``params`` is Keras's
``count_params`` (trainable and non-trainable weights, e.g. batch-norm statistics); ``size_mb`` is the
file size of the model saved as ``.keras``; ``flops`` is PyTorch's counter on the torch backend, else
unavailable with the reason.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.hardware import (
    HardwareReport,
    Measurement,
    count_flops,
    label_runtime,
    profile,
)
from hwtune.hardware._measurement import unavailable
from hwtune.hardware._runner import ModelRunner
from hwtune.keras._backend import backend_name, import_keras

__all__ = ["KerasRunner", "keras_runtime_label", "profile_keras", "saved_size_mb"]


def keras_runtime_label() -> str:
    """``keras-torch``, ``keras-tensorflow`` or ``keras-jax``: the runtime in every source label."""
    return f"keras-{backend_name()}"


def saved_size_mb(model: Any) -> tuple[float, str]:
    """Size in MB (10^6 bytes) of ``model.save("<tmp>.keras")``, and the note saying so."""
    with tempfile.TemporaryDirectory(prefix="hwtune-keras-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(str(path))
        return path.stat().st_size / 1e6, "file size of the model saved as .keras (model.save)"


def float32_batch(example_input: Any, batch: int) -> np.ndarray:
    """``example_input`` (a tensor or array) as a contiguous float32 array of ``batch`` rows (the first
    row repeated when the sizes differ): the input of a timed inference."""
    x = example_input.detach().cpu().numpy() if hasattr(example_input, "detach") else np.asarray(example_input)
    x = x.astype("float32", copy=False)
    if x.shape[0] != batch:
        x = np.repeat(x[:1], batch, axis=0)
    return np.ascontiguousarray(x)


class KerasRunner(ModelRunner):
    """A Keras 3 model, run with its backend's own inference call."""

    kind = "keras"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.backend = backend_name()
        self.device: Any = None

    def prepare(self, device: Any) -> None:
        if device.kind != "cpu" and self.backend != "torch":
            from hwtune.exceptions import ConfigError

            raise ConfigError("device", f"hwtune measures Keras models on the {self.backend} backend on the CPU only.", "measure on cpu, or use KERAS_BACKEND=torch on a GPU.")
        self.device = device

    def context(self) -> contextlib.AbstractContextManager[Any]:
        if self.backend == "torch":
            import torch

            return torch.no_grad()
        return contextlib.nullcontext()

    def batch_of(self, example_input: Any) -> int:
        return int(np.shape(example_input)[0])

    def make_batch(self, example_input: Any, batch: int) -> Any:
        x = float32_batch(example_input, batch)
        if self.backend == "torch":
            import torch

            t = torch.from_numpy(np.ascontiguousarray(x))
            dev = getattr(self.device, "torch_device", "cpu") if self.device is not None else "cpu"
            return t.to(dev)
        return import_keras().ops.convert_to_tensor(x)

    def call_for(self, x: Any) -> Callable[[], object]:
        model = self.model
        if self.backend == "torch":
            return lambda: model(x, training=False)
        if self.backend == "tensorflow":
            import tensorflow as tf

            fn = tf.function(lambda t: model(t, training=False), jit_compile=True)
            return lambda: fn(x).numpy()  # .numpy(): wait for the result
        if self.backend == "jax":
            import jax

            tv = [v.value for v in model.trainable_variables]
            ntv = [v.value for v in model.non_trainable_variables]
            fn = jax.jit(lambda a, b, t: model.stateless_call(a, b, t, training=False)[0])
            return lambda: fn(tv, ntv, x).block_until_ready()
        return lambda: model(x, training=False)

    def params(self) -> Measurement:
        return Measurement("params", float(self.model.count_params()), "", "counted", note="Keras count_params (trainable and non-trainable weights)")

    def size(self) -> Measurement:
        mb, note = saved_size_mb(self.model)
        return Measurement("size_mb", mb, "MB", "measured:serialized", note=note)

    def flops(self, x1: Any) -> Measurement:
        if self.backend != "torch":
            return unavailable("flops", "", f"FLOPs are counted with torch.utils.flop_counter; not counted on the {self.backend} backend")
        try:
            n = count_flops(_KerasCall(self.model), (x1,))
        except Exception as e:  # noqa: BLE001 - a model the counter cannot trace
            return unavailable("flops", "", f"torch.utils.flop_counter failed: {e}")
        return Measurement("flops", float(n), "", "counted:flop_counter", note="torch.utils.flop_counter on the Keras model (torch backend): matmul/conv, 2 per multiply-add", extra={"per": "sample"})


class _KerasCall:
    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, x: Any) -> Any:
        return self.model(x, training=False)


def profile_keras(model: Any, example_input: Any, device: Any = None, metrics: Iterable[str] | None = None, **profile_kwargs: Any) -> HardwareReport:
    """``hardware.profile`` of a Keras model (backend-native inference), each value labelled
    ``[keras-<backend>]`` and the device description with the Keras version and backend."""
    if not getattr(model, "built", True):  # a Sequential without keras.Input: built by its first call
        x = example_input.detach().cpu().numpy() if hasattr(example_input, "detach") else np.asarray(example_input)
        model(np.zeros((1, *x.shape[1:]), dtype="float32"), training=False)
    report = profile(KerasRunner(model), example_input, device, metrics, **profile_kwargs)
    label = keras_runtime_label()
    out = label_runtime(report, label, [m for m in report.measurements if m not in ("params", "flops")])
    out.device.update({"keras": str(import_keras().__version__), "keras_backend": backend_name()})
    if backend_name() != "torch":  # the device's thread count reaches PyTorch's pool only
        out.warnings.append(f"the {backend_name()} backend's thread pool is its own: the device's thread count does not limit it "
                            "(set TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS, or XLA_FLAGS for JAX, before Python starts)")
    return out
