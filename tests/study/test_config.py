from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwtune.exceptions import ConfigError
from hwtune.study import default_study_file, load_study_file, study_from_file
from tests.study._specs import DELETE, changed

GOOD = {
    "name": "cfg",
    "data": {"name": "digits"},
    "model": {"family": "cnn"},
    "space": {
        "conv_layers": {"type": "int", "low": 1, "high": 2},
        "filters_0": {"type": "int", "low": 4, "high": 16},
        "dense_units": {"type": "int", "low": 8, "high": 32},
        "lr": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
        "epochs": 1,
    },
    "objective": {"minimize": "error"},
    "constraints": ["latency_ms <= 5"],
    "device": "cpu:1",
    "inference_batch_size": 8,
    "budget": {"trials": 2},
}


def _write(tmp_path: Path, spec: dict) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_default_study_is_valid_and_marks_architecture_params():
    spec = default_study_file()
    study, build, train = study_from_file(spec, storage=None)
    assert study.space.hardware_names() == ["conv_layers", "filters_0", "kernel_0", "filters_1", "kernel_1", "filters_2", "kernel_2", "dense_units"]
    assert [c.text for c in study.constraints] == ["latency_ms <= q40"]  # relative: calibrated when the study starts
    assert study.input_shape == (1, 8, 8)


def test_good_file_runs_and_records_everything(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study, build, train = study_from_file(load_study_file(_write(tmp_path, GOOD)), storage=url)
    summary = study.optimize(build, train, n_trials=2)
    assert sum(summary.counts.values()) == 2
    rec = summary.records[0]
    lat = rec.hardware["latency_ms"]
    # at the study's stored reference speed (issue 12): the wall clock's value is kept beside it
    assert lat.source == "measured:timer/reference[onnxruntime]" and lat.ci_low <= lat.value <= lat.ci_high and lat.repeats >= 10
    ref = study.optuna_study.user_attrs["hwtune:config"]["reference"]
    assert lat.extra["at_reference_ms"] == ref["ms"] > 0 and lat.extra["wall_ms"] > 0
    assert lat.value == pytest.approx(lat.extra["rel_to_ref"] * ref["ms"], rel=1e-3)
    assert lat.extra["threads"] == 1 and lat.extra["batch_size"] == 8
    assert rec.hardware["params"].source == "counted"
    t = study.optuna_study.trials[0]
    assert t.user_attrs["hwtune:device"]["threads"] == 1
    if rec.status == "trained":
        assert 0 <= rec.metrics["error"] <= 1 and "test_error" in rec.metrics


def _mutate(path: str, value):
    return changed(GOOD, {path: value})


_DELETE = DELETE

BAD = [
    ("unknown key", "optimiser", "tpe", "optimiser", "unknown key"),
    ("wrong type", "inference_batch_size", "eight", "inference_batch_size", "integer"),
    ("inverted range", "space.filters_0", {"type": "int", "low": 16, "high": 4}, "space.filters_0", "inverted"),
    ("empty range", "space.lr", {"type": "float", "low": 0.1, "high": 0.1}, "space.lr", "empty range"),
    ("bad constraint", "constraints", ["latency_ms => 5"], "constraints[0]", "cannot parse"),
    ("unknown metric", "constraints", ["latency_s <= 5"], "constraints[0]", "unknown metric"),
    ("unknown objective metric", "objective", {"minimize": "loss"}, "objective.minimize", "unknown metric"),
    ("missing data path", "data", {"name": "mnist", "path": "/nonexistent/mnist"}, "data.path", "does not exist"),
    ("data without path", "data", {"name": "mnist"}, "data.path", "needs a path"),
    ("unknown family", "model.family", "transformer", "model.family", "unknown model family"),
    ("unknown family param", "space.filtres_0", {"type": "int", "low": 4, "high": 8}, "space.filtres_0", "no param"),
    ("family cannot build", "space.filters_0", {"type": "int", "low": 0, "high": 8}, "space.filters_0", "outside what"),
    ("missing space", "space", _DELETE, "space", "missing"),
    ("bad device", "device", "gpu7", "device", "unknown device"),
    ("zero budget", "budget", {"trials": 0}, "budget.trials", "greater than or equal to 1"),
]


@pytest.mark.parametrize("what, path, value, field, words", BAD, ids=[b[0] for b in BAD])
def test_bad_study_file_names_field_and_fix_and_writes_nothing(tmp_path, what, path, value, field, words):
    db = tmp_path / "x.db"
    with pytest.raises(ConfigError) as e:
        spec = load_study_file(_write(tmp_path, _mutate(path, value)))
        study, build, train = study_from_file(spec, storage=f"sqlite:///{db}")
    assert e.value.field == field, str(e.value)
    assert words in str(e.value)
    assert "Fix:" in str(e.value) or e.value.fix is None
    assert not db.exists()


def test_model_that_cannot_build_is_caught_before_the_study(tmp_path):
    # dense input size of an MLP on images works; a cnn on flat features cannot build
    import numpy as np

    arrays = tmp_path / "flat.npz"
    rng = np.random.default_rng(0)
    np.savez(arrays, x=rng.normal(size=(60, 5)).astype("float32"), y=np.arange(60) % 3)
    spec = _mutate("data", {"name": "arrays", "path": str(arrays)})
    with pytest.raises(ConfigError) as e:
        study_from_file(load_study_file(_write(tmp_path, spec)), storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert e.value.field == "model.family" and "image input" in str(e.value)
    assert not (tmp_path / "x.db").exists()


def test_same_seed_same_file_same_proposals_and_trained_results():
    from hwtune.study import parse_study_file

    runs = []
    for _ in range(2):
        study, build, train = study_from_file(parse_study_file({**GOOD, "sampler": "tpe", "storage": "sqlite:///:memory:"}))
        summary = study.optimize(build, train, n_trials=3)
        runs.append([(r.params, r.status, r.metrics.get("error"), r.metrics.get("test_error")) for r in summary.records])
    assert runs[0] == runs[1]
    assert all(status == "trained" for _, status, _, _ in runs[0])


def test_cost_model_keys_reach_the_study(tmp_path):
    from hwtune.study import parse_study_file

    study, _, _ = study_from_file(parse_study_file({**GOOD, "cost_model": "none"}))
    assert study.cost_model is None
    study, _, _ = study_from_file(parse_study_file({**GOOD, "cost_model": "gp", "skip_threshold": 0.05, "cost_model_file": str(tmp_path / "c.json")}))
    assert (study.cost_model, study.skip_threshold, study.cost_model_file) == ("gp", 0.05, str(tmp_path / "c.json"))
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file({**GOOD, "cost_model": "oracle"}))
    assert e.value.field == "cost_model"


def test_the_family_cost_features_reach_the_study_and_its_cost_model(tmp_path):
    import pickle

    from hwtune.study import parse_study_file
    from hwtune.train import FamilyCostFeatures

    study, _, _ = study_from_file(parse_study_file({**GOOD, "storage": f"sqlite:///{tmp_path / 'f.db'}"}))
    assert study.cost_features == FamilyCostFeatures("cnn", (1, 8, 8), 10)
    assert pickle.loads(pickle.dumps(study)).cost_features == study.cost_features  # worker processes
    study.open()
    assert study._costs.featurizer.derived is study.cost_features
    mlp = {**GOOD, "model": {"family": "mlp"}, "space": {"hidden_layers": {"type": "int", "low": 1, "high": 2}, "lr": 0.1, "epochs": 1}}
    study, _, _ = study_from_file(parse_study_file(mlp))
    assert study.cost_features == FamilyCostFeatures("mlp", (1, 8, 8), 10)
