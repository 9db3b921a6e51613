from __future__ import annotations

import json

import optuna
from typer.testing import CliRunner

from hwtune.costmodel import DeviceCostModels
from hwtune.costmodel._cli import costmodel_app, measurements_from_records, resolve_derived
from hwtune.space import FixedParam

from .conftest import cost_of, flops, sample

runner = CliRunner()


def _make_study(space, path, n=24) -> str:
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="s1", storage=storage)
    study.set_user_attr("hwtune:config", {"space": space.to_dict(), "device": "cpu-test"})
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
            user_attrs={"hwtune:status": status, "hwtune:hardware": hw},
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


def test_costmodel_package_does_not_import_optuna_or_torch():
    import ast
    from pathlib import Path

    import hwtune.costmodel as cm

    for f in Path(cm.__file__).parent.glob("*.py"):
        if f.name == "_cli.py":
            continue  # the CLI reads Optuna storages (lazily)
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert not n.startswith(("optuna", "torch", "hwtune.study", "hwtune.hardware")), f"{f.name} imports {n}"
