from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hwtune.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_run_default_study_small_budget_prints_best_feasible_then_resumes_by_name(tmp_path, monkeypatch):
    """One default study (the slowest thing a CLI test runs, so the resume reuses it): two trials,
    then the same command with a budget of three runs only the third."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    result = CliRunner().invoke(app, ["run", "--trials", "2", "--quiet", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "Study digits-cnn" in result.output
    assert "(q40 on this device)" in result.output  # the calibrated limit, e.g. "latency_ms <= 0.53 (q40 on this device)"
    assert "hwtune report digits-cnn --storage sqlite:///" in result.output and "hwtune dashboard --storage sqlite:///" in result.output
    assert (tmp_path / "h.db").exists()

    r = CliRunner().invoke(app, ["run", "--trials", "3", "-q", "--storage", url])
    assert r.exit_code == 0, r.output
    import optuna

    assert len(optuna.load_study(study_name="digits-cnn", storage=url).trials) == 3


def test_bad_study_file_exits_nonzero_with_field_and_fix(tmp_path):
    spec = {"space": {"filters_0": {"type": "int", "low": 8, "high": 4}}, "storage": f"sqlite:///{tmp_path / 'x.db'}"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "hwtune.cli", "run", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "space.filters_0" in proc.stderr and "inverted range" in proc.stderr and "Fix:" in proc.stderr
    assert not (tmp_path / "x.db").exists()
