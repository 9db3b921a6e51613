"""What ``profile`` can run: a PyTorch module, a TorchScript module, or an ONNX model (ONNX Runtime).

A runner turns a model and an example input into "one inference of batch b" and counts the
model's static costs (parameters, FLOPs, serialized size).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

from hwtune.exceptions import ConfigError
from hwtune.hardware._measurement import Measurement, unavailable

__all__ = [
    "ModelRunner",
    "TorchRunner",
    "OnnxModel",
    "OnnxRunner",
    "as_runner",
    "load_model",
    "count_parameters",
    "serialized_size_mb",
    "count_flops",
]


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def serialized_size_mb(model: Any) -> float:
    """Size of ``torch.save(state_dict)`` in MB (10^6 bytes); ``torch.jit.save`` for TorchScript."""
    import torch

    buf = io.BytesIO()
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, buf)
    else:
        torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes / 1e6


def count_flops(model: Any, inputs: tuple[Any, ...]) -> int:
    """FLOPs of one forward pass, by PyTorch's own counter (``torch.utils.flop_counter``).

    The counter covers matrix multiplications, convolutions and attention (2 FLOPs per
    multiply-add); element-wise operations, normalisation and pooling are not counted.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


class ModelRunner(ABC):
    """One model made runnable on one device."""

    kind: str = "model"
    supports_cuda_allocator: bool = False

    @abstractmethod
    def prepare(self, device: Any) -> None:
        """Place the model on ``device`` (called inside ``device.activate()``)."""

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """Entered around every inference (``torch.inference_mode`` for PyTorch)."""
        return contextlib.nullcontext()

    @abstractmethod
    def batch_of(self, example_input: Any) -> int:
        """Batch size of an input."""

    @abstractmethod
    def make_batch(self, example_input: Any, batch: int) -> Any:
        """An input of ``batch`` samples on the device, made from ``example_input``."""

    @abstractmethod
    def call_for(self, x: Any) -> Callable[[], object]:
        """A function running one inference on ``x``."""

    @abstractmethod
    def params(self) -> Measurement: ...

    @abstractmethod
    def size(self) -> Measurement: ...

    @abstractmethod
    def flops(self, x1: Any) -> Measurement:
        """FLOPs per sample, from a batch-1 input ``x1``."""


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class TorchRunner(ModelRunner):
    """A ``torch.nn.Module`` or TorchScript module; ``source_path`` is the file it came from, if any."""

    kind = "torch"
    supports_cuda_allocator = True

    def __init__(self, model: Any, source_path: str | os.PathLike[str] | None = None) -> None:
        self.model = model
        self.source_path = Path(source_path) if source_path else None
        self.device = "cpu"

    def prepare(self, device: Any) -> None:
        self.device = device.torch_device
        self.model = self.model.to(self.device).eval()

    def context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.inference_mode()

    def batch_of(self, example_input: Any) -> int:
        return int(_as_tuple(example_input)[0].shape[0])

    def make_batch(self, example_input: Any, batch: int) -> tuple[Any, ...]:
        out = []
        for t in _as_tuple(example_input):
            t = t.to(self.device)
            if t.shape[0] != batch:
                t = t[:1].expand(batch, *t.shape[1:]).contiguous()
            out.append(t)
        return tuple(out)

    def call_for(self, x: Any) -> Callable[[], object]:
        model, args = self.model, _as_tuple(x)
        return lambda: model(*args)

    def params(self) -> Measurement:
        return Measurement("params", float(count_parameters(self.model)), "", "counted")

    def size(self) -> Measurement:
        if self.source_path is not None:
            return Measurement("size_mb", self.source_path.stat().st_size / 1e6, "MB", "measured:serialized", note=f"file size of {self.source_path.name}")
        import torch

        how = "torch.jit.save" if isinstance(self.model, torch.jit.ScriptModule) else "torch.save(state_dict)"
        return Measurement("size_mb", serialized_size_mb(self.model), "MB", "measured:serialized", note=how)

    def flops(self, x1: Any) -> Measurement:
        try:
            n = count_flops(self.model, _as_tuple(x1))
        except Exception as e:  # noqa: BLE001 - a model the counter cannot trace
            return unavailable("flops", "", f"torch.utils.flop_counter failed: {e}")
        return Measurement(
            "flops", float(n), "", "counted:flop_counter",
            note="torch.utils.flop_counter: matmul/conv/attention, 2 per multiply-add; element-wise ops not counted",
            extra={"per": "sample"},
        )


class OnnxModel:
    """An ONNX file, run with ONNX Runtime (install the ``onnx`` extra: ``pip install -e '.[onnx]'`` in a clone of hwtune)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError("model", f"ONNX file {str(self.path)!r} does not exist.", "give the path of a .onnx file.")

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"

    def input_shape(self) -> list[int | str | None]:
        """Shape of the first input as the file declares it (symbolic dimensions as text)."""
        return list(_ort_session(self.path, None, 1).get_inputs()[0].shape)


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("model", "measuring an ONNX model needs onnxruntime, which is not installed.", "install hwtune's onnx extra: pip install -e '.[onnx]' in a clone of hwtune (or pip install onnxruntime, onnxruntime-gpu for NVIDIA GPUs).") from None
    return onnxruntime


def _ort_session(path: Path, device: Any, threads: int) -> Any:
    ort = _import_ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers: list[Any] = ["CPUExecutionProvider"]
    if device is not None and device.kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("device", f"ONNX Runtime {ort.__version__} here has no CUDA provider.", "pip install onnxruntime-gpu, or profile on 'cpu'.")
        providers = [("CUDAExecutionProvider", {"device_id": device.index})]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64", "tensor(int64)": "int64", "tensor(int32)": "int32"}


class OnnxRunner(ModelRunner):
    """An :class:`OnnxModel` in an ONNX Runtime session with the device's thread count."""

    kind = "onnx"

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self.session: Any = None
        self.input_name = ""
        self.dtype = "float32"
        self.fixed_batch: int | None = None

    def prepare(self, device: Any) -> None:
        self.session = _ort_session(self.model.path, device, device.resolved_threads())
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError("model", f"{self.model.path.name} has {len(inputs)} inputs; hwtune profiles models with one input.")
        self.input_name = inputs[0].name
        self.dtype = _ONNX_DTYPES.get(inputs[0].type, "float32")
        first = inputs[0].shape[0] if inputs[0].shape else None
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None

    def batch_of(self, example_input: Any) -> int:
        return int(example_input.shape[0])

    def make_batch(self, example_input: Any, batch: int) -> Any:
        import numpy as np

        x = example_input.detach().cpu().numpy() if hasattr(example_input, "detach") else np.asarray(example_input)
        x = x.astype(self.dtype, copy=False)
        if x.shape[0] != batch:
            x = np.ascontiguousarray(np.repeat(x[:1], batch, axis=0))
        return x

    def call_for(self, x: Any) -> Callable[[], object]:
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:  # else ONNX Runtime's own traceback
            raise ConfigError(
                "batch_sizes", f"{self.model.path.name} has a fixed batch size of {self.fixed_batch}: it cannot run batch size {x.shape[0]}.",
                f"measure batch size {self.fixed_batch}, or export the model with a dynamic batch dimension (hwtune.hardware.export_onnx does).",
            )
        sess, feed = self.session, {self.input_name: x}
        return lambda: sess.run(None, feed)

    def params(self) -> Measurement:
        try:
            import onnx
            from onnx import numpy_helper  # noqa: F401
        except ImportError:
            return unavailable("params", "", "counting ONNX parameters needs the onnx package (pip install -e '.[onnx]' in a clone of hwtune, or pip install onnx)")
        m = onnx.load(str(self.model.path), load_external_data=False)
        n = 0
        for init in m.graph.initializer:
            k = 1
            for d in init.dims:
                k *= int(d)
            n += k
        return Measurement("params", float(n), "", "counted", note="elements of the ONNX graph's initializers")

    def size(self) -> Measurement:
        return Measurement("size_mb", self.model.path.stat().st_size / 1e6, "MB", "measured:serialized", note=f"file size of {self.model.path.name}")

    def flops(self, x1: Any) -> Measurement:
        return unavailable("flops", "", "FLOPs are counted with torch.utils.flop_counter, which needs a PyTorch model; not counted for ONNX")


def as_runner(model: Any) -> ModelRunner:
    """The runner for ``model`` (a runner is returned as is)."""
    if isinstance(model, ModelRunner):
        return model
    if isinstance(model, OnnxModel):
        return OnnxRunner(model)
    import torch

    if isinstance(model, torch.nn.Module):  # ScriptModule is one too
        return TorchRunner(model)
    raise TypeError(f"cannot profile a {type(model).__name__}: give a torch.nn.Module, a TorchScript module or an OnnxModel")


def load_model(path: str | os.PathLike[str]) -> ModelRunner:
    """A runner for a model file: ``.onnx`` through ONNX Runtime, anything else as TorchScript."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("model", f"model file {str(p)!r} does not exist.", "give the path of a TorchScript (.pt) or ONNX (.onnx) file.")
    if p.suffix.lower() == ".onnx":
        return OnnxRunner(OnnxModel(p))
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; loading a user's file is still right
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(p), map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ConfigError(
            "model",
            f"{p.name} is not a TorchScript file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).",
            "save the model with torch.jit.save(torch.jit.script(model), path) or export it to ONNX (.onnx).",
        ) from None
    return TorchRunner(module, source_path=p)

