"""A study file with ``framework: keras``: run end to end, keep the best model, load it back, export
it as ``.keras`` through the same export command as PyTorch models."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
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
    kept_models,
    load_model,
    load_study_file,
    stored_study,
    study_from_file,
    validation_data,
)
from hwtune.vocabulary import MODEL_ATTR

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


TRAINED: dict[int, object] = {}
"""Trial number -> the trained Keras model as training left it (the study's trainer, watched)."""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keras-study")
    path = folder / "keras.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    url = f"sqlite:///{folder / 'k.db'}"
    st, build, train = study_from_file(load_study_file(path), storage=url)

    def watched(model, params, ctx):  # the study file's own trainer; the trained model is remembered
        out = train(model, params, ctx)
        TRAINED[ctx.trial_number] = model
        return out

    st.optimize(build, watched, n_trials=3)
    return st


def test_a_keras_study_runs_and_stores_its_framework_and_runtime(study) -> None:
    cfg = study.definition()
    assert cfg["runtime"] == "keras" and cfg["description"]["framework"] == "keras"
    recs = study.records()
    assert [r.status for r in recs].count("trained") >= 1
    lat = recs[0].hardware["latency_ms"]
    assert "[keras-" in lat.source and lat.extra["runtime"].startswith("keras-")
    assert recs[0].hardware["size_mb"].note and ".keras" in recs[0].hardware["size_mb"].note


def test_the_best_model_is_kept_as_a_keras_file_through_the_framework_hook(study) -> None:
    (k,) = kept_models(study)  # keep_models: best
    attr = study.optuna_study.trials[k.trial].user_attrs[MODEL_ATTR]
    assert k.model.format == "keras" and attr["filename"] == f"trial-{k.trial}-model.keras"  # its name says its format
    assert attr["bytes"] == Path(k.model.path).stat().st_size
    import h5py

    with zipfile.ZipFile(k.model.path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
        assert "layers" in h5 and "optimizer" not in h5  # the trained weights, not Adam's state (nothing reads it back)
    assert zipfile.is_zipfile(k.model.path) and "config.json" in zipfile.ZipFile(k.model.path).namelist()  # Keras 3's format, no pickle


def test_the_kept_best_model_loads_back_as_the_trained_keras_model(study) -> None:
    keras = import_keras()
    model = load_model(stored_study(study.name, study.storage_url))
    assert isinstance(model, keras.Model)
    best = study.best_feasible()[0]
    x, y = validation_data(study)
    out = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    trained = np.asarray(keras.ops.convert_to_numpy(TRAINED[best.number](x, training=False)))
    assert np.array_equal(out, trained)  # the same weights: the same outputs, bit for bit
    assert float(np.mean(np.argmax(out, axis=1) != y)) == pytest.approx(best.metrics["error"], abs=1e-6)


def test_hwtune_load_model_of_a_stored_keras_study_needs_no_build_model(study) -> None:
    import hwtune

    best = study.best_feasible()[0]
    model = hwtune.load_model(study.name, storage=study.storage_url)
    assert model.count_params() == TRAINED[best.number].count_params()


def test_the_best_model_exports_as_keras_verified_and_remeasured(study, tmp_path: Path) -> None:
    manifest = export(study, format="keras", out=tmp_path / "out", latency_max_time_s=0.2, latency_rel_ci=0.3)
    (m,) = manifest["models"]
    assert m["file"].endswith(".keras") and (tmp_path / "out" / m["file"]).is_file()
    assert m["verification"]["passed"] and m["verification"]["max_abs_diff"] <= m["verification"]["tolerance"]
    assert m["exported"]["runtime"] == "keras" and "[keras-" in m["exported"]["latency_ms"]["source"]
    with pytest.raises(ConfigError) as e:
        export(study, format="onnx", out=tmp_path / "o2", remeasure=False)
    assert e.value.field == "format" and "keras" in (e.value.fix or "")


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
        assert lat["study_source"].endswith(f"[keras-{backend_name()}]") and lat["value"] != lat["study_value"]  # measured, not copied
        assert "this file runs in " + label in lat["comparison"]


def _as_old_record(study, tmp_path: Path, data: bytes) -> object:
    """A copy of ``study`` whose best trial's record is of the layout an older hwtune wrote for a Keras
    study of the torch backend: its ``state_dict`` as ``trial-<n>-weights.pt``, format ``torch.state_dict``."""
    import hashlib
    import shutil
    import sqlite3

    src = Path(study.storage_url.removeprefix("sqlite:///"))
    shutil.copy(src, tmp_path / "old.db")
    (tmp_path / "old.db.artifacts").mkdir()
    (tmp_path / "old.db.artifacts" / "old-weights").write_bytes(data)
    n = study.best_feasible()[0].number
    attr = {"kept": True, "artifact_id": "old-weights", "format": "torch.state_dict", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "filename": f"trial-{n}-weights.pt", "folder": str(tmp_path / "old.db.artifacts")}
    with sqlite3.connect(tmp_path / "old.db") as db:
        (tid,) = db.execute("SELECT trial_id FROM trials WHERE number = ?", (n,)).fetchone()
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = ?", (json.dumps(attr), tid, MODEL_ATTR))
    return stored_study(study.name, f"sqlite:///{tmp_path / 'old.db'}")


def test_weights_an_older_hwtune_kept_for_a_keras_study_still_load_on_the_torch_backend(study, tmp_path: Path) -> None:
    import torch

    from hwtune.study._keep import weights_bytes

    best = study.best_feasible()[0].number
    if backend_name() == "torch":
        old = _as_old_record(study, tmp_path, weights_bytes(TRAINED[best]))
        model = load_model(old, best)
        x, _ = validation_data(study, 32)
        keras = import_keras()
        assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)), keras.ops.convert_to_numpy(TRAINED[best](x, training=False)))
    else:  # a state_dict of the torch backend: another backend's model cannot take it, and the error says where it can
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(1)}, buf)
        with pytest.raises(ConfigError) as e:
            load_model(_as_old_record(study, tmp_path, buf.getvalue()), best)
        assert e.value.field == "trial" and "KERAS_BACKEND=torch" in (e.value.fix or "")
