"""One study shared through a real PostgreSQL server (issue 16, part 1): separate processes, a worker
killed mid-training, a stale trial of another host caught by the heartbeat, the budget exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState as State

from hwtune import Study
from hwtune.study import _storage
from hwtune.vocabulary import BUDGET_STATUSES, RETRY_OF_ATTR, trial_status
from tests.study import _doubles as d

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import sys
from hwtune import Study
from tests.study import _doubles as d

if __name__ == "__main__":
    train = d.slow_train if sys.argv[3] == "slow" else d.train
    Study("shared", d.SPACE, constraints=["latency_ms <= 100"], storage=sys.argv[1], cost_model=None, keep_models="none",
          seed=int(sys.argv[2])).optimize(d.build, train, measure=d.measure, n_trials=int(sys.argv[4]))
"""


def _start(tmp_path: Path, url: str, seed: int, speed: str, n: int) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), url, str(seed), speed, str(n)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _proposals(trials: list) -> list[tuple]:
    """The params of every trial that is not a retry of another (a retry repeats its original's)."""
    return [tuple(sorted(t.params.items())) for t in trials if RETRY_OF_ATTR not in t.user_attrs and t.params]


def test_four_processes_on_one_postgresql_study_finish_exactly_the_budget_with_distinct_proposals(tmp_path: Path, pg_url: str) -> None:
    Study("shared", d.SPACE, constraints=["latency_ms <= 100"], storage=pg_url, cost_model=None, keep_models="none").open()
    procs = [_start(tmp_path, pg_url, i, "fast", 16) for i in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0], [p.stderr.read()[-2000:] for p in procs if p.stderr]
    trials = optuna.load_study(study_name="shared", storage=pg_url).trials
    assert len(trials) == 16 and sum(trial_status(t) in BUDGET_STATUSES for t in trials) == 16
    props = _proposals(trials)
    dup = [(t.number, t.datetime_start, t.datetime_complete, t.user_attrs.get("hwtune:worker", {}).get("pid"), t.params) for t in trials if props.count(tuple(sorted(t.params.items()))) > 1]
    assert len(set(props)) == len(props), dup  # hwtune's sampler never gave one proposal to two workers


def test_a_worker_killed_mid_training_loses_nothing_and_its_trial_runs_again(tmp_path: Path, pg_url: str) -> None:
    Study("shared", d.SPACE, constraints=["latency_ms <= 100"], storage=pg_url, cost_model=None, keep_models="none").open()
    procs = [_start(tmp_path, pg_url, i, "slow", 12) for i in range(4)]
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline:  # a trial measured and training (slow_train sleeps 1 s)
        for t in optuna.load_study(study_name="shared", storage=pg_url).trials:
            w = t.user_attrs.get("hwtune:worker") or {}
            if t.state == State.RUNNING and "hwtune:hardware" in t.user_attrs and w.get("pid") in {p.pid for p in procs}:
                victim = next(p for p in procs if p.pid == w["pid"]), t.number
                break
        time.sleep(0.05)
    assert victim is not None, "no trial reached training in time"
    proc = victim[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    others = [p for p in procs if p is not proc]
    assert [p.wait(timeout=300) for p in others] == [0, 0, 0], [p.stderr.read()[-2000:] for p in others if p.stderr]
    # the other workers reached the budget with the killed trial still counted as running; a resumed
    # worker on this host recovers it (its process is gone): interrupted, and its params run again
    resumed = _start(tmp_path, pg_url, 9, "fast", 12)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:] if resumed.stderr else ""
    trials = optuna.load_study(study_name="shared", storage=pg_url).trials
    by_number = {t.number: t for t in trials}
    # the trial the killed process held (it may have finished the one seen training and started
    # another), recovered as interrupted — by a surviving worker or by the resumed one
    (number,) = [t.number for t in trials if (t.user_attrs.get("hwtune:worker") or {}).get("pid") == proc.pid and trial_status(t) == "interrupted"]
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == number]
    assert trial_status(retry) == "trained" and retry.params == by_number[number].params
    assert sum(trial_status(t) in BUDGET_STATUSES for t in trials) == 12  # exact: the interrupted one does not count
    assert not [t for t in trials if t.state == State.RUNNING]
    props = _proposals(trials)
    assert len(set(props)) == len(props)


def test_a_stale_trial_of_another_host_is_caught_by_the_heartbeat_and_requeued(pg_url: str, monkeypatch) -> None:
    monkeypatch.setattr(_storage, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(_storage, "GRACE_PERIOD_S", 2)
    s = Study("shared", d.SPACE, constraints=["latency_ms <= 100"], storage=pg_url, sampler="random", cost_model=None, keep_models="none")
    opt = s.open()
    # a worker on another host started a trial, beat once, then its host died
    storage = opt._storage
    tid = storage.create_new_trial(opt._study_id)
    trial = optuna.Trial(opt, tid)
    trial.suggest_int("width", 1, 10)
    trial.suggest_float("lr", 0.01, 1.0, log=True)
    storage.set_trial_user_attr(tid, "hwtune:status", "running")
    storage.set_trial_user_attr(tid, "hwtune:params", {"width": trial.params["width"], "lr": trial.params["lr"]})
    storage.set_trial_user_attr(tid, "hwtune:worker", {"host": "another-host", "pid": 1, "started": 0.0})
    storage.record_heartbeat(tid)
    time.sleep(3)
    s.optimize(d.build, d.train, measure=d.measure, n_trials=4)
    trials = optuna.load_study(study_name="shared", storage=pg_url).trials
    stale = next(t for t in trials if t._trial_id == tid)
    assert stale.state == State.FAIL and trial_status(stale) == "interrupted"
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == stale.number]
    assert retry.params == stale.params and trial_status(retry) == "trained"
