"""``hwtune export`` and ``hwtune profile`` on what it wrote, through Typer's test runner; and the
clear error of ``hwtune profile`` on an ONNX file with a fixed batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from hwtune.cli._export_cmd import export_command
from hwtune.cli._profile_cmd import profile_command
from hwtune.hardware import export_onnx
from hwtune.study import Study
from tests.deploy._digits_study import run_study

pytest.importorskip("onnxruntime")

FAST_EXPORT = ["--target-ci", "0.5", "--max-time", "0.2"]
FAST_PROFILE = ["--target-ci", "0.5", "--max-time", "0.3", "--retries", "0", "--threads", "1"]



@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("export")(export_command)
    a.command("profile")(profile_command)

    @a.callback()
    def _root() -> None:
        """test app"""

    return a


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return run_study(tmp_path_factory.mktemp("cli-export"), trials=2)


def test_export_best_then_profile_the_file_at_other_batches(app: typer.Typer, study: Study, tmp_path: Path) -> None:
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["export", "--storage", study.storage_url, "--best", "--format", "onnx", "--out", str(out), *FAST_EXPORT])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    (m,) = manifest["models"]
    assert f"trial {m['trial']} -> {out / m['file']}" in res.output and "verified on 256 validation inputs" in res.output
    assert "latency of the exported file" in res.output and "the study measured" in res.output
    rt = m["exported"]["latency_ms"]["study_retest"]  # every kept network was measured again when the run ended
    assert rt["pair_kind"] == "closing_retest"
    assert f"from its {rt['pairs']} (first, closing retest) pairs" in " ".join(res.output.split())
    assert f"manifest: {out / 'manifest.json'}" in res.output
    # the file runs at batch sizes other than the one it was exported with (dynamic batch)
    res2 = CliRunner().invoke(app, ["profile", str(out / m["file"]), "-b", "1,64", "--metrics", "latency_ms,size_mb", *FAST_PROFILE])
    assert res2.exit_code == 0, res2.output
    rows = [line for line in res2.output.splitlines() if line.startswith("latency_ms")]
    assert len(rows) == 2 and all("[onnxruntime]" in r for r in rows)  # the runtime it ran in, as a study labels it


def test_export_pareto_torchscript_by_study_name(app: typer.Typer, study: Study, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", "digits-export", "--storage", study.storage_url, "--pareto", "-f", "torchscript", "-o", str(tmp_path), "--no-measure", "--n-inputs", "32"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {m["trial"] for m in manifest["models"]} == {r.number for r in study.best_feasible()}
    assert all(m["verification"]["max_abs_diff"] == 0.0 and m["verification"]["n_inputs"] == 32 for m in manifest["models"])
    assert all((tmp_path / m["file"]).suffix == ".pt" for m in manifest["models"])


@pytest.mark.parametrize(
    "args, field",
    [
        (["--best", "--pareto"], "--best / --pareto"),
        (["--trial", "99"], "trial"),
        (["--format", "tflite"], "--format"),
        (["no-such-study"], "STUDY"),
    ],
)
def test_bad_arguments_exit_2_naming_the_field(app: typer.Typer, study: Study, tmp_path: Path, args: list[str], field: str) -> None:
    res = CliRunner().invoke(app, ["export", "--storage", study.storage_url, "--out", str(tmp_path / "x"), "--no-measure", *args])
    assert res.exit_code == 2, res.output
    assert f"error {field}:" in res.output and "Fix:" in res.output
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_export_of_a_storage_that_does_not_exist_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "error --storage:" in res.output
    assert not (tmp_path / "none.db").exists()


def test_profile_of_a_fixed_batch_onnx_file_says_what_to_do(app: typer.Typer, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    path = export_onnx(net, torch.zeros(1, 1, 4, 4), tmp_path / "fixed.onnx", dynamic_batch=False)
    res = CliRunner().invoke(app, ["profile", str(path), "-b", "1,32,256", *FAST_PROFILE])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "-b/--batch-sizes" in out and "fixed batch size of 1" in out and "32, 256" in out
    assert "dynamic batch" in out and "hwtune export" in out
    assert "Traceback" not in res.output and "INVALID_ARGUMENT" not in out  # not ONNX Runtime's own words
    # at its own batch it is measured as any other file
    ok = CliRunner().invoke(app, ["profile", str(path), "-b", "1", "--metrics", "latency_ms", *FAST_PROFILE])
    assert ok.exit_code == 0, ok.output
