from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from hwtune import Study
from tests.study import _doubles as d

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, time
from pathlib import Path
from hwtune import Study
from tests.study import _doubles as d

marker = Path(sys.argv[2])

def train(model, params, ctx):
    if ctx.trial_number == 3:
        marker.write_text("training trial 3")
        time.sleep(300)  # killed here
    return d.train(model, params, ctx)

Study("resume", d.SPACE, constraints=["latency_ms <= 10"], storage=sys.argv[1], sampler="random", seed=1).optimize(
    d.build, train, measure=d.measure, n_trials=6)
"""


def test_sigkill_during_training_loses_no_completed_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    marker = tmp_path / "marker"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), url, str(marker)], cwd=REPO, env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, "the worker ended before reaching trial 3"
            assert time.time() < deadline, "trial 3 never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    before = optuna.load_study(study_name="resume", storage=url).trials
    completed_before = {t.number: (t.params, t.value) for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(completed_before) == 3
    assert before[3].state == optuna.trial.TrialState.RUNNING  # what a killed worker leaves behind

    study = Study("resume", d.SPACE, constraints=["latency_ms <= 10"], storage=url, sampler="random", seed=1)
    summary = study.optimize(d.build, d.train, measure=d.measure, n_trials=6)

    after = optuna.load_study(study_name="resume", storage=url).trials
    for number, (params, value) in completed_before.items():  # kept, not recomputed
        assert after[number].params == params and after[number].value == value
        assert after[number].datetime_complete == before[number].datetime_complete
    interrupted = after[3]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["hwtune:status"] == "interrupted"
    assert "ended during the trial" in interrupted.user_attrs["hwtune:failure"]
    retries = [t for t in after if t.user_attrs.get("hwtune:retry_of") == 3]
    assert len(retries) == 1 and retries[0].params == interrupted.params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert summary.counts["interrupted"] == 1
    assert summary.counts["trained"] == 6  # the budget counts finished trials, not the interrupted one


def test_resume_with_a_finished_budget_runs_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    calls = []

    def train(model, params, ctx):
        calls.append(ctx.trial_number)
        return d.train(model, params, ctx)

    make = lambda: Study("s", d.SPACE, constraints=["latency_ms <= 5"], storage=url, sampler="random")  # noqa: E731
    make().optimize(d.build, train, measure=d.measure, n_trials=5)
    n = len(calls)
    make().optimize(d.build, train, measure=d.measure, n_trials=5)
    assert len(calls) == n
    make().optimize(d.build, train, measure=d.measure, n_trials=8)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 8


def test_resumed_study_with_the_default_sampler_learns_from_the_stored_trials(tmp_path):
    import json

    url = f"sqlite:///{tmp_path / 's.db'}"
    make = lambda: Study("s", d.SPACE, constraints=["latency_ms <= 5"], storage=url, cost_model=None)  # noqa: E731
    make().optimize(d.build, d.train, measure=d.measure, n_trials=8)
    make().optimize(d.build, d.train, measure=d.measure, n_trials=16)  # a new process would start the same way
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 16
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 16  # nothing proposed twice
    later = [t for t in trials[8:] if t.user_attrs["hwtune:status"] == "over_budget"]
    assert len(later) <= 2  # the resumed sampler knows where the budget ends from the stored measurements


def test_resume_with_another_definition_is_refused_and_writes_nothing(tmp_path):
    import hashlib

    import pytest

    from hwtune.exceptions import ConfigError

    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    Study("s", d.SPACE, constraints=["latency_ms <= 5"], storage=url, sampler="random").optimize(d.build, d.train, measure=d.measure, n_trials=3)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(ConfigError) as e:
        Study("s", d.SPACE, constraints=["latency_ms <= 7"], storage=url, sampler="random").optimize(d.build, d.train, measure=d.measure, n_trials=5)
    assert e.value.field == "constraints"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_worker_on_another_host_that_stops_beating_is_failed_and_retried(tmp_path, monkeypatch):
    from hwtune.study import _storage
    from hwtune.study._records import TrialRecord

    monkeypatch.setattr(_storage, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(_storage, "GRACE_PERIOD_S", 1)
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    study = Study("hb", d.SPACE, constraints=["latency_ms <= 10"], storage=url, sampler="random")
    ost = study.open()
    trial = ost.ask()
    trial.suggest_int("width", 1, 10)
    trial.suggest_float("lr", 0.01, 1.0, log=True)
    trial.set_user_attr("hwtune:status", "running")
    trial.set_user_attr("hwtune:worker", {"host": "some-other-machine", "pid": 1, "started": 0.0})
    ost._storage.record_heartbeat(trial._trial_id)
    assert _storage.fail_dead_local_trials(ost) == []  # another host: only the heartbeat can tell
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(ost)
    frozen = ost.trials[trial.number]
    rec = TrialRecord.from_frozen(frozen)
    assert frozen.state == optuna.trial.TrialState.FAIL
    assert rec.status == "interrupted" and "interrupted" in rec.failure
    waiting = [t for t in ost.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == frozen.params
    assert waiting[0].user_attrs["hwtune:retry_of"] == frozen.number


def test_an_interrupted_trial_its_worker_failed_but_never_queued_again_is_queued_at_the_next_open(tmp_path):
    """A worker past its grace period after its parent died can end between failing its trial and
    queueing it again: the next open queues it, once; a trial already retried is left alone."""
    from hwtune.study import _storage

    url = f"sqlite:///{tmp_path / 'lost.db'}"
    study = Study("lost", d.SPACE, constraints=["latency_ms <= 10"], storage=url, sampler="random")
    ost = study.open()
    for _ in range(2):
        trial = ost.ask()
        trial.suggest_int("width", 1, 10)
        trial.suggest_float("lr", 0.01, 1.0, log=True)
        trial.set_user_attr("hwtune:status", "interrupted")
        ost.tell(trial, state=optuna.trial.TrialState.FAIL)
    _storage.retry_interrupted(ost, ost.trials[1])  # trial 1 was queued again; trial 0's worker died first
    assert Study("lost", d.SPACE, constraints=["latency_ms <= 10"], storage=url, sampler="random").open() is not None
    retries = [t for t in ost.get_trials(deepcopy=False) if "hwtune:retry_of" in t.user_attrs]
    assert sorted(t.user_attrs["hwtune:retry_of"] for t in retries) == [0, 1]
    assert next(t for t in retries if t.user_attrs["hwtune:retry_of"] == 0).system_attrs["fixed_params"] == ost.trials[0].params  # waiting, same params
    assert _storage.requeue_lost_retries(ost) == []  # once
