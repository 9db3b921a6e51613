"""int8 post-training static quantization of a PyTorch network, to an ONNX file that ONNX Runtime runs
with int8 kernels (issue 14, part 3).

Backend: **ONNX Runtime static quantization, QDQ format** (``onnxruntime.quantization.quantize_static``,
``QuantFormat.QDQ``, per-channel int8 weights, activations calibrated with MinMax on batches of real
training inputs). ONNX Runtime fuses each ``DequantizeLinear -> Conv/Gemm -> QuantizeLinear`` group
into an int8 kernel (``QLinearConv``, ``QGemm``...) when it loads the file; :func:`int8_kernels` lists
them. The alternative the issue names, PT2E with torchao's x86 Inductor quantizer, was tried here
(torchao 0.18 installs on torch 2.13) and not chosen, by measurement: (a) it refuses the built-in
``cnn`` family outright (``Conv2d(padding="same")`` exports to ``aten.conv2d.padding``, and the
quantizer raises "conv2d is not an aten conv2d operator"); (b) on the same CNN with numeric padding
(conv 32/64, dense 256, 28x28, batch 1, one thread) the int8 PT2E model under ``torch.compile`` took
2.49 ms against 1.17 ms for the compiled fp32 one (0.47x, slower), where ONNX Runtime runs that
network in 0.15 ms int8 against 0.21 ms fp32 (1.37x); (c) compiling the two took 64 s, per network, in
a trial. ONNX Runtime is also hwtune's default runtime (``hardware._convert.DEFAULT_RUNTIME``), and the
file written here is the deliverable itself (issue 14, part 6). Eager ``torch.ao.quantization`` is
deprecated. (Measured on 2 shared cores at load ~4; torchao is not a dependency of hwtune.)

The quantized model's cost is measured on the quantized file, never estimated from the float one:
:func:`profile_int8` is ``profile(OnnxModel(path), ...)`` with the runtime ``onnxruntime-int8`` in
every source (``measured:timer[onnxruntime-int8]``), the convention of ``hardware._convert``.
Measured speed-ups (docs/benchmarks.md, "Compression (issue 14)") depend on the network: int8 is
slower than fp32 on a tiny CNN and 2-3x faster on wider ones, hence a search dimension.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["INT8_RUNTIME", "calibration_batches", "int8_kernels", "profile_int8", "quantize_int8"]

INT8_RUNTIME = "onnxruntime-int8"
"""The runtime label of a network quantized to int8 and run by ONNX Runtime (``measured:timer[onnxruntime-int8]``)."""

_INT8_OPS = ("QLinear", "QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantize")

_FIELD = "quantize"


def _as_array(batch: Any) -> Any:
    """A calibration batch as a float32 NumPy array: tensors, arrays, or ``(x, y)`` pairs (x is kept)."""
    import numpy as np

    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ConfigError(_FIELD, "a calibration batch is an empty tuple.", "give input batches (tensors or arrays), or (x, y) pairs.")
        batch = batch[0]
    if hasattr(batch, "detach"):
        batch = batch.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(batch, dtype=np.float32))


def calibration_batches(x: Any, batch_size: int = 32, max_batches: int = 8, seed: int = 0) -> list[Any]:
    """Up to ``max_batches`` batches of ``batch_size`` inputs drawn without replacement (seeded) from
    ``x`` (N, ...) — real training inputs, as static quantization needs (random inputs give ranges
    the network never sees). Returns float32 arrays."""
    import numpy as np

    arr = _as_array(x)
    if arr.ndim < 2 or len(arr) == 0:
        raise ConfigError(_FIELD, f"calibration data has shape {arr.shape}; it needs at least one input.", "pass the training inputs (N, C, H, W) or (N, features).")
    if batch_size < 1 or max_batches < 1:
        raise ConfigError(_FIELD, f"calibration batch_size={batch_size}, max_batches={max_batches}.", "use positive integers (e.g. 32 and 8).")
    order = np.random.default_rng(seed).permutation(len(arr))[: batch_size * max_batches]
    return [arr[order[i : i + batch_size]] for i in range(0, len(order), batch_size)]


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` over checked float32 batches (one input)."""

    def __init__(self, name: str, batches: list[Any]) -> None:
        self._feeds = iter([{name: b} for b in batches])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def _checked_batches(calibration_batches: Iterable[Any], example_shape: tuple[int, ...]) -> list[Any]:
    import numpy as np

    if calibration_batches is None:
        raise ConfigError(_FIELD, "int8 quantization needs calibration batches; none were given.", "pass a few batches of real training inputs (hwtune.compress.calibration_batches(x_train)).")
    out = []
    for i, b in enumerate(calibration_batches):
        a = _as_array(b)
        if a.ndim != len(example_shape) or tuple(a.shape[1:]) != tuple(example_shape[1:]) or len(a) == 0:
            raise ConfigError(
                _FIELD, f"calibration batch {i} has shape {tuple(a.shape)}; the network's input is (batch, {', '.join(map(str, example_shape[1:]))}).",
                "give batches of the training inputs the network was built for.",
            )
        if not np.isfinite(a).all():
            raise ConfigError(_FIELD, f"calibration batch {i} holds NaN or infinite values.", "calibrate on clean training inputs.")
        out.append(a)
    if not out:
        raise ConfigError(_FIELD, "the calibration data is empty: int8 ranges cannot be calibrated on nothing.", "pass a few batches of real training inputs (hwtune.compress.calibration_batches(x_train)).")
    return out


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a note per run (pre-processing advice); keep a study's output clean."""
    lg = logging.getLogger()
    level = lg.level
    lg.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        lg.setLevel(level)


def quantize_int8(
    model: Any,
    example_input: Any,
    calibration_batches: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    per_channel: bool = True,
    exporter: str = "auto",
) -> Path:
    """Quantize ``model`` to int8 (static, QDQ, per-channel weights) into the ONNX file ``path``.

    The network (eval mode, restored afterwards) is exported with a dynamic batch
    (:func:`hwtune.hardware.export_onnx`), pre-processed (shape inference, fusions: ONNX Runtime's
    ``quant_pre_process``, skipped with a warning-free fallback if it fails), and quantized with
    activation ranges calibrated (MinMax) on ``calibration_batches``. Weights are symmetric int8 per
    output channel, activations int8. The file keeps the symbolic batch, so ONNX Runtime runs it at
    any batch size.

    Args:
        model: a ``torch.nn.Module`` with one input (trained, to deliver; untrained, to measure).
        example_input: one batch (N, ...) of the input shape, for the export.
        calibration_batches: batches of real training inputs (tensors, arrays, or ``(x, y)`` pairs),
            e.g. :func:`calibration_batches` of the training split.
        path: the ``.onnx`` file to write (folders are created).
        per_channel: per-output-channel weight scales (``False``: one scale per tensor).
        exporter: ONNX exporter (:data:`hwtune.hardware._convert.EXPORTERS`).

    Returns:
        ``path``.

    Raises:
        ConfigError: (``quantize``) no, empty, misshapen or non-finite calibration data.
        hwtune.hardware.ExportError: the network could not be exported to ONNX.
    """
    from hwtune.hardware._convert import export_onnx, onnx_batch_dim

    shape = tuple(example_input.shape)
    batches = _checked_batches(calibration_batches, shape)
    try:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise ConfigError(_FIELD, "int8 quantization needs onnxruntime (with onnxruntime.quantization) and onnx, not installed here.", "install hwtune's onnx extra (pip install -e '.[onnx]' in a clone of hwtune), or use quantize: none.") from None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hwtune-int8-") as tmp:
        fp32 = export_onnx(model, example_input, Path(tmp) / "fp32.onnx", dynamic_batch=True, exporter=exporter)
        src = _preprocess(fp32, Path(tmp) / "fp32-pre.onnx")
        with _quiet_ort():
            quantize_static(
                str(src), str(out), _Reader(_input_name(src), batches),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    if isinstance(onnx_batch_dim(out), int):  # never ship a file fixed to the calibration batch
        raise ConfigError(_FIELD, f"the int8 model {out.name} has a fixed batch dimension.", "report this as a bug of hwtune.compress.")
    return out


def _preprocess(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended pre-processing before quantization; ``src`` itself if it fails."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with _quiet_ort():
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return dst
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # noqa: BLE001 - quantization works on the plain export too
        return src


def _input_name(path: Path) -> str:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in init)


def int8_kernels(path: str | os.PathLike[str]) -> list[str]:
    """Op types of the int8 kernels ONNX Runtime (CPU) runs for the file ``path``, after its graph
    optimizations (``QLinearConv``, ``QGemm``, ...): empty when it would run the network in float."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hwtune-int8-") as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # the QDQ fusions; no hardware-specific layouts
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        g = onnx.load(opts.optimized_model_filepath, load_external_data=False).graph
    return sorted(n.op_type for n in g.node if n.op_type.startswith(_INT8_OPS))


def profile_int8(path: str | os.PathLike[str], example_input: Any, device: Any = None, metrics: Iterable[str] | None = None, **profile_kwargs: Any) -> Any:
    """``hwtune.hardware.profile`` of the int8 ONNX file ``path`` itself, every value labelled with the
    runtime ``onnxruntime-int8`` (``measured:timer[onnxruntime-int8]``; ``extra["runtime"]``). Params
    and FLOPs of the float network are not counted here (ONNX files have none to count)."""
    from hwtune.hardware import OnnxModel, label_runtime, profile

    return label_runtime(profile(OnnxModel(path), example_input, device, metrics, **profile_kwargs), INT8_RUNTIME)
