from __future__ import annotations

import json

import optuna
from typer.testing import CliRunner

from hwtune.cli._costmodel_cmd import costmodel_app, family_cost_features, measurements_from_records, resolve_derived
from hwtune.costmodel import DeviceCostModels
from hwtune.space import FixedParam
from hwtune.vocabulary import CONFIG_ATTR, HARDWARE_ATTR, STATUS_ATTR
from tests.costmodel.conftest import cost_of, flops, sample

runner = CliRunner()


def _make_study(space, path, n=24) -> str:
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="s1", storage=storage)
    study.set_user_attr(CONFIG_ATTR, {"space": space.to_dict(), "device": "cpu-test"})
    dists = {n_: p.distribution() for n_, p in space.items() if not isinstance(p, FixedParam)}
    for i, p in enumerate(sample(space, n, seed=6)):
        params = {k: v for k, v in p.items() if k in dists}
        lat = cost_of(p)
        hw = {
            "latency_ms": {"metric": "latency_ms", "value": lat, "unit": "ms", "source": "measured:timer"},
            "size_mb": {"metric": "size_mb", "value": 0.1 * lat, "unit": "MB", "source": "measured:serialized"},
            "energy_mj": {"metric": "energy_mj", "value": 5.0, "unit": "mJ", "source": "predicted:additive"},
        }
        status = "predicted_over_budget" if i % 7 == 6 else "trained"
        if status == "predicted_over_budget":
            hw = {"latency_ms": {**hw["latency_ms"], "source": "predicted:additive"}}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=0.1,
            user_attrs={STATUS_ATTR: status, HARDWARE_ATTR: hw},
        ))
    return storage


def test_records_keep_measured_values_only(space):
    recs = [
        {"params": {"layers": 1, "width": 8, "kernel": 3, "lr": 0.01},
         "user_attrs": {"hwtune:hardware": {"latency_ms": {"value": 1.5, "source": "measured:timer"},
                                            "params": {"value": 100, "source": "counted"},
                                            "error": {"value": 0.1, "source": "measured"}}}},
        {"params": {"layers": 1, "width": 9, "kernel": 3}, "user_attrs": {"hwtune:hardware": {"latency_ms": {"value": 1.0, "source": "predicted:gp"}}}},
        {"params": {"layers": 2, "width": 9, "kernel": 3}, "user_attrs": {}},
    ]
    out = measurements_from_records(recs, space)
    assert sorted(out) == ["latency_ms", "params"]
    X, y, src = out["latency_ms"]
    assert X == [{"layers": 1, "width": 8, "kernel": 3, "input_size": 32}] and y.tolist() == [1.5] and src == ["measured:timer"]


def test_evaluate_command(space, tmp_path):
    storage = _make_study(space, tmp_path / "s.db")
    out = tmp_path / "cv.json"
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "s1", "--storage", storage, "--model", "additive",
                                      "--model", "linear", "--json", str(out), "--derived", "tests.costmodel.conftest:flops"])
    assert r.exit_code == 0, r.output
    assert "latency_ms" in r.output and "size_mb" in r.output and "energy_mj" not in r.output
    res = json.loads(out.read_text())["results"]
    lat = [x for x in res if x["metric"] == "latency_ms" and x["model"] == "additive"][0]
    assert lat["n"] == 21 and lat["spearman"] > 0.95 and lat["sources"] == ["measured:timer"]


def test_evaluate_errors(space, tmp_path):
    storage = _make_study(space, tmp_path / "s.db")
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "nope", "--storage", storage])
    assert r.exit_code == 2 and "s1" in r.output
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "s1", "--storage", storage, "--metric", "power_w"])
    assert r.exit_code == 2 and "no measurements of 'power_w'" in r.output
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "s1", "--storage", storage, "--derived", "nowhere"])
    assert r.exit_code == 2 and "--derived" in r.output


def test_save_command_writes_a_reusable_device_file(space, tmp_path):
    storage = _make_study(space, tmp_path / "s.db")
    out = tmp_path / "dev.json"
    r = runner.invoke(costmodel_app, ["save", "--study", "s1", "--storage", storage, "--out", str(out),
                                      "--derived", "tests.costmodel.conftest:flops"])
    assert r.exit_code == 0, r.output
    dcm = DeviceCostModels.load(out, space, device="cpu-test", derived=flops)
    assert dcm.n_observations("latency_ms") == 21


def test_resolve_derived():
    assert resolve_derived("") is None
    assert resolve_derived("nb201").__name__ == "nb201_derived"
    assert resolve_derived("tests.costmodel.conftest:flops") is flops


def test_resolve_derived_none_and_a_study_without_a_family():
    assert resolve_derived("none") is None
    assert family_cost_features({"space": {}}) is None
    assert family_cost_features({"space": {}, "description": {"family": "nb201-cell", "data": {"input_shape": [3, 32, 32], "num_classes": 10}}}) is None
    f = family_cost_features({"space": {}, "description": {"family": "cnn", "data": {"input_shape": [1, 8, 8], "num_classes": 10}}})
    assert f is not None and (f.family, f.input_shape, f.num_classes) == ("cnn", (1, 8, 8), 10)


def test_evaluate_without_derived_says_so(space, tmp_path):
    storage = _make_study(space, tmp_path / "s.db")  # no description: no family
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "s1", "--storage", storage, "--model", "additive", "--metric", "latency_ms"])
    assert r.exit_code == 0, r.output
    assert "derived features: none" in r.output


def test_evaluate_uses_the_family_cost_features_of_a_real_study(tmp_path):
    """A few real trials (digits, cnn): with no --derived, evaluate uses the family's cost features,
    on which a parameter count is exact."""
    from hwtune.study import parse_study_file, study_from_file

    url = f"sqlite:///{tmp_path / 'real.db'}"
    spec = parse_study_file({
        "name": "real", "data": {"name": "digits"}, "model": {"family": "cnn"},
        "space": {
            "conv_layers": {"type": "int", "low": 1, "high": 2},
            "filters_0": {"type": "int", "low": 4, "high": 32, "log": True},
            "kernel_0": {"type": "categorical", "choices": [3, 5]},
            "filters_1": {"type": "int", "low": 4, "high": 32, "log": True, "condition": "conv_layers >= 2"},
            "dense_units": {"type": "int", "low": 8, "high": 128, "log": True},
            "lr": 0.05, "epochs": 1,
        },
        "constraints": ["latency_ms <= 1000"], "device": "cpu:1", "inference_batch_size": 8,
        "sampler": "random", "skip_threshold": 0, "latency": {"rel_ci": 0.2, "max_time_s": 0.2},
        "trainer": {"amp": False, "channels_last": False, "compile": False},
    })
    study, build, train = study_from_file(spec, storage=url)
    study.optimize(build, train, n_trials=10)
    out = tmp_path / "cv.json"
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "real", "--storage", url,
                                      "--metric", "params", "--metric", "size_mb", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "derived features: cnn_cost_features of the study's model family: activations, conv_layers, flat_width, macs, params" in r.output
    res = json.loads(out.read_text())
    assert res["features"]["derived"] == "cnn_cost_features" and "derived:params" in res["features"]["columns"]
    by_metric = {x["metric"]: x for x in res["results"]}
    # the default model on the family's features: a count is known almost exactly from 8 trials
    assert by_metric["params"]["n"] == 10 and by_metric["params"]["mdape"] < 0.02 and by_metric["size_mb"]["mdape"] < 0.05
    # --derived still wins, and 'none' turns the features off: the params alone predict a count far worse
    r = runner.invoke(costmodel_app, ["evaluate", "--study", "real", "--storage", url, "--metric", "params",
                                      "--derived", "none", "--json", str(out)])
    assert r.exit_code == 0 and "derived features: none" in r.output
    assert json.loads(out.read_text())["results"][0]["mdape"] > 5 * by_metric["params"]["mdape"]
    # save: the device file carries the family's features, so that a later study of the family loads it
    r = runner.invoke(costmodel_app, ["save", "--study", "real", "--storage", url, "--out", str(tmp_path / "dev.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "dev.json").read_text())["derived_name"] == "cnn_cost_features"
    DeviceCostModels.load(tmp_path / "dev.json", study.space, derived=study.cost_features)


def test_costmodel_package_imports_no_optuna_torch_typer_or_upper_layer():
    """The CLI of cost models lives in the CLI layer; the costmodel package stays below study and train."""
    import ast
    from pathlib import Path

    import hwtune.costmodel as cm

    for f in Path(cm.__file__).parent.glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert not n.startswith(("optuna", "torch", "typer", "hwtune.study", "hwtune.hardware", "hwtune.train", "hwtune.cli")), f"{f.name} imports {n}"
