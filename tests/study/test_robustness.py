"""A study that cannot be broken (issue 11): roles, user pruning, interrupts, workers, races, seeds, storage faults."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import psutil
import pytest

from hwtune import Study
from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.study._storage import storage_config_error
from hwtune.vocabulary import BUDGET_STATUSES, trial_status
from tests.study import _doubles as d

REPO = Path(__file__).resolve().parents[2]
State = optuna.trial.TrialState


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. a param without a role never shares a measurement silently ------------------------------------
def test_api_param_without_role_is_architecture_and_explicit_training_stays_training():
    s = Study("r", {"width": {"type": "int", "low": 1, "high": 4}, "lr": {"type": "float", "low": 0.1, "high": 1.0, "role": "training"}, "depth": 2})
    assert s.space["width"].role == "architecture" and s.space["depth"].role == "architecture"
    assert s.space["lr"].role == "training"
    assert s.space.hardware_names() == ["width", "depth"]


def _torch_build(params):
    import torch

    return torch.nn.Linear(4, params["width"])


def _torch_train(model, params, ctx):
    return {"error": 1.0 / (1 + model.out_features)}


def _counting_meter(with_params: bool):
    def meter(model, params):
        n = sum(p.numel() for p in model.parameters())
        ms = {"latency_ms": Measurement("latency_ms", float(n) / 100, "ms", "measured:test-double", None, None, 1)}
        if with_params:
            ms["params"] = Measurement("params", float(n), "", "counted", None, None, None)
        return HardwareReport(ms)

    return meter


@pytest.mark.parametrize("meter_counts", [True, False])
def test_reusing_a_measurement_for_a_different_network_is_refused_naming_the_param(meter_counts):
    pytest.importorskip("torch")
    space = {"width": {"type": "int", "low": 1, "high": 500, "role": "training"}, "k": {"type": "int", "low": 1, "high": 2, "role": "architecture"}}
    s = Study("mis", space, constraints=["latency_ms <= 1000"], sampler="random", cost_model=None)
    for w in (4, 436, 4):
        s.optuna_study.enqueue_trial({"width": w, "k": 1})
    summary = s.optimize(_torch_build, _torch_train, measure=_counting_meter(meter_counts), n_trials=3)
    recs = summary.records
    assert recs[0].status == "trained"
    assert recs[1].status == "failed"
    assert "'width'" in recs[1].failure and "role: architecture" in recs[1].failure and "20 and 2,180 parameters" in recs[1].failure
    assert "latency_ms" not in recs[1].hardware  # nothing of another network stored on it
    assert recs[2].status == "trained" and recs[2].hardware["latency_ms"].extra.get("reused_from_trial") == 0  # same network: reused


# -- 2. user code pruning, SystemExit and KeyboardInterrupt in a trial ---------------------------------
def _pruning_train(model, params, ctx):
    raise optuna.TrialPruned("the user's own early stop")


def test_train_raising_trial_pruned_is_recorded_pruned_and_counts_toward_the_budget():
    s = Study("p", d.SPACE, constraints=["latency_ms <= 100"], sampler="random", cost_model=None)
    summary = s.optimize(d.build, _pruning_train, measure=d.measure, n_trials=4)
    trials = s.optuna_study.trials
    assert len(trials) == 4
    assert all(t.state == State.PRUNED and t.user_attrs["hwtune:status"] == "pruned" for t in trials)
    assert summary.counts == {"pruned": 4}


class _Raiser:
    """Trains normally, except that trial ``at`` raises ``exc``."""

    def __init__(self, exc: BaseException, at: int) -> None:
        self.exc, self.at = exc, at

    def __call__(self, model, params, ctx):
        if ctx.trial_number == self.at:
            raise self.exc
        return d.train(model, params, ctx)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
def test_interrupt_inside_a_trial_marks_it_interrupted_requeues_it_and_propagates(tmp_path, exc):
    url = f"sqlite:///{tmp_path / 's.db'}"
    make = lambda: Study("i", d.SPACE, constraints=["latency_ms <= 100"], storage=url, sampler="random", cost_model=None)  # noqa: E731
    with pytest.raises(type(exc)):
        make().optimize(d.build, _Raiser(exc, at=1), measure=d.measure, n_trials=4)
    trials = optuna.load_study(study_name="i", storage=url).trials
    assert [t.state for t in trials] == [State.COMPLETE, State.FAIL, State.WAITING]
    assert trials[1].user_attrs["hwtune:status"] == "interrupted"
    assert type(exc).__name__ in trials[1].user_attrs["hwtune:failure"]
    assert trials[2].user_attrs["hwtune:retry_of"] == 1 and trials[2].system_attrs["fixed_params"] == trials[1].params

    summary = make().optimize(d.build, d.train, measure=d.measure, n_trials=4)  # resume: the retry runs first
    after = optuna.load_study(study_name="i", storage=url).trials
    assert after[2].state == State.COMPLETE and after[2].params == trials[1].params
    assert summary.counts == {"trained": 4, "interrupted": 1}
    assert not [t for t in after if t.state in (State.RUNNING, State.WAITING)]


# -- 4. workers: an exact budget; they die with their parent ---------------------------------------------
def test_two_workers_finish_exactly_the_budget(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    s = Study("w", d.SPACE, constraints=["latency_ms <= 100"], storage=url, sampler="random", cost_model=None)
    s.optimize(d.build, d.slow_train, measure=d.measure, n_trials=5, n_workers=2)
    trials = optuna.load_study(study_name="w", storage=url).trials
    assert sum(trial_status(t) in BUDGET_STATUSES for t in trials) == 5
    assert len(trials) == 5


WORKERS_SCRIPT = """
import sys, time
from hwtune import Study
from tests.study import _doubles as d

def train(model, params, ctx):
    time.sleep(60)
    return d.train(model, params, ctx)

if __name__ == "__main__":
    Study("kill", d.SPACE, constraints=["latency_ms <= 100"], storage=sys.argv[1], sampler="random", cost_model=None).optimize(
        d.build, train, measure=d.measure, n_trials=20, n_workers=3)
"""


def test_workers_die_with_a_killed_parent_and_their_trials_are_requeued(tmp_path):
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(WORKERS_SCRIPT))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    proc = subprocess.Popen([sys.executable, str(script), url], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:  # until all three processes are training
            assert proc.poll() is None and time.time() < deadline, "the workers never all started a trial"
            if db.exists():
                try:
                    running = optuna.load_study(study_name="kill", storage=url).get_trials(states=(State.RUNNING,))
                except Exception:
                    running = []
                if len({t.user_attrs.get("hwtune:worker", {}).get("pid") for t in running} - {None}) == 3:
                    break
            time.sleep(0.2)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len([w for w in workers if "python" in w.name().lower()]) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=8)
        assert not alive, f"workers outlived their parent: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in psutil.Process().children(recursive=True):
            w.kill()

    s = Study("kill", d.SPACE, constraints=["latency_ms <= 100"], storage=url, sampler="random", cost_model=None)
    s.open()
    trials = s.optuna_study.trials
    assert not [t for t in trials if t.state == State.RUNNING]
    interrupted = [t for t in trials if trial_status(t) == "interrupted"]
    assert len(interrupted) >= 3  # the three trials the workers were training (a retry a dying worker picked up, too)
    retried = {t.user_attrs["hwtune:retry_of"] for t in trials if "hwtune:retry_of" in t.user_attrs}
    assert {t.number for t in interrupted} <= retried  # each queued again with its params: WAITING, or (under
    # heavy load a worker not yet reached by its parent-death signal may pop it first) run by then


# -- 5. two processes creating one study on a new SQLite file at once -----------------------------------
def _create_at_once(barrier, urls, results):
    from hwtune import Study as S
    from tests.study import _doubles as dd

    for url in urls:
        barrier.wait()
        try:
            S("race", dd.SPACE, constraints=["latency_ms <= 5"], storage=url, sampler="random", cost_model=None).open()
            results.put("ok")
        except BaseException as e:  # noqa: BLE001
            results.put(f"{type(e).__name__}: {e}")


def test_two_processes_creating_the_same_new_sqlite_study_at_once_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    urls = [f"sqlite:///{tmp_path / f'race{i}.db'}" for i in range(8)]
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_create_at_once, args=(barrier, urls, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    out = [results.get(timeout=5) for _ in range(16)]
    assert out == ["ok"] * 16, [o for o in out if o != "ok"]
    for url in urls:
        assert len(optuna.load_study(study_name="race", storage=url).trials) == 0


# -- 6. a resumed study never replays its proposals ------------------------------------------------------
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_resumed_baseline_sampler_does_not_repeat_earlier_params(tmp_path, sampler):
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    make = lambda: Study("seed", d.SPACE, storage=url, sampler=sampler, seed=7, cost_model=None, constraints=["latency_ms <= 100"])  # noqa: E731
    make().optimize(d.build, d.train, measure=d.measure, n_trials=5)
    make().optimize(d.build, d.train, measure=d.measure, n_trials=10)
    trials = optuna.load_study(study_name="seed", storage=url).trials
    assert len(trials) == 10
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 10


def test_fresh_study_with_the_same_seed_is_reproducible():
    runs = []
    for _ in range(2):
        s = Study("rep", d.SPACE, sampler="random", seed=3, cost_model=None, constraints=["latency_ms <= 100"])
        s.optimize(d.build, d.train, measure=d.measure, n_trials=4)
        runs.append([t.params for t in s.optuna_study.trials])
    assert runs[0] == runs[1]


# -- 8. storage faults: a ConfigError naming storage, the cause and the fix; nothing written -------------
def test_corrupt_database_file_is_a_config_error_and_is_left_untouched(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(os.urandom(8192))
    before = _sha(db)
    s = Study("c", d.SPACE, storage=f"sqlite:///{db}", sampler="random", cost_model=None, constraints=["latency_ms <= 5"])
    with pytest.raises(ConfigError) as ei:
        s.optimize(d.build, d.train, measure=d.measure, n_trials=2)
    assert ei.value.field == "storage"
    assert "not a database" in ei.value.problem and ei.value.fix
    assert _sha(db) == before


def test_read_only_database_is_a_config_error_and_nothing_is_written(tmp_path):
    db = tmp_path / "ro.db"
    Study("ro", d.SPACE, storage=f"sqlite:///{db}", sampler="random", cost_model=None, constraints=["latency_ms <= 5"]).optimize(
        d.build, d.train, measure=d.measure, n_trials=1)
    before = _sha(db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"  # read-only even for root
    s = Study("ro", d.SPACE, storage=url, sampler="random", cost_model=None, constraints=["latency_ms <= 5"])
    with pytest.raises(ConfigError) as ei:
        s.optimize(d.build, d.train, measure=d.measure, n_trials=3)
    assert ei.value.field == "storage" and "readonly" in ei.value.problem and "writable" in ei.value.fix
    assert _sha(db) == before


FULL_DISK_SCRIPT = """
import os, resource, signal, sys
from hwtune import Study
from hwtune.exceptions import ConfigError
from tests.study import _doubles as d

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG) instead of killing
db = sys.argv[1]
make = lambda: Study("full", d.SPACE, constraints=["latency_ms <= 100"], storage="sqlite:///" + db, sampler="random", cost_model=None)
make().open()
limit = os.path.getsize(db) + 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    make().optimize(d.build, d.train, measure=d.measure, n_trials=500)
except ConfigError as e:
    print(e.field, "|", e.problem, "|", e.fix)
    sys.exit(2)
"""


def test_full_disk_is_a_config_error_naming_the_cause_and_no_trial_is_blamed(tmp_path):
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent(FULL_DISK_SCRIPT))
    db = tmp_path / "full.db"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    proc = subprocess.run([sys.executable, str(script), str(db)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    field, problem, fix = (x.strip() for x in proc.stdout.strip().splitlines()[-1].split("|"))
    assert field == "storage" and ("disk" in problem) and "free disk space" in fix
    trials = optuna.load_study(study_name="full", storage=f"sqlite:///{db}").trials
    assert not [t for t in trials if str(t.user_attrs.get("hwtune:failure", "")).startswith("measure")]


def test_postgresql_url_without_its_driver_names_the_extra_to_install(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without the postgres extra
    s = Study("pg", d.SPACE, storage="postgresql://u@localhost/db", sampler="random", cost_model=None, constraints=["latency_ms <= 5"])
    with pytest.raises(ConfigError) as ei:
        s.optimize(d.build, d.train, measure=d.measure, n_trials=1)
    assert ei.value.field == "storage" and "not installed" in ei.value.problem and ".[postgres]" in ei.value.fix


def test_a_database_server_that_is_down_is_a_config_error():
    pytest.importorskip("psycopg")
    s = Study("pg", d.SPACE, storage="postgresql+psycopg://u@127.0.0.1:1/db", sampler="random", cost_model=None, constraints=["latency_ms <= 5"])
    with pytest.raises(ConfigError) as ei:
        s.optimize(d.build, d.train, measure=d.measure, n_trials=1)
    assert ei.value.field == "storage" and "start the server" in ei.value.fix


@pytest.mark.parametrize(
    "driver_message, url, expect_problem, expect_fix",
    [
        ("database or disk is full", "sqlite:///x.db", "disk is full", "free disk space"),
        ("database is locked", "sqlite:///x.db", "locked", "PostgreSQL"),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "postgresql+psycopg2://u@127.0.0.1:1/db", "cannot reach the database server", "start the server"),
    ],
)
def test_storage_faults_are_translated_with_the_drivers_own_words(driver_message, url, expect_problem, expect_fix):
    import sqlite3

    import sqlalchemy.exc

    try:
        try:
            try:
                raise sqlite3.OperationalError(driver_message)
            except sqlite3.OperationalError as raw:
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, raw) from raw
        except sqlalchemy.exc.OperationalError as e:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
    except optuna.exceptions.StorageInternalError as wrapped:
        ce = storage_config_error(wrapped, url)
    assert ce is not None and ce.field == "storage"
    assert expect_problem in ce.problem and driver_message[:20] in ce.problem and expect_fix in ce.fix
    assert storage_config_error(ValueError("not a storage fault"), url) is None


SEPARATE_SCRIPT = """
import sys
from hwtune import Study
from tests.study import _doubles as d

if __name__ == "__main__":
    Study("sep", d.SPACE, constraints=["latency_ms <= 100"], storage=sys.argv[1], sampler="random", cost_model=None,
          seed=int(sys.argv[2])).optimize(d.build, d.train, measure=d.measure, n_trials=12)
"""


def test_separate_processes_on_one_sqlite_study_finish_exactly_the_budget(tmp_path):
    # `hwtune run` started twice by hand on one file: no shared multiprocessing lock, only the file
    url = f"sqlite:///{tmp_path / 'sep.db'}"
    script = tmp_path / "sep.py"
    script.write_text(SEPARATE_SCRIPT)
    Study("sep", d.SPACE, constraints=["latency_ms <= 100"], storage=url, sampler="random", cost_model=None).open()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(script), url, str(i)], cwd=REPO, env=env) for i in range(3)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0, 0]
    trials = optuna.load_study(study_name="sep", storage=url).trials
    assert sum(trial_status(t) in BUDGET_STATUSES for t in trials) == 12 and len(trials) == 12
