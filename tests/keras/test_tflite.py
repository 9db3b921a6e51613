"""TFLite export of Keras networks (issue 15, item 5): float and full-integer int8 files, verified
against the Keras network and timed in the TFLite interpreter through ``hardware.profile``.

The vocabulary and the missing-TensorFlow error run everywhere (CI has no TensorFlow); conversion,
verification and timing need TensorFlow and are skipped with the reason without it. On a backend other
than tensorflow the conversion runs in a child process on the TensorFlow backend.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")

from hwtune.deploy._export import FORMATS, RUNTIME_OF_FORMAT
from hwtune.exceptions import ConfigError
from hwtune.hardware import CPUDevice
from hwtune.keras import KerasFramework, build_family
from hwtune.keras import _tflite as tfl

NEEDS_TF = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="TensorFlow is not installed (pip install tensorflow-cpu): TFLite conversion needs it")
P = {"conv_layers": 2, "filters_0": 8, "filters_1": 8, "dense_units": 16}
SHAPE = (1, 12, 12)


def test_tflite_formats_are_export_formats_of_a_keras_study_with_their_own_runtime_labels() -> None:
    assert {"tflite", "tflite-int8"} <= set(FORMATS) and set(tfl.TFLITE_FORMATS) <= set(KerasFramework.export_formats)
    assert RUNTIME_OF_FORMAT["tflite"] == "tflite" and RUNTIME_OF_FORMAT["tflite-int8"] == "tflite-int8"
    with pytest.raises(ConfigError) as e:
        KerasFramework().check_export("onnx")
    assert e.value.field == "format" and "tflite" in e.value.problem


def test_without_tensorflow_a_tflite_export_is_a_config_error_naming_format_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tfl, "tensorflow_available", lambda: False)
    for fmt in tfl.TFLITE_FORMATS:
        with pytest.raises(ConfigError) as e:
            KerasFramework().check_export(fmt)
        assert e.value.field == "format" and fmt in e.value.problem
        assert "pip install tensorflow-cpu" in (e.value.fix or "") and "backend" in (e.value.fix or "")
    KerasFramework().check_export("keras")  # the .keras file needs no TensorFlow


def test_the_representative_set_is_training_inputs_drawn_with_a_fixed_seed() -> None:
    x = np.arange(1000 * 4, dtype=np.float32).reshape(1000, 1, 2, 2)
    a, b = tfl.representative_inputs(x), tfl.representative_inputs(x)
    assert a.shape == (tfl.REPRESENTATIVE_SAMPLES, 1, 2, 2) and np.array_equal(a, b)
    rows = {tuple(r.ravel()) for r in x}
    assert all(tuple(r.ravel()) in rows for r in a) and len({tuple(r.ravel()) for r in a}) == len(a)  # drawn without replacement
    assert not np.array_equal(a, x[: len(a)])  # shuffled, not the first samples


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(0)
    model = build_family("cnn", P, SHAPE, 10)
    x = rng.random((400, *SHAPE), dtype=np.float32)
    y = np.asarray(np.argmax(KerasFramework().predict(model, x), axis=1))  # labels the float network gets right
    folder = tmp_path_factory.mktemp("tflite")
    f = tfl.export_tflite(model, folder / "m.tflite", SHAPE)
    q = tfl.export_tflite(model, folder / "m_int8.tflite", SHAPE, int8=True, calibration=x)
    return model, x, y, f, q


@NEEDS_TF
def test_a_float_tflite_file_gives_the_keras_networks_outputs(files) -> None:
    model, x, y, f, _ = files
    v = tfl.verify_tflite(model, f, False, x[:64], y[:64], tolerance=1e-4)
    assert v["passed"] and v["max_abs_diff"] <= v["tolerance"] and v["argmax_agreement"] == 1.0
    assert v["error_pytorch"] == 0.0 and v["error_exported"] == 0.0 and v["n_inputs"] == 64
    assert "kind" not in v and v["interpreter"]


@NEEDS_TF
def test_an_int8_file_is_full_integer_and_checked_by_its_error_on_the_validation_split(files) -> None:
    model, x, y, _, q = files
    it = tfl._interpreter(q, 1)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    v = tfl.verify_tflite(model, q, True, x[:8], y[:8], tolerance=1e-4, validation=(x, y))
    assert v["kind"] == "int8" and v["n_inputs"] == len(x) and v["inputs"] == "whole-split validation"
    assert v["error_rise"] == pytest.approx(v["error_exported"] - v["error_pytorch"])
    assert v["passed"] == (v["error_rise"] <= tfl.INT8_TOLERANCE) and v["argmax_agreement"] > 0.8
    bad = tfl.verify_tflite(model, q, True, x, (y + 1) % 10, tolerance=1e-4)  # labels it never gets right
    assert bad["error_pytorch"] == 1.0 and bad["passed"] == (bad["error_exported"] - 1.0 <= tfl.INT8_TOLERANCE)
    with pytest.raises(ConfigError) as e:
        tfl.verify_tflite(model, q, True, x[:8], None, tolerance=1e-4)
    assert e.value.field == "labels"


@NEEDS_TF
def test_an_int8_export_needs_training_inputs() -> None:
    with pytest.raises(ConfigError) as e:
        tfl.export_tflite(build_family("mlp", {"hidden_layers": 1, "units_0": 8}, SHAPE, 10), "/nonexistent/x.tflite", SHAPE, int8=True)
    assert e.value.field == "calibration"


@NEEDS_TF
def test_tflite_latency_is_timed_in_the_interpreter_per_batch_and_labelled(files) -> None:
    _, x, _, f, q = files
    for path, label in ((f, "tflite"), (q, "tflite-int8")):
        rep = tfl.profile_tflite(path, x[:1], CPUDevice(1), ("latency_ms", "size_mb"), batch_sizes=[1, 8], max_time_s=0.1, target_rel_ci=0.5, reference=False)
        lat = rep["latency_ms"]
        assert lat.source == f"measured:timer[{label}]" and lat.extra["runtime"] == label and lat.value > 0
        assert set(rep.batches) == {1, 8} and rep.batches[8]["latency_ms"].extra["batch_size"] == 8
        assert rep["size_mb"].value == pytest.approx(path.stat().st_size / 1e6) and rep.device["interpreter"]


@NEEDS_TF
def test_the_runner_resizes_the_input_to_the_batch_and_invokes(files) -> None:
    _, x, _, f, _ = files
    runner = tfl.TFLiteRunner(f)
    runner.prepare(CPUDevice(1))
    call = runner.call_for(runner.make_batch(x[:1], 5))
    call()
    out = runner.interpreter.get_output_details()[0]
    assert tuple(runner.interpreter.get_tensor(out["index"]).shape) == (5, 10)
