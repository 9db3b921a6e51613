"""``hwtune deploy check DIR`` on a real tiny bundle (three exported ``cnn`` models) and on broken
ones: exit 0 when every model verifies, 1 when one runs but fails verification, 2 with the file and
the fix when the manifest or a model file is missing or invalid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hwtune.cli._deploy_cmd import deploy_app
from tests.deploy._bundles import build, entry, export_onnx, tiny_bundle, write_manifest


@pytest.fixture(scope="module")
def bundle_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    tiny_bundle(folder)
    return folder


@pytest.fixture
def bundle(bundle_src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(bundle_src, dst)
    return dst


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    a.add_typer(deploy_app, name="deploy")

    @a.callback()
    def _root() -> None:
        """test app"""

    return a


def _run(app: typer.Typer, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["deploy", "check", *args])


def _edit(folder: Path, fn) -> None:  # type: ignore[no-untyped-def]
    p = folder / "manifest.json"
    m = json.loads(p.read_text())
    fn(m)
    p.write_text(json.dumps(m))


def test_check_prints_the_front_the_pick_and_the_sensors(app: typer.Typer, bundle: Path) -> None:
    res = _run(app, str(bundle), "--latency-ms", "2")
    assert res.exit_code == 0, res.output
    out = res.output
    for trial in ("0", "1", "2"):
        assert f"trial_{trial}.onnx" in out
    assert "pick now: trial 1 (trial_1.onnx)" in out
    assert "trial 0 does not fit: predicted p99 3 ms > 2 ms" in out
    assert "sensors:" in out and "battery_percent" in out and ("missing (" in out or "psutil" in out)
    for trial in ("0", "1", "2"):
        assert f"trial {trial} (trial_{trial}.onnx): ok: ran at batch 1, 4, output (batch, 10)" in out


def test_check_json(app: typer.Typer, bundle: Path) -> None:
    res = _run(app, str(bundle), "--json", "--preference", "1")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert all(c["ok"] and c["output_shape"] == [10] for c in d["checks"])
    assert d["state"]["serving"]["trial"] == 2  # preference 1, no SLA: the fastest
    assert set(d["state"]["sensors"]) == {"battery_percent", "power_plugged", "temperature_c", "throttling"}


def test_missing_manifest_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    res = _run(app, str(tmp_path))
    assert res.exit_code == 2
    assert "manifest.json" in res.output and "hwtune export --pareto" in res.output


def test_invalid_manifest_exits_2(app: typer.Typer, bundle: Path) -> None:
    (bundle / "manifest.json").write_text("[1, 2")
    res = _run(app, str(bundle))
    assert res.exit_code == 2 and "not valid JSON" in res.output


def test_missing_model_file_exits_2_naming_it(app: typer.Typer, bundle: Path) -> None:
    (bundle / "trial_1.onnx").unlink()
    res = _run(app, str(bundle))
    assert res.exit_code == 2 and "trial_1.onnx" in res.output and "does not exist" in res.output and "Fix:" in res.output


def test_escaping_path_exits_2(app: typer.Typer, bundle: Path) -> None:
    _edit(bundle, lambda m: m["models"][2].update(file="../b/trial_2.onnx"))
    res = _run(app, str(bundle))
    assert res.exit_code == 2 and "outside the bundle" in res.output


def test_corrupt_model_file_exits_2_naming_it(app: typer.Typer, bundle: Path) -> None:
    (bundle / "trial_2.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 10)
    res = _run(app, str(bundle))
    assert res.exit_code == 2, res.output
    assert "trial_2.onnx" in res.output and "ONNX Runtime cannot load" in res.output


def test_fixed_batch_model_exits_2_with_the_fix(app: typer.Typer, bundle: Path) -> None:
    export_onnx(build({"conv_layers": 1, "filters_0": 2, "dense_units": 8}), bundle / "trial_2.onnx", dynamic=False)  # batch fixed at 2
    res = _run(app, str(bundle))
    assert res.exit_code == 2, res.output
    assert "trial_2.onnx" in res.output and "dynamic batch" in res.output


def test_wrong_input_shape_exits_2(app: typer.Typer, bundle: Path) -> None:
    export_onnx(build({"conv_layers": 1, "filters_0": 2, "dense_units": 8}, input_shape=(1, 12, 12)), bundle / "trial_2.onnx", (1, 12, 12))
    res = _run(app, str(bundle))
    assert res.exit_code == 2, res.output
    assert "does not fit the manifest" in res.output


def test_non_finite_outputs_fail_verification_with_exit_1(app: typer.Typer, bundle: Path) -> None:
    import torch

    net = build({"conv_layers": 1, "filters_0": 2, "dense_units": 8})
    with torch.no_grad():
        net[-1].bias.fill_(float("nan"))
    export_onnx(net, bundle / "trial_2.onnx")
    res = _run(app, str(bundle))
    assert res.exit_code == 1, res.output
    assert "trial 2 (trial_2.onnx): FAILED: batch 1: 10 of 10 outputs are NaN or infinite" in res.output
    assert "verification failed for trial 2 (trial_2.onnx)" in res.output


def test_failed_manifest_verification_exits_1(app: typer.Typer, bundle: Path) -> None:
    _edit(bundle, lambda m: m["models"][0].update(verification={"passed": False, "max_abs_diff": 0.5, "argmax_agreement": 0.9}))
    res = _run(app, str(bundle))
    assert res.exit_code == 1, res.output
    assert "verification failed (passed=false)" in res.output


def test_registered_on_the_main_app() -> None:
    from hwtune.cli._app import app as main_app

    res = CliRunner().invoke(main_app, ["deploy", "check", "--help"])
    assert res.exit_code == 0 and "bundle" in res.output


def test_bad_policy_exits_2(app: typer.Typer, bundle: Path) -> None:
    res = _run(app, str(bundle), "--preference", "3")
    assert res.exit_code == 2 and "policy.preference" in res.output


def test_bundle_with_energy_missing_runs(app: typer.Typer, tmp_path: Path, bundle_src: Path) -> None:
    folder = tmp_path / "noenergy"
    shutil.copytree(bundle_src, folder)
    write_manifest(folder, [entry(t, e, lat) for t, (e, lat) in enumerate(((0.02, 3.0), (0.05, 1.5), (0.10, 0.5)))], touch=False)
    res = _run(app, str(folder), "--energy-mj", "1")
    assert res.exit_code == 0, res.output
    assert "energy: inactive: no model of the bundle has an energy_mj" in res.output
    assert "; energy: -;" in res.output  # no energy source: none measured (never shown as 0)


def test_a_real_study_exported_as_a_front_checks_and_serves(app: typer.Typer, tmp_path: Path) -> None:
    """The issue's path end to end: a tiny real study (digits, Pareto: error and ONNX Runtime
    latency), ``hwtune.export(..., trials="pareto")``, then ``deploy check`` and ``AdaptiveModel``."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    import hwtune
    from hwtune.deploy import AdaptiveModel, Policy, StaticSensors
    from tests.deploy._digits_study import run_study

    study = run_study(tmp_path, trials=3, name="digits-front")
    out = tmp_path / "front"
    manifest = hwtune.export(study, trials="pareto", format="onnx", out=out, n_inputs=64, latency_rel_ci=0.5, latency_max_time_s=0.2)
    res = _run(app, str(out), "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert {c["trial"] for c in d["checks"]} == {m["trial"] for m in manifest["models"]} and all(c["ok"] for c in d["checks"])
    rows = d["state"]["models"]
    assert all(r["latency_source"].startswith(f"{r['latency_ms']:.4g} ms") and "(exported, " in r["latency_source"] for r in rows)
    model = AdaptiveModel.load(out, Policy(), sensors=StaticSensors())
    x = np.zeros((16, *manifest["input_shape"]), dtype=np.float32)
    assert model.predict(x).shape == (16, 10)
    assert model.last_served.trial == min(manifest["models"], key=lambda m: m["metrics"]["error"]["value"])["trial"]  # type: ignore[union-attr]
