"""TFLite export of a Keras study's networks (issue 15, item 5): float and full-integer int8 files,
their verification against the Keras network, and their latency measured in the TFLite interpreter.

- **Conversion** is TensorFlow's ``tf.lite.TFLiteConverter`` on a concrete function of the model
  with a dynamic batch. It needs Keras on the TensorFlow backend: a network of a study on another
  backend (torch, jax) is saved as ``.keras`` (backend-independent) and converted in a child process
  with ``KERAS_BACKEND=tensorflow``. Either way TensorFlow must be installed (``pip install
  tensorflow-cpu``); the study's own backend does not change.
- **int8** (format ``tflite-int8``) is full-integer post-training quantization: every op int8
  (``TFLITE_BUILTINS_INT8``), int8 input and output as integer-only accelerators and microcontrollers
  take them, per-channel weights; the representative data set is :data:`REPRESENTATIVE_SAMPLES`
  inputs of the study's **training** split drawn with a fixed seed (``compress.calibration_batches``,
  seed :data:`REPRESENTATIVE_SEED`, the draw of the ONNX int8 export), so an export is reproducible.
- **The interpreter** is LiteRT's (``ai_edge_litert.interpreter.Interpreter``, where the TFLite
  interpreter moved) when that package is installed, else ``tf.lite.Interpreter``, which TensorFlow
  2.21 still ships (with a warning that it will be removed; the warning is silenced here, the
  interpreter used is named in the device description).
- **Latency**: :class:`TFLiteRunner` is a ``hardware.ModelRunner``, so ``hardware.profile`` times
  ``interpreter.invoke()`` with the same adaptive windows, intervals and reference network as every
  other model; the input tensor is resized to the batch and filled once before timing (an int8 file's
  input is quantized then, outside the timed call). Threads: the device's (``cpu:1`` -> one).
  Sources read ``measured:timer[tflite]`` / ``measured:timer[tflite-int8]``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement, label_runtime, profile
from hwtune.hardware._measurement import unavailable
from hwtune.hardware._runner import ModelRunner

__all__ = [
    "INT8_TOLERANCE",
    "REPRESENTATIVE_SAMPLES",
    "REPRESENTATIVE_SEED",
    "TFLITE_FORMATS",
    "TFLiteRunner",
    "check_tflite",
    "convert_keras_file",
    "export_tflite",
    "interpreter_name",
    "profile_tflite",
    "representative_inputs",
    "run_tflite",
    "tensorflow_available",
    "tflite_runtime_label",
    "verify_tflite",
]

TFLITE_FORMATS = ("tflite", "tflite-int8")
"""Export formats written here: float TFLite, and full-integer int8 TFLite."""
REPRESENTATIVE_SAMPLES = 256
REPRESENTATIVE_SEED = 0
INT8_TOLERANCE = 0.01
"""Largest rise of the validation error (a share) the int8 file may show against the float Keras network."""
TF_FIX = (
    "install TensorFlow beside Keras: pip install tensorflow-cpu (TFLite conversion runs on Keras's TensorFlow "
    "backend; a study trained on the torch or jax backend keeps its backend: hwtune converts its saved .keras file "
    "in a separate process with KERAS_BACKEND=tensorflow)."
)
_BATCH = 256


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed (without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def check_tflite(fmt: str, field: str = "format") -> None:
    """A :class:`ConfigError` naming ``field`` when TensorFlow, which converts to TFLite, is missing."""
    if not tensorflow_available():
        raise ConfigError(field, f"format {fmt} converts the Keras network with TensorFlow's TFLite converter, and TensorFlow is not installed.", TF_FIX)


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _interpreter_class() -> tuple[Any, str]:
    """LiteRT's interpreter where installed, else TensorFlow's (and the name of the one taken)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    if not tensorflow_available():
        raise ConfigError("format", "running a .tflite file needs LiteRT (ai_edge_litert) or TensorFlow, and neither is installed.", "pip install ai-edge-litert (or tensorflow-cpu).")
    _quiet_tf()
    import tensorflow as tf

    return tf.lite.Interpreter, "tf.lite"


def interpreter_name() -> str:
    """``ai_edge_litert <version>`` or ``tf.lite (tensorflow <version>)``: which interpreter runs the files."""
    _, name = _interpreter_class()
    if name == "ai_edge_litert":
        from importlib.metadata import version

        return f"ai_edge_litert {version('ai-edge-litert')}"
    import tensorflow as tf

    return f"tf.lite (tensorflow {tf.__version__})"


def _interpreter(path: str | Path, threads: int | None) -> Any:
    cls, _ = _interpreter_class()
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
        warnings.simplefilter("ignore")
        return cls(model_path=str(path), num_threads=threads)


# -- conversion -----------------------------------------------------------------------------------
def representative_inputs(x_train: Any) -> np.ndarray:
    """:data:`REPRESENTATIVE_SAMPLES` training inputs drawn without replacement with the fixed seed."""
    from hwtune.compress import calibration_batches

    batches = calibration_batches(np.asarray(x_train, dtype=np.float32), batch_size=32, max_batches=REPRESENTATIVE_SAMPLES // 32, seed=REPRESENTATIVE_SEED)
    return np.ascontiguousarray(np.concatenate(batches), dtype=np.float32)


def _convert_in_tf(model: Any, out: Path, input_shape: Sequence[int], representative: np.ndarray | None) -> Path:
    """Convert a Keras model of the TensorFlow backend (this process's) to ``out``."""
    _quiet_tf()
    import tensorflow as tf

    if not getattr(model, "built", True) or not getattr(model, "inputs", None):  # a Sequential without keras.Input
        model(np.zeros((1, *input_shape), dtype="float32"), training=False)
    # from_keras_model goes through a SavedModel, whose variables the int8 calibrator can read (a bare
    # concrete function keeps them as resources: READ_VARIABLE fails); the batch stays dynamic
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        samples = representative

        def data() -> Iterable[list[np.ndarray]]:
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # Keras prints the SavedModel's signature
        warnings.simplefilter("ignore")
        blob = converter.convert()
    out.write_bytes(blob)
    return out


def convert_keras_file(keras_path: str | Path, out: str | Path, input_shape: Sequence[int], representative: np.ndarray | None = None) -> Path:
    """Convert a ``.keras`` file to ``out`` (``.tflite``): here when Keras runs on TensorFlow, else in a
    child process with ``KERAS_BACKEND=tensorflow``. ``representative``: int8 with those inputs."""
    from hwtune.keras._backend import backend_name, import_keras

    check_tflite("tflite-int8" if representative is not None else "tflite")
    out = Path(out)
    if backend_name() == "tensorflow":
        model = import_keras().models.load_model(str(keras_path), safe_mode=True, compile=False)
        return _run_conversion(lambda: _convert_in_tf(model, out, input_shape, representative))
    with tempfile.TemporaryDirectory(prefix="hwtune-tflite-") as tmp:
        cmd = [sys.executable, "-m", "hwtune.keras._tflite", str(keras_path), str(out), "--shape", ",".join(str(int(s)) for s in input_shape)]
        if representative is not None:
            rep = Path(tmp) / "representative.npy"
            np.save(rep, np.ascontiguousarray(representative, dtype=np.float32), allow_pickle=False)
            cmd += ["--representative", str(rep)]
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        from hwtune.hardware import ExportError

        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-6:])
        raise ExportError(f"TFLite conversion of {Path(keras_path).name} on the TensorFlow backend (child process) failed: {tail}")
    return out


def _run_conversion(convert: Callable[[], Path]) -> Path:
    try:
        return convert()
    except ConfigError:
        raise
    except Exception as e:  # the converter raises many types
        from hwtune.hardware import ExportError

        raise ExportError(f"TFLite conversion failed: {type(e).__name__}: {str(e).strip().splitlines()[-1][:400] if str(e).strip() else ''}") from e


def export_tflite(model: Any, out: str | Path, input_shape: Sequence[int], *, int8: bool = False, calibration: Any = None) -> Path:
    """Write the trained Keras ``model`` as TFLite to ``out``: float, or with ``int8`` full-integer
    int8 calibrated on :func:`representative_inputs` of ``calibration`` (the training inputs)."""
    from hwtune.keras._backend import backend_name

    check_tflite("tflite-int8" if int8 else "tflite")
    rep = None
    if int8:
        if calibration is None:
            raise ConfigError("calibration", "an int8 TFLite export needs training inputs for its representative data set.", "pass calibration=<training inputs (N, C, H, W)> to hwtune.export (a study file's are read from its data section).")
        rep = representative_inputs(calibration)
    out = Path(out)
    if backend_name() == "tensorflow":
        return _run_conversion(lambda: _convert_in_tf(model, out, input_shape, rep))
    with tempfile.TemporaryDirectory(prefix="hwtune-tflite-") as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(str(saved))
        return convert_keras_file(saved, out, input_shape, rep)


# -- running and verifying ------------------------------------------------------------------------
def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _set_input(it: Any, x: np.ndarray) -> None:
    inp = it.get_input_details()[0]
    if tuple(inp["shape"]) != tuple(x.shape):
        it.resize_tensor_input(inp["index"], list(x.shape), strict=False)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], _quantize(x, inp))


def run_tflite(path: str | Path, x: Any, batch: int = _BATCH) -> np.ndarray:
    """Float outputs (dequantized for an int8 file) of the ``.tflite`` file on ``x`` (N, ...)."""
    it = _interpreter(path, None)
    it.allocate_tensors()
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    outs = []
    for i in range(0, len(x), batch):
        _set_input(it, x[i : i + batch])
        it.invoke()
        out = it.get_output_details()[0]
        outs.append(_dequantize(np.array(it.get_tensor(out["index"])), out))
    return np.concatenate(outs)


def _keras_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    from hwtune.keras._backend import import_keras

    keras = import_keras()
    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(model(x[i : i + _BATCH], training=False))) for i in range(0, len(x), _BATCH)])


def verify_tflite(
    model: Any, path: str | Path, int8: bool, inputs: Any, labels: Any = None, *, tolerance: float,
    validation: tuple[np.ndarray, np.ndarray] | None = None, inputs_name: str = "validation",
) -> dict[str, Any]:
    """The ``.tflite`` file's outputs against the trained Keras ``model``'s.

    Float: on ``inputs``, max absolute difference (passed within ``tolerance`` x the outputs' scale, at
    least 1), argmax agreement, and with ``labels`` the error of each (``error_pytorch`` is the Keras
    network's, the key every export's verification uses). int8 (``kind: int8``): the same numbers on
    the study's whole ``validation`` split when known (else ``inputs`` and ``labels``), and passed when
    the int8 file's error is at most :data:`INT8_TOLERANCE` above the float network's — the point of an
    int8 file is its error, not equality with float.
    """
    if int8 and validation is not None:
        x, y, name = np.ascontiguousarray(validation[0], dtype=np.float32), np.asarray(validation[1]).reshape(-1), "whole-split validation"
    else:
        x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
        y = None if labels is None else np.asarray(labels).reshape(-1)[: len(x)]
        name = inputs_name
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError("inputs", f"verification needs a batch of inputs (N, ...), got shape {x.shape}.", "pass at least one validation sample.")
    ref = _keras_outputs(model, x)
    got = run_tflite(path, x)
    out: dict[str, Any] = {"n_inputs": len(x), "inputs": name, "interpreter": interpreter_name()}
    if got.shape != ref.shape:
        return {**out, "max_abs_diff": None, "argmax_agreement": None, "passed": False,
                "note": f"the TFLite file's output has shape {list(got.shape)}, the Keras network's {list(ref.shape)}"}
    out["max_abs_diff"] = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    out["argmax_agreement"] = float(np.mean(got.argmax(-1) == ref.argmax(-1))) if ref.ndim >= 2 and ref.shape[-1] > 1 else None
    if y is not None and ref.ndim >= 2:
        out["error_pytorch"] = float(np.mean(ref.argmax(-1) != y))  # the trained (Keras) network's
        out["error_exported"] = float(np.mean(got.argmax(-1) != y))
    if not int8:
        out["tolerance"] = tolerance * max(1.0, float(np.abs(ref).max()))
        out["passed"] = bool(out["max_abs_diff"] <= out["tolerance"])
        return out
    out["kind"] = "int8"
    out["tolerance"] = INT8_TOLERANCE
    if "error_exported" not in out:
        raise ConfigError("labels", "verifying an int8 TFLite export needs labels of the inputs (its error is what is checked).", "pass inputs= and labels= to hwtune.export.")
    out["error_rise"] = out["error_exported"] - out["error_pytorch"]
    out["passed"] = bool(out["error_rise"] <= INT8_TOLERANCE)
    if not out["passed"]:
        out["note"] = f"the int8 file's error is {out['error_rise']:.4f} above the float network's (more than {INT8_TOLERANCE})"
    return out


# -- measuring ------------------------------------------------------------------------------------
class TFLiteRunner(ModelRunner):
    """A ``.tflite`` file in the TFLite (LiteRT) interpreter with the device's thread count."""

    kind = "tflite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError("model", f"TFLite file {str(self.path)!r} does not exist.", "give the path of a .tflite file.")
        self.interpreter: Any = None

    def prepare(self, device: Any) -> None:
        if getattr(device, "kind", "cpu") != "cpu":
            raise ConfigError("device", "hwtune measures TFLite files on the CPU only (the interpreter's CPU kernels).", "measure on cpu (cpu:1 for one thread).")
        self.interpreter = _interpreter(self.path, device.resolved_threads())
        self.interpreter.allocate_tensors()

    def int8(self) -> bool:
        it = self.interpreter or _interpreter(self.path, 1)
        return bool(it.get_input_details()[0]["dtype"] == np.int8)

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def batch_of(self, example_input: Any) -> int:
        return int(np.shape(example_input)[0])

    def make_batch(self, example_input: Any, batch: int) -> Any:
        from hwtune.keras._runner import float32_batch

        return float32_batch(example_input, batch)

    def call_for(self, x: Any) -> Callable[[], object]:
        it = self.interpreter
        _set_input(it, x)  # resized to the batch and filled (quantized) once, outside the timed call
        return it.invoke

    def params(self) -> Measurement:
        return unavailable("params", "", "not counted in a TFLite file (the study's params are the Keras network's)")

    def size(self) -> Measurement:
        return Measurement("size_mb", self.path.stat().st_size / 1e6, "MB", "measured:serialized", note=f"file size of {self.path.name}")

    def flops(self, x1: Any) -> Measurement:
        return unavailable("flops", "", "FLOPs are counted with torch.utils.flop_counter; not counted for TFLite")


def tflite_runtime_label(path: str | Path) -> str:
    """``tflite-int8`` for a file with an int8 input, else ``tflite``."""
    return "tflite-int8" if TFLiteRunner(path).int8() else "tflite"


def profile_tflite(path: str | Path, example_input: Any, device: Any, metrics: Iterable[str] = ("latency_ms",), **profile_kwargs: Any) -> HardwareReport:
    """``hardware.profile`` of a ``.tflite`` file (``interpreter.invoke()`` timed), labelled
    ``[tflite]`` / ``[tflite-int8]``; the device description names the interpreter."""
    runner = TFLiteRunner(path)
    report = profile(runner, example_input, device, list(metrics), **profile_kwargs)
    out = label_runtime(report, "tflite-int8" if runner.int8() else "tflite", [m for m in report.measurements if m not in ("params", "flops")])
    out.device["interpreter"] = interpreter_name()
    return out


def _main(argv: Sequence[str] | None = None) -> int:
    """The child process of :func:`convert_keras_file`: ``python -m hwtune.keras._tflite IN.keras OUT.tflite --shape C,H,W [--representative X.npy]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hwtune.keras._tflite")
    ap.add_argument("keras_path")
    ap.add_argument("out")
    ap.add_argument("--shape", required=True)
    ap.add_argument("--representative")
    a = ap.parse_args(argv)
    rep = np.load(a.representative, allow_pickle=False) if a.representative else None
    shape = tuple(int(s) for s in a.shape.split(","))
    convert_keras_file(a.keras_path, a.out, shape, rep)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
