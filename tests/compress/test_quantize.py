"""int8 static quantization (ONNX Runtime QDQ): accuracy on real inputs, dynamic batch, int8 kernels,
labelled measurement, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")
torch = pytest.importorskip("torch")

from hwtune.compress import (
    INT8_RUNTIME,
    calibration_batches,
    int8_kernels,
    profile_int8,
    quantize_int8,
)
from hwtune.exceptions import ConfigError
from hwtune.hardware import CPUDevice

FAST: dict[str, Any] = {"target_rel_ci": 0.5, "max_time_s": 0.3, "warmup_runs": 1, "warmup_s": 0.0, "min_repeats": 6, "min_energy_window_s": 0.02, "max_retries": 0}


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.fixture(scope="module")
def int8_path(tmp_path_factory: pytest.TempPathFactory, trained_cnn: Any, digits: Any) -> Path:
    cal = calibration_batches(digits.x_train, batch_size=32, max_batches=8, seed=0)
    return quantize_int8(trained_cnn, torch.as_tensor(digits.x_train[:4]), cal, tmp_path_factory.mktemp("int8") / "cnn-int8.onnx")


def test_int8_close_to_fp32_on_real_inputs(int8_path: Path, trained_cnn: Any, digits: Any) -> None:
    x = digits.x_test
    with torch.no_grad():
        fp32 = trained_cnn(torch.as_tensor(x)).numpy()
    q = _run(int8_path, x)
    assert q.shape == fp32.shape
    agree = float((q.argmax(1) == fp32.argmax(1)).mean())
    acc_fp32 = float((fp32.argmax(1) == digits.y_test).mean())
    acc_int8 = float((q.argmax(1) == digits.y_test).mean())
    assert acc_fp32 > 0.9, "the test network did not learn; the comparison would mean nothing"
    assert agree >= 0.95, f"int8 and fp32 agree on {agree:.1%} of the test digits"
    assert acc_int8 >= acc_fp32 - 0.03
    # logits close relative to their spread (int8 ranges calibrated on the training split)
    assert np.median(np.abs(q - fp32)) < 0.1 * np.std(fp32)


def test_int8_file_runs_at_batch_1_and_7_with_int8_kernels(int8_path: Path, digits: Any) -> None:
    for b in (1, 7):
        assert _run(int8_path, digits.x_test[:b]).shape == (b, 10)
    kernels = int8_kernels(int8_path)
    assert "QLinearConv" in kernels and len(kernels) >= 3, kernels  # two convs and the dense layers in int8


def test_fp32_export_has_no_int8_kernels(tmp_path: Path, trained_cnn: Any, digits: Any) -> None:
    from hwtune.hardware import export_onnx

    assert int8_kernels(export_onnx(trained_cnn, torch.as_tensor(digits.x_train[:2]), tmp_path / "fp32.onnx")) == []


def test_measured_latency_of_the_int8_file_carries_its_label(int8_path: Path, digits: Any) -> None:
    r = profile_int8(int8_path, torch.as_tensor(digits.x_test[:1]), CPUDevice(1), ["latency_ms", "size_mb"], **FAST)
    lat = r.measurements["latency_ms"]
    assert lat.value is not None and lat.value > 0
    assert lat.source == f"measured:timer[{INT8_RUNTIME}]" == "measured:timer[onnxruntime-int8]"
    assert lat.extra["runtime"] == INT8_RUNTIME
    assert r.measurements["size_mb"].source.endswith("[onnxruntime-int8]")
    assert r.device["runtime"] == INT8_RUNTIME and "onnxruntime" in r.device


def test_int8_file_is_smaller_than_fp32(int8_path: Path, tmp_path: Path, trained_cnn: Any, digits: Any) -> None:
    from hwtune.hardware import export_onnx

    fp32 = export_onnx(trained_cnn, torch.as_tensor(digits.x_train[:2]), tmp_path / "fp32.onnx")
    assert int8_path.stat().st_size < 0.5 * fp32.stat().st_size


@pytest.mark.parametrize(
    ("batches", "words"),
    [
        ([], "empty"),
        (None, "none were given"),
        ([np.zeros((4, 1, 28, 28), np.float32)], "shape"),
        ([np.full((4, 1, 8, 8), np.nan, np.float32)], "NaN"),
    ],
)
def test_bad_calibration_data_names_the_field(batches: Any, words: str, tmp_path: Path, trained_cnn: Any) -> None:
    with pytest.raises(ConfigError, match=words) as e:
        quantize_int8(trained_cnn, torch.zeros(2, 1, 8, 8), batches, tmp_path / "q.onnx")
    assert e.value.field == "quantize" and e.value.fix
    assert not (tmp_path / "q.onnx").exists()


def test_calibration_batches_draw_real_inputs_seeded(digits: Any) -> None:
    a = calibration_batches(digits.x_train, batch_size=16, max_batches=3, seed=1)
    b = calibration_batches(digits.x_train, batch_size=16, max_batches=3, seed=1)
    assert [x.shape for x in a] == [(16, 1, 8, 8)] * 3
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ConfigError) as e:
        calibration_batches(digits.x_train[:0])
    assert e.value.field == "quantize"


def test_an_int8_file_is_recognised_by_its_graph(int8_path: Path, tmp_path: Path, trained_cnn: Any, digits: Any) -> None:
    # `hwtune profile` and `hwtune export` label a file by what it holds, not only by its suffix
    from hwtune.hardware import export_onnx, runtime_of_file

    fp32 = export_onnx(trained_cnn, torch.as_tensor(digits.x_train[:2]), tmp_path / "fp32.onnx")
    assert runtime_of_file(int8_path) == "onnxruntime-int8"
    assert runtime_of_file(fp32) == "onnxruntime"
    assert runtime_of_file(tmp_path / "m.pt") == "torchscript"
