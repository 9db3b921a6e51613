"""Export of a trial quantized to int8 (issue 14, part 6): the int8 ONNX file ONNX Runtime runs with
int8 kernels, and its verification.

The study evaluated the trial's int8 model (``hwtune.compress.evaluate_compressed``): the kept float
weights quantized with calibration batches drawn from the training split with a fixed seed. The export
quantizes the same weights with the same batches, so the file is the model the study evaluated; the
verification checks exactly that: the file's error on the study's whole validation split equals the
stored error. (Comparing int8 outputs with the float network's to 1e-4, as a float export is checked,
would fail by design.) A study made through the API, whose data hwtune does not know, passes its own
``calibration`` inputs, and its check is the error difference on the given inputs and labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError

__all__ = ["API_INT8_TOLERANCE", "export_int8", "is_int8_trial", "verify_int8"]

API_INT8_TOLERANCE = 0.01
"""Largest rise of the error on the given inputs (a share) an int8 export of an API study may show
against its float network (with no stored split to reproduce, the only check there is)."""


def is_int8_trial(params: dict[str, Any]) -> bool:
    from hwtune.compress import compression_plan

    plan = compression_plan(params)
    return plan is not None and plan.int8


def export_int8(model: Any, example_input: Any, folder: Path, trial: int, study: Any, calibration: Any = None) -> Path:
    """``folder/trial_<trial>.onnx``: ``model`` quantized to int8 with the study's calibration batches."""
    import shutil
    import tempfile

    from hwtune.compress import calibration_batches, int8_onnx
    from hwtune.compress._pipeline import CALIBRATION_SEED

    if calibration is None:
        from hwtune.study import training_inputs

        try:
            calibration = training_inputs(study)
        except ConfigError as e:
            raise ConfigError("calibration", f"trial {trial} is quantized to int8 and {e.problem}", "pass calibration=<training inputs (N, C, H, W)> to hwtune.export.") from None
    batches = calibration_batches(np.asarray(calibration, dtype=np.float32), seed=CALIBRATION_SEED)
    out = Path(folder) / f"trial_{trial}.onnx"
    with tempfile.TemporaryDirectory(prefix="hwtune-export-int8-") as tmp:
        shutil.move(str(int8_onnx(model, example_input, tmp, batches)), out)
    return out


def _errors(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [np.asarray(sess.run(None, {name: np.ascontiguousarray(x[i : i + 512])})[0]) for i in range(0, len(x), 512)]
    got = np.concatenate(outs)
    return got, float(np.mean(got.argmax(-1) != y)) if len(y) else float("nan")


def verify_int8(model: Any, path: Path, study: Any, stored: Any, x: np.ndarray, labels: Any) -> dict[str, Any]:
    """The int8 file checked against what the study evaluated (see the module docstring); also its
    argmax agreement with the float network on ``x``."""
    import torch

    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    got, _ = _errors(path, np.ascontiguousarray(x, dtype=np.float32), np.zeros(len(x), dtype=np.int64))
    out: dict[str, Any] = {
        "kind": "int8",
        "argmax_agreement_with_float": float(np.mean(got.argmax(-1) == ref.argmax(-1))),
        "max_abs_diff_from_float": float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()),
        "n_inputs": len(x),
    }
    stored_error = stored.metrics.get("error")
    try:
        from hwtune.study import validation_data

        xv, yv = validation_data(study)
    except ConfigError:
        xv = None
    if xv is not None and isinstance(stored_error, (int, float)):
        _, err = _errors(path, xv, yv)
        out.update({"inputs": "the study's whole validation split", "error_exported": err, "error_study": float(stored_error),
                    "passed": abs(err - float(stored_error)) <= 0.5 / max(1, len(yv))})
        if not out["passed"]:
            out["note"] = "the int8 file's validation error differs from the one the study stored for this trial"
        return out
    if labels is None:
        raise ConfigError("labels", "verifying an int8 export of a study made through the API needs labels of the inputs.", "pass inputs= and labels= to hwtune.export.")
    y = np.asarray(labels).reshape(-1)[: len(x)]
    err_f, err_q = float(np.mean(ref.argmax(-1) != y)), float(np.mean(got.argmax(-1) != y))
    out.update({"inputs": "validation", "error_pytorch": err_f, "error_exported": err_q, "tolerance": API_INT8_TOLERANCE,
                "passed": err_q - err_f <= API_INT8_TOLERANCE})
    return out
