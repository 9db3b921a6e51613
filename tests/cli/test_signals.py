"""Ctrl-C in ``hwtune run`` (issue 11): the running trial is abandoned and re-queued, exit 130, resume is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from hwtune.vocabulary import BUDGET_STATUSES, trial_status
from tests._tiny_digits import tiny_digits_spec

REPO = Path(__file__).resolve().parents[2]
State = optuna.trial.TrialState

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _study_file(tmp_path: Path, epochs: int = 10) -> tuple[Path, str]:
    db = tmp_path / "sig.db"
    spec = tiny_digits_spec(db, "sig", epochs=epochs, trials=3, filters_high=16, lr=(0.01, 0.1), batch_size=32)
    del spec["trainer"]  # the trainer's defaults, as a user's file has them
    path = tmp_path / "sig.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, f"sqlite:///{db}"


def _start(path: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "hwtune.cli", "run", str(path), "-q"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(proc: subprocess.Popen, url: str, completed: int, timeout: float = 120) -> None:
    """Until ``completed`` trials are done and another one is training (measured, not finished)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            trials = optuna.load_study(study_name="sig", storage=url).trials
        except Exception:
            trials = []
        done = sum(t.state == State.COMPLETE for t in trials)
        if done >= completed and any(t.state == State.RUNNING and "hwtune:hardware" in t.user_attrs for t in trials):
            return
        time.sleep(0.1)
    raise AssertionError("no trial reached training in time")


def test_first_ctrl_c_abandons_the_trial_requeues_it_and_the_same_command_resumes_exactly(tmp_path):
    path, url = _study_file(tmp_path)
    proc = _start(path, tmp_path)
    try:
        _wait_for_training(proc, url, completed=1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "1 finished trials" in err and "queued to run first" in err
    assert f"Resume with the same command: hwtune run {path} -q" in err
    trials = optuna.load_study(study_name="sig", storage=url).trials
    abandoned = [t for t in trials if t.state == State.FAIL]
    assert len(abandoned) == 1 and abandoned[0].user_attrs["hwtune:status"] == "interrupted"
    (retry,) = [t for t in trials if t.state == State.WAITING]
    assert retry.user_attrs["hwtune:retry_of"] == abandoned[0].number
    assert retry.system_attrs["fixed_params"] == abandoned[0].params
    assert not [t for t in trials if t.state == State.RUNNING]

    proc = _start(path, tmp_path)  # the same command
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    after = optuna.load_study(study_name="sig", storage=url).trials
    assert sum(trial_status(t) in BUDGET_STATUSES for t in after) == 3  # exact budget
    rerun = after[retry.number]
    assert rerun.state == State.COMPLETE and rerun.params == abandoned[0].params
    new = [t for t in after if t.number > abandoned[0].number and t.number != retry.number]
    assert all(t.datetime_start >= rerun.datetime_start for t in new)  # the retry ran first


def test_second_ctrl_c_exits_at_once(monkeypatch):
    from hwtune.cli import _app

    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(_app.os, "_exit", fake_exit)
    with _app._CtrlC() as ctrl_c:
        assert signal.getsignal(signal.SIGINT) == ctrl_c._handle
        with pytest.raises(KeyboardInterrupt):  # the first: abandon the trial cleanly
            ctrl_c._handle(signal.SIGINT, None)
        assert exits == []
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()  # a swallowed first Ctrl-C still ends the run after the trial
        with pytest.raises(SystemExit):
            ctrl_c._handle(signal.SIGINT, None)  # the second: at once
        assert exits == [130]
    assert signal.getsignal(signal.SIGINT) is not ctrl_c._handle
