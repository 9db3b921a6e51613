"""Optuna storage for hwtune studies: SQLite by default, any SQLAlchemy URL; crash recovery.

A worker that dies mid-trial leaves the trial RUNNING. Two mechanisms turn it into a failed trial
that is proposed again with the same params:
- on this host, a RUNNING trial whose worker process no longer exists is failed at once when a
  study is (re)opened (:func:`fail_dead_local_trials`);
- on any host, Optuna's heartbeat: a trial whose worker stopped beating for ``grace_period``
  seconds is failed by the next worker that starts a trial.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from hwtune.exceptions import ConfigError
from hwtune.vocabulary import FAILURE_ATTR, RETRY_OF_ATTR, STATUS_ATTR, WORKER_ATTR

__all__ = ["DEFAULT_STORAGE", "open_storage", "worker_identity", "fail_dead_local_trials", "retry_interrupted"]

DEFAULT_STORAGE = "sqlite:///hwtune.db"
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 90


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host, pid, and the process start time (tells a reused pid apart)."""
    p = psutil.Process()
    return {"host": platform.node(), "pid": p.pid, "started": round(p.create_time(), 2)}


def _alive(identity: dict[str, Any]) -> bool:
    try:
        p = psutil.Process(int(identity["pid"]))
        return abs(p.create_time() - float(identity["started"])) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError, TypeError):
        return False


def retry_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the params of an interrupted (already failed) trial to run again, once per trial.

    Used as Optuna's heartbeat-stale callback and after :func:`fail_dead_local_trials`.
    """
    original = trial.user_attrs.get(RETRY_OF_ATTR, trial.number)
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF_ATTR: original}, skip_if_exists=False)


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker was a process on this host that no longer exists.

    Returns:
        Numbers of the trials failed (each re-queued with the same params).
    """
    host = platform.node()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ident = t.user_attrs.get(WORKER_ATTR)
        if not ident or ident.get("host") != host or _alive(ident):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, STATUS_ATTR, "interrupted")
            storage.set_trial_user_attr(t._trial_id, FAILURE_ATTR, f"interrupted: worker pid {ident.get('pid')} on {host} ended during the trial")
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            continue
        retry_interrupted(study, storage.get_trial(t._trial_id))
        failed.append(t.number)
    return failed


def _check_url(url: str, field: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise ConfigError(field, f"{url!r} is not a SQLAlchemy URL.", "use e.g. sqlite:///hwtune.db or postgresql://user@host/db.") from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        parent = Path(u.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(field, f"folder {str(parent)!r} of the SQLite file does not exist.", "create it or choose another path.")


def open_storage(url: str | None, field: str = "storage") -> optuna.storages.BaseStorage:
    """Open (creating tables if needed) the storage at ``url``; ``None`` means in memory."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    _check_url(url, field)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    if url.rstrip("/").endswith(":memory:") or url.rstrip("/") == "sqlite:":
        # one private database per connection: no other worker can exist, and Optuna's heartbeat
        # thread (its own connection) would not see the tables
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
            heartbeat_stale_trial_callback=retry_interrupted,
        )
