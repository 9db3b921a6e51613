"""A study file with ``framework: keras``: run end to end, keep the best model, load it back, export
it as ``.keras`` through the same export command as PyTorch models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")
import typer
import yaml
from typer.testing import CliRunner

from hwtune.cli._export_cmd import export_command
from hwtune.deploy import export
from hwtune.exceptions import ConfigError
from hwtune.keras._backend import backend_name, import_keras
from hwtune.study import (
    load_model,
    load_study_file,
    stored_study,
    study_from_file,
    validation_data,
)

STUDY = {
    "name": "keras-digits",
    "framework": "keras",
    "data": {"name": "digits"},
    "model": {"family": "cnn"},
    "space": {
        "conv_layers": {"type": "int", "low": 1, "high": 2},
        "filters_0": {"type": "int", "low": 4, "high": 32, "log": True},
        "dense_units": {"type": "int", "low": 16, "high": 64, "log": True},
        "optimizer": "adam",
        "lr": {"type": "float", "low": 0.002, "high": 0.02, "log": True},
        "epochs": 2,
        "batch_size": 32,
    },
    "constraints": ["latency_ms <= 200"],
    "device": "cpu:1",
    "inference_batch_size": 4,
    "latency": {"max_time_s": 0.2, "rel_ci": 0.2},
    "keep_models": "best",
    "budget": {"trials": 3},
}


TORCH_ONLY = pytest.mark.skipif(backend_name() != "torch", reason="a study file keeps trained weights as tensors of the torch backend (the Tuner holds them on every backend)")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keras-study")
    path = folder / "keras.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    url = f"sqlite:///{folder / 'k.db'}"
    st, build, train = study_from_file(load_study_file(path), storage=url)
    st.optimize(build, train, n_trials=3)
    return st


def test_a_keras_study_runs_and_stores_its_framework_and_runtime(study) -> None:
    cfg = study.definition()
    assert cfg["runtime"] == "keras" and cfg["description"]["framework"] == "keras"
    recs = study.records()
    assert [r.status for r in recs].count("trained") >= 1
    lat = recs[0].hardware["latency_ms"]
    assert "[keras-" in lat.source and lat.extra["runtime"].startswith("keras-")
    assert recs[0].hardware["size_mb"].note and ".keras" in recs[0].hardware["size_mb"].note


@TORCH_ONLY
def test_the_kept_best_model_loads_back_as_the_trained_keras_model(study) -> None:
    keras = import_keras()
    model = load_model(stored_study(study.name, study.storage_url))
    assert isinstance(model, keras.Model)
    best = study.best_feasible()[0]
    x, y = validation_data(study)
    pred = np.argmax(np.asarray(keras.ops.convert_to_numpy(model(x, training=False))), axis=1)
    assert float(np.mean(pred != y)) == pytest.approx(best.metrics["error"], abs=1e-6)


@TORCH_ONLY
def test_the_best_model_exports_as_keras_verified_and_remeasured(study, tmp_path: Path) -> None:
    manifest = export(study, format="keras", out=tmp_path / "out", latency_max_time_s=0.2, latency_rel_ci=0.3)
    (m,) = manifest["models"]
    assert m["file"].endswith(".keras") and (tmp_path / "out" / m["file"]).is_file()
    assert m["verification"]["passed"] and m["verification"]["max_abs_diff"] <= m["verification"]["tolerance"]
    assert m["exported"]["runtime"] == "keras" and "[keras-" in m["exported"]["latency_ms"]["source"]
    with pytest.raises(ConfigError) as e:
        export(study, format="onnx", out=tmp_path / "o2", remeasure=False)
    assert e.value.field == "format" and "keras" in (e.value.fix or "")


@TORCH_ONLY
def test_hwtune_export_writes_the_keras_file(study, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("export")(export_command)

    @app.callback()
    def _root() -> None:
        """test app"""

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["export", study.name, "--storage", study.storage_url, "--format", "keras", "--out", str(out), "--no-measure"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"][0]["format"] == "keras" and manifest["study"]["runtime"] == "keras"


def test_a_tflite_export_without_tensorflow_says_so_before_writing_anything(study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwtune.keras import _tflite

    monkeypatch.setattr(_tflite, "tensorflow_available", lambda: False)
    for fmt in ("tflite", "tflite-int8"):
        with pytest.raises(ConfigError) as e:
            export(study, format=fmt, out=tmp_path / fmt, remeasure=False)
        assert e.value.field == "format" and "tensorflow-cpu" in (e.value.fix or "")
        assert not (tmp_path / fmt).exists()


def test_hwtune_export_without_tensorflow_exits_2_naming_format(study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwtune.keras import _tflite

    monkeypatch.setattr(_tflite, "tensorflow_available", lambda: False)
    app = typer.Typer()
    app.command("export")(export_command)

    @app.callback()
    def _root() -> None:
        """test app"""

    res = CliRunner().invoke(app, ["export", study.name, "--storage", study.storage_url, "--format", "tflite-int8", "--out", str(tmp_path / "x"), "--no-measure"])
    assert res.exit_code == 2 and "error --format" in res.output and "pip install tensorflow-cpu" in res.output, res.output


_NO_TF = importlib.util.find_spec("tensorflow") is None


@TORCH_ONLY
@pytest.mark.skipif(_NO_TF, reason="TensorFlow is not installed (pip install tensorflow-cpu): TFLite conversion needs it")
def test_the_best_model_exports_as_tflite_float_and_int8_verified_and_timed_in_the_interpreter(study, tmp_path: Path) -> None:
    _, y = validation_data(study)
    for fmt, label in (("tflite", "tflite"), ("tflite-int8", "tflite-int8")):
        manifest = export(study, format=fmt, out=tmp_path / fmt, latency_max_time_s=0.2, latency_rel_ci=0.3)
        (m,) = manifest["models"]
        assert m["file"].endswith(".tflite") and (tmp_path / fmt / m["file"]).is_file() and m["format"] == fmt
        v = m["verification"]
        assert v["passed"], v
        if fmt == "tflite":
            assert v["max_abs_diff"] <= v["tolerance"] and v["argmax_agreement"] == 1.0 and v["error_exported"] == v["error_pytorch"]
        else:  # int8: its error on the whole validation split, next to the float network's
            assert v["kind"] == "int8" and v["n_inputs"] == len(y) and v["error_rise"] <= 0.01
            assert v["error_pytorch"] == pytest.approx(m["metrics"]["error"]["value"], abs=1e-6)
        lat = m["exported"]["latency_ms"]
        assert lat["source"].startswith("measured:timer") and lat["source"].endswith(f"[{label}]") and m["exported"]["runtime"] == label
        assert lat["study_source"].endswith("[keras-torch]") and lat["value"] != lat["study_value"]  # measured, not copied
        assert "this file runs in " + label in lat["comparison"]
