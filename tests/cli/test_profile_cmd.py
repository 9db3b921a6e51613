"""``hwtune profile`` through Typer's test runner (the command registered on a local app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from hwtune.cli._profile_cmd import profile_command

ARCH = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
FAST = ["--target-ci", "0.5", "--max-time", "0.3", "--retries", "0", "--threads", "1"]



@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("profile")(profile_command)

    @a.callback()
    def _root() -> None:
        """test app"""

    return a


def test_profile_nb201_table(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["profile", "nb201", "--arch", ARCH, "-p", "N=1", "--batch-sizes", "1,4", *FAST])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "model: nb201" in out and "input 3x32x32" in out
    for metric in ("latency_ms", "throughput_sps", "power_w", "energy_mj", "peak_mem_mb", "params", "flops", "size_mb"):
        assert metric in out
    lat = [line for line in out.splitlines() if line.startswith("latency_ms")]
    assert len(lat) == 2 and "[" in lat[0]  # one row per batch size, with its interval
    assert "95% CI" in out
    # this machine has no readable energy sensor in CI: the table says what is estimated and why
    if "estimated:tdp" in out:
        assert "ESTIMATED" in out and "notes:" in out


def test_profile_json(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["profile", "nb201", "--params", json.dumps({"arch": ARCH, "N": 1}), "--json", "--metrics", "latency_ms,params,flops", *FAST])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["model"]["family"] == "nb201" and d["model"]["input_shape"] == [3, 32, 32]
    assert set(d["measurements"]) == {"latency_ms", "params", "flops"}
    assert d["measurements"]["latency_ms"]["source"] == "measured:timer"
    assert d["device"]["threads"] == 1
    assert "1" in d["batches"]


def test_no_estimate_says_unavailable(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hwtune.hardware._profile.rapl_zones", lambda: ((), "permission denied reading energy_uj (test)"))
    res = CliRunner().invoke(app, ["profile", "nb201", "--arch", ARCH, "-p", "N=1", "--metrics", "power_w,energy_mj", "--no-estimate", *FAST])
    assert res.exit_code == 0, res.output
    assert "unavailable" in res.output and "permission denied reading energy_uj (test)" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["nb201", "--arch", ARCH, "--batch-sizes", "1,x"], "--batch-sizes"),
        (["nb201", "--arch", ARCH, "--metrics", "accuracy"], "--metrics"),
        (["nb201"], "architecture"),
        (["nb201", "--arch", ARCH, "--device", "tpu"], "unknown device"),
        (["nb201", "--arch", ARCH, "-p", "novalue"], "key=value"),
        (["no_such_family"], "no_such_family"),
    ],
)
def test_bad_input_exits_2_with_a_fix(app: typer.Typer, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["profile", *args, *FAST])
    assert res.exit_code == 2, res.output
    assert message in res.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_needs_input_shape(app: typer.Typer, tmp_path: Path) -> None:
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(m), str(path))
    res = CliRunner().invoke(app, ["profile", str(path), *FAST])
    assert res.exit_code == 2 and "--input-shape" in res.output
    res = CliRunner().invoke(app, ["profile", str(path), "--input-shape", "3,2,2", "--metrics", "latency_ms,params", *FAST])
    assert res.exit_code == 0, res.output
    params_row = next(line for line in res.output.splitlines() if line.startswith("params"))
    assert " 39 " in params_row  # 12 x 3 weights + 3 biases


def test_onnx_file(app: typer.Typer, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests.hardware.test_profile import make_onnx

    path = make_onnx(tmp_path / "tiny.onnx")
    res = CliRunner().invoke(app, ["profile", str(path), "--json", "-b", "1,8", *FAST])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["model"]["format"] == "onnx" and d["model"]["input_shape"] == [48]
    assert d["measurements"]["flops"]["source"] == "unavailable"
    assert set(d["batches"]) == {"1", "8"}
