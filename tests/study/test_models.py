"""Keeping trained networks as Optuna artifacts (issue 13): keep_models modes, crash safety, load_model."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml

import hwtune
from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.study import (
    Study,
    kept_models,
    load_model_for,
    parse_study_file,
    stored_study,
    study_from_file,
    validation_data,
    validation_inputs,
    validation_labels,
)
from hwtune.study._keep import ModelKeeper, read_weights
from hwtune.train import evaluate_error
from hwtune.vocabulary import MODEL_ATTR, MODEL_REMOVED_PREFIX, trial_status
from tests._tiny_digits import tiny_digits_spec

REPO = Path(__file__).resolve().parents[2]
State = optuna.trial.TrialState


# -- a tiny real study on the digits -----------------------------------------------------------------
def _spec(tmp: Path, *, keep: str = "all", epochs: int = 1, trials: int = 2, name: str = "digits-keep", **extra: Any) -> dict[str, Any]:
    return tiny_digits_spec(tmp / "keep.db", name, epochs=epochs, trials=trials, keep_models=keep, **extra)


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, Any, Path]:
    """Two trained trials, every model kept (keep_models: all)."""
    tmp = tmp_path_factory.mktemp("digits")
    study, build, train = study_from_file(parse_study_file(_spec(tmp)))
    study.optimize(build, train, n_trials=2)
    return study, build, tmp


def _artifact_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_all_keeps_every_trained_model_beside_the_sqlite_file_as_optuna_artifacts(digits_study):
    study, _, tmp = digits_study
    folder = tmp / "keep.db.artifacts"
    trials = study.optuna_study.get_trials()
    assert [trial_status(t) for t in trials] == ["trained", "trained"]
    ids = {t.user_attrs[MODEL_ATTR]["artifact_id"] for t in trials}
    assert _artifact_files(folder) == ids
    for t in trials:
        m = t.user_attrs[MODEL_ATTR]
        data = (folder / m["artifact_id"]).read_bytes()
        assert m["kept"] and m["format"] == "torch.state_dict" and m["bytes"] == len(data)
        assert m["sha256"] == hashlib.sha256(data).hexdigest()
        # Optuna's own artifact meta, so that optuna-dashboard lists the weights
        meta = optuna.artifacts.get_all_artifact_meta(t, storage=study.optuna_study._storage)
        assert [a.artifact_id for a in meta] == [m["artifact_id"]] and meta[0].filename == f"trial-{t.number}-weights.pt"
    assert study.optuna_study.user_attrs["hwtune:config"]["keep_models"] == "all"


def test_a_loaded_model_reproduces_the_stored_validation_error_exactly(digits_study):
    study, _, tmp = digits_study
    x, y = validation_data(study)
    for k in kept_models(study):
        model = load_model_for(study, k.trial)
        assert not model.training
        assert evaluate_error(model, torch.as_tensor(x), torch.as_tensor(y)) == k.stored.metrics["error"]
    # by name, from the storage alone: the network is rebuilt from the stored family and params
    url = f"sqlite:///{tmp / 'keep.db'}"
    best = min(kept_models(study), key=lambda k: (k.stored.metrics["error"], k.trial))
    model = hwtune.load_model("digits-keep", storage=url)  # trial=None: the best feasible trained trial
    assert evaluate_error(model, torch.as_tensor(x), torch.as_tensor(y)) == best.stored.metrics["error"]
    for k in kept_models("digits-keep", storage=url):
        by_name = hwtune.load_model("digits-keep", k.trial, storage=url)
        assert evaluate_error(by_name, torch.as_tensor(x), torch.as_tensor(y)) == k.stored.metrics["error"]


def test_validation_inputs_are_the_training_split_as_training_saw_it(digits_study):
    study, _, tmp = digits_study
    x = validation_inputs(study, n=7)
    y = validation_labels(study, n=7)
    assert x.shape == (7, 1, 8, 8) and x.dtype == np.float32 and y.shape == (7,) and y.dtype == np.int64
    from hwtune.train import load_dataset

    ref = load_dataset("digits", seed=study.seed)
    assert np.array_equal(x, ref.x_val[:7]) and np.array_equal(y, ref.y_val[:7])
    xs, _ = validation_data("digits-keep", storage=f"sqlite:///{tmp / 'keep.db'}")
    assert xs.shape == ref.x_val.shape and 0.0 <= xs.min() and xs.max() <= 1.0


def test_a_trial_without_a_kept_model_is_a_config_error_naming_trial_and_listing_those_with_one(digits_study):
    study, _, _ = digits_study
    with pytest.raises(ConfigError) as ei:
        load_model_for(study, 99)
    assert ei.value.field == "trial" and "no such trial" in ei.value.problem and "0, 1" in ei.value.fix


# -- keep_models modes, on controlled values -----------------------------------------------------------
SPACE = {"width": {"type": "int", "low": 1, "high": 8, "role": "architecture"},
         "lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "role": "training"}}


def _build(params: dict[str, Any]) -> torch.nn.Module:
    return torch.nn.Linear(int(params["width"]), 2)


def _measure(model: Any, params: dict[str, Any]) -> HardwareReport:
    lat = float(params["width"])
    return HardwareReport({"latency_ms": Measurement("latency_ms", lat, "ms", "measured:test-double", lat, lat, 10)})


def _train(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
    ctx.keep_model(model)
    return {"error": round(0.5 / params["width"] + params["lr"] / 10, 6)}


def _train_no_handover(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
    return {"error": 0.1}


def _run(tmp: Path, keep: str, points: list[tuple[int, float]], objectives: Any = "minimize: error", train: Any = _train, **kw: Any) -> Study:
    st = Study("modes", SPACE, objectives=objectives, storage=f"sqlite:///{tmp / 'm.db'}", sampler="random", cost_model=None, keep_models=keep, **kw)
    for w, lr in points:
        st.optuna_study.enqueue_trial({"width": w, "lr": lr})
    st.optimize(_build, train, measure=_measure, n_trials=len(points))
    return st


def _kept(st: Study) -> list[int]:
    return [k.trial for k in kept_models(st)]


# each trial better than the last: best keeps only the last, deleting the others once they drop out
IMPROVING = [(2, 0.5), (4, 0.5), (8, 0.5), (1, 0.5)]


@pytest.mark.parametrize("keep, expect", [("best", [2]), ("pareto", [2]), ("all", [0, 1, 2, 3]), ("none", [])])
def test_keep_models_modes_single_objective(tmp_path, keep, expect):
    st = _run(tmp_path, keep, IMPROVING)
    assert _kept(st) == expect
    folder = tmp_path / "m.db.artifacts"
    ids = {k.model.artifact_id for k in kept_models(st)}
    assert _artifact_files(folder) == ids
    removed = {int(k[len(MODEL_REMOVED_PREFIX):]) for k in st.optuna_study.user_attrs if k.startswith(MODEL_REMOVED_PREFIX)}
    if keep in ("best", "pareto"):
        assert removed == {0, 1}  # kept when trained, deleted once beaten
        assert "no longer the best" in st.optuna_study.user_attrs[f"{MODEL_REMOVED_PREFIX}0"]["reason"]
        trial3 = st.optuna_study.trials[3].user_attrs[MODEL_ATTR]
        assert trial3 == {"kept": False, "reason": trial3["reason"]} and "not the best" in trial3["reason"]
    else:
        assert removed == set()
    if keep == "none":
        assert not folder.exists()
        assert all(t.user_attrs[MODEL_ATTR] == {"kept": False, "reason": "keep_models: none"} for t in st.optuna_study.trials)
    for k in kept_models(st):  # whatever is kept loads
        assert isinstance(load_model_for(st, k.trial), torch.nn.Linear)


def test_pareto_keeps_the_front_of_a_two_objective_study(tmp_path):
    # (width, lr) -> error 0.5/width + lr/10, latency width. Trial 1 dominates trial 0 (same width, lower
    # error); trial 3 is dominated when trained; trials 1, 2, 4 are the front.
    points = [(2, 0.9), (2, 0.1), (4, 0.1), (4, 0.5), (1, 0.1)]
    st = _run(tmp_path, "pareto", points, objectives={"minimize": ["error", "latency_ms"]})
    front = sorted(r.number for r in st.best_feasible())
    assert front == [1, 2, 4]
    assert _kept(st) == front
    assert _artifact_files(tmp_path / "m.db.artifacts") == {k.model.artifact_id for k in kept_models(st)}
    assert "dropped out of the Pareto front" in st.optuna_study.user_attrs[f"{MODEL_REMOVED_PREFIX}0"]["reason"]
    assert "not on the Pareto front" in st.optuna_study.trials[3].user_attrs[MODEL_ATTR]["reason"]
    # best keeps one even with two objectives: the front's best on the first objective
    (tmp_path / "b").mkdir()
    st2 = _run(tmp_path / "b", "best", points, objectives={"minimize": ["error", "latency_ms"]})
    assert _kept(st2) == [2]


def test_infeasible_trials_keep_no_model_under_best_and_pareto(tmp_path):
    st = _run(tmp_path, "pareto", [(8, 0.1), (2, 0.1)], constraints=["error <= 0.2"])
    assert _kept(st) == [0]
    assert "infeasible" in st.optuna_study.trials[1].user_attrs[MODEL_ATTR]["reason"]


def test_a_trainer_that_hands_no_model_over_records_no_model_kept(tmp_path):
    st = _run(tmp_path, "pareto", [(2, 0.1)], train=_train_no_handover)
    attr = st.optuna_study.trials[0].user_attrs[MODEL_ATTR]
    assert attr["kept"] is False and "ctx.keep_model(model)" in attr["reason"]
    with pytest.raises(ConfigError) as ei:
        hwtune.load_model(st)
    assert ei.value.field == "trial" and "ctx.keep_model" in ei.value.problem and "no trial of this study has a kept model" in ei.value.fix
    summary = st.summary()
    assert summary.models.records[0].kept is False


def test_an_in_memory_study_keeps_models_in_a_temporary_folder(tmp_path):
    st = Study("mem", SPACE, storage=None, sampler="random", cost_model=None)
    st.optuna_study.enqueue_trial({"width": 3, "lr": 0.1})
    st.optimize(_build, _train, measure=_measure, n_trials=1)
    (k,) = kept_models(st)
    assert Path(k.model.path).is_file() and "hwtune-models-" in k.model.path
    model = hwtune.load_model(st)
    assert torch.equal(model.weight, torch.load(k.model.path, weights_only=True)["weight"])


def test_artifacts_chooses_the_folder(tmp_path):
    st = _run(tmp_path, "all", [(2, 0.1)], artifacts=tmp_path / "elsewhere")
    (k,) = kept_models(st)
    assert _artifact_files(tmp_path / "elsewhere") == {k.model.artifact_id} and not (tmp_path / "m.db.artifacts").exists()
    assert st.optuna_study.user_attrs["hwtune:config"]["artifacts"] == str((tmp_path / "elsewhere").resolve())


def test_api_study_needs_its_build_model_when_loaded_by_name(tmp_path):
    st = _run(tmp_path, "all", [(2, 0.1)])
    with pytest.raises(ConfigError) as ei:
        hwtune.load_model("modes", 0, storage=f"sqlite:///{tmp_path / 'm.db'}")
    assert ei.value.field == "build_model" and "build_model=" in ei.value.fix
    model = load_model_for(stored_study("modes", f"sqlite:///{tmp_path / 'm.db'}"), 0, build_model=_build)
    assert torch.equal(model.weight, load_model_for(st, 0).weight)


# -- crash safety -------------------------------------------------------------------------------------
def test_weights_of_a_trial_stopped_before_it_was_recorded_trained_are_deleted_on_resume(tmp_path, monkeypatch):
    keep = ModelKeeper.keep

    def keep_then_interrupt(self, *a, **kw):
        keep(self, *a, **kw)  # the weights are uploaded and recorded...
        raise KeyboardInterrupt  # ...and the trial stops before it is marked trained

    monkeypatch.setattr(ModelKeeper, "keep", keep_then_interrupt)
    st = Study("crash", SPACE, storage=f"sqlite:///{tmp_path / 'c.db'}", sampler="random", cost_model=None, keep_models="all")
    with pytest.raises(KeyboardInterrupt):
        st.optimize(_build, _train, measure=_measure, n_trials=1)
    (crashed,) = st.optuna_study.get_trials(states=(State.FAIL,))
    assert trial_status(crashed) == "interrupted" and crashed.user_attrs[MODEL_ATTR]["kept"]
    folder = tmp_path / "c.db.artifacts"
    assert len(_artifact_files(folder)) == 1
    assert kept_models(st) == []  # never reported as a kept model
    monkeypatch.setattr(ModelKeeper, "keep", keep)
    st2 = Study("crash", SPACE, storage=f"sqlite:///{tmp_path / 'c.db'}", sampler="random", cost_model=None, keep_models="all")
    st2.optimize(_build, _train, measure=_measure, n_trials=1)  # the retry runs; the orphan goes
    trained = [t for t in st2.optuna_study.trials if trial_status(t) == "trained"]
    assert _artifact_files(folder) == {t.user_attrs[MODEL_ATTR]["artifact_id"] for t in trained} and len(trained) == 1
    assert "not trained" in st2.optuna_study.user_attrs[f"{MODEL_REMOVED_PREFIX}{crashed.number}"]["reason"]


def _start(path: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hwtune.cli", "run", str(path), "-q"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trained_ids_match_files(url: str, folder: Path) -> list[Any]:
    trials = optuna.load_study(study_name="killed", storage=url).trials
    trained_ids = {t.user_attrs[MODEL_ATTR]["artifact_id"] for t in trials if trial_status(t) == "trained"}
    assert all(MODEL_ATTR in t.user_attrs for t in trials if trial_status(t) == "trained")
    assert _artifact_files(folder) == trained_ids
    return trials


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_study_killed_mid_training_keeps_weights_only_for_trials_recorded_trained(tmp_path):
    spec = _spec(tmp_path, keep="all", epochs=12, trials=2, name="killed")
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(spec))
    url, folder = f"sqlite:///{tmp_path / 'keep.db'}", tmp_path / "keep.db.artifacts"
    proc = _start(path, tmp_path)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                trials = optuna.load_study(study_name="killed", storage=url).trials
            except Exception:  # noqa: BLE001 - the storage is being created by the other process
                trials = []
            if sum(t.state == State.COMPLETE for t in trials) >= 1 and any(t.state == State.RUNNING and "hwtune:hardware" in t.user_attrs for t in trials):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no trial reached training in time")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    trials = _trained_ids_match_files(url, folder)
    (running,) = [t for t in trials if t.state == State.RUNNING]
    assert MODEL_ATTR not in running.user_attrs and len(_artifact_files(folder)) >= 1
    proc = _start(path, tmp_path)  # resume: the killed trial is recovered (interrupted) and run again
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    trials = _trained_ids_match_files(url, folder)
    assert trial_status(next(t for t in trials if t.number == running.number)) == "interrupted"
    assert sum(trial_status(t) == "trained" for t in trials) == 2


# -- arguments -------------------------------------------------------------------------------------------
def test_bad_keep_models_and_artifacts_are_config_errors_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError) as ei:
        Study("x", SPACE, storage=f"sqlite:///{tmp_path / 'x.db'}", keep_models="everything")
    assert ei.value.field == "keep_models" and "pareto" in ei.value.fix
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError) as ei:
        Study("x", SPACE, storage=f"sqlite:///{tmp_path / 'x.db'}", artifacts=tmp_path / "f")
    assert ei.value.field == "artifacts"
    with pytest.raises(ConfigError) as ei:
        parse_study_file({**_spec(tmp_path), "keep_models": "bestt"})
    assert ei.value.field == "keep_models"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_server_storage_needs_artifacts_unless_no_model_is_kept(tmp_path):
    url = "postgresql://u@localhost/db"
    with pytest.raises(ConfigError) as ei:
        ModelKeeper("pareto", None, url).check()
    assert ei.value.field == "artifacts" and "keep_models: none" in ei.value.fix
    ModelKeeper("none", None, url).check()
    ModelKeeper("all", tmp_path / "models", url).check()
    assert ModelKeeper("all", tmp_path / "models", url).definition() == {"keep_models": "all", "artifacts": str((tmp_path / "models").resolve())}


def test_weights_are_read_as_tensors_only_and_checked_against_their_hash(tmp_path):
    from optuna.artifacts import FileSystemArtifactStore

    store = FileSystemArtifactStore(tmp_path)
    torch.save({"w": torch.ones(2)}, tmp_path / "good")
    sha = hashlib.sha256((tmp_path / "good").read_bytes()).hexdigest()
    assert torch.equal(read_weights(store, "good", sha)["w"], torch.ones(2))
    with pytest.raises(ConfigError, match="sha256"):
        read_weights(store, "good", "0" * 64)
    torch.save({"w": _NotATensor()}, tmp_path / "pickled")  # an arbitrary object: weights_only refuses it
    with pytest.raises(ConfigError, match="cannot be read as tensors"):
        read_weights(store, "pickled", None)
    with pytest.raises(ConfigError) as ei:
        read_weights(store, "missing", None)
    assert ei.value.field == "artifacts"


class _NotATensor:
    pass


# -- the framework hook (study._framework: save_kept / load_kept), old records, the no-model message ---
def test_a_torch_study_keeps_the_same_record_and_file_as_before_frameworks_kept_models(tmp_path):
    st = _run(tmp_path, "all", [(3, 0.1)])
    attr = st.optuna_study.trials[0].user_attrs[MODEL_ATTR]
    assert list(attr) == ["kept", "artifact_id", "format", "bytes", "sha256", "filename", "folder"]
    assert attr["format"] == "torch.state_dict" and attr["filename"] == "trial-0-weights.pt"
    (meta,) = optuna.artifacts.get_all_artifact_meta(st.optuna_study.trials[0], storage=st.optuna_study._storage)
    assert meta.mimetype == "application/octet-stream" and meta.filename == "trial-0-weights.pt"
    data = (tmp_path / "m.db.artifacts" / attr["artifact_id"]).read_bytes()
    state = torch.load(io.BytesIO(data), weights_only=True)
    model = hwtune.load_model(st, 0)
    assert set(state) == {"weight", "bias"} and torch.equal(model.weight, state["weight"]) and not model.training


def test_a_record_without_a_format_is_read_as_a_torch_state_dict(tmp_path):
    """Records of the oldest layout: the format is PyTorch's when none is written."""
    from hwtune.study._framework import TorchFramework, framework_for_kept_format

    assert isinstance(framework_for_kept_format(None), TorchFramework) and isinstance(framework_for_kept_format("torch.state_dict"), TorchFramework)
    with pytest.raises(ConfigError) as ei:
        framework_for_kept_format("onnx.model")
    assert ei.value.field == "trial" and "onnx.model" in ei.value.problem and "keras" in ei.value.fix


def _keras_or_skip() -> None:
    from hwtune.keras._backend import import_keras, keras_available

    if not keras_available():
        pytest.skip("Keras 3 is not installed (pip install -e '.[keras]')")
    import_keras()  # KERAS_BACKEND, else the configured backend if installed, else torch


@pytest.mark.parametrize("name", ["torch", "keras"])
def test_a_framework_keeps_and_reads_back_its_trained_network(name: str, tmp_path: Path) -> None:
    from hwtune.study._framework import framework_for_kept_format, get_framework

    if name == "keras":
        _keras_or_skip()
    fw = get_framework(name)
    params = {"conv_layers": 1, "filters_0": 4, "dense_units": 8}
    model = fw.build("cnn", params, (1, 8, 8), 10)
    path = tmp_path / f"kept{fw.kept_suffix}"
    fw.save_kept(model, path)
    assert framework_for_kept_format(fw.kept_format) is fw
    rebuilt = []

    def rebuild() -> Any:
        rebuilt.append(1)
        return fw.build("cnn", {**params, "dense_units": 8}, (1, 8, 8), 10)

    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    back = fw.load_kept(path.read_bytes(), rebuild, 7)
    assert np.array_equal(fw.predict(back, x), fw.predict(model, x))
    assert rebuilt == ([1] if name == "torch" else [])  # a .keras file holds the network: nothing to rebuild
    with pytest.raises(ConfigError) as ei:
        fw.load_kept(b"not a model", rebuild, 7)
    assert ei.value.field == "trial" and "trial 7" in ei.value.problem


def test_without_a_kept_model_the_message_says_why_for_the_study_s_keep_models(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    st = _run(tmp_path / "a", "pareto", [(2, 0.1)], train=_train_no_handover)
    with pytest.raises(ConfigError) as ei:
        hwtune.load_model(st)
    assert "keep_models: pareto" in ei.value.fix and "run it with keep_models" not in ei.value.fix and "ctx.keep_model(model)" in ei.value.fix
    st = _run(tmp_path / "b", "none", [(2, 0.1)])
    with pytest.raises(ConfigError) as ei:
        hwtune.load_model(st)
    assert "run it with keep_models: pareto, best or all" in ei.value.fix
