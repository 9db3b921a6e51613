"""Optuna storage for hwtune studies: SQLite by default, any SQLAlchemy URL; crash recovery.

A worker that dies mid-trial leaves the trial RUNNING. Two mechanisms turn it into a failed trial
that is proposed again with the same params:
- on this host, a RUNNING trial whose worker process no longer exists is failed at once when a
  study is (re)opened (:func:`fail_dead_local_trials`);
- on any host, Optuna's heartbeat: a trial whose worker stopped beating for ``grace_period``
  seconds is failed by the next worker that starts a trial.
A worker that is interrupted (Ctrl-C, ``SystemExit``) abandons its trial the same way at once
(:func:`abandon_trial`, :func:`abandon_own_running_trials`).

Storage faults (a read-only, corrupt or full SQLite file, a missing driver, a server that is down)
become a :class:`ConfigError` naming ``storage``, the real cause and the fix
(:func:`storage_config_error`); two processes creating the same new SQLite file at once retry
instead of crashing.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from hwtune.exceptions import ConfigError
from hwtune.vocabulary import FAILURE_ATTR, RETRY_OF_ATTR, STATUS_ATTR, WORKER_ATTR

__all__ = [
    "DEFAULT_STORAGE",
    "open_storage",
    "worker_identity",
    "fail_dead_local_trials",
    "retry_interrupted",
    "abandon_trial",
    "abandon_own_running_trials",
    "is_storage_error",
    "storage_config_error",
    "storage_errors_as_config_errors",
]

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


def abandon_trial(study: optuna.Study, trial_id: int, reason: str, set_fail: bool = True) -> bool:
    """Mark a RUNNING trial ``interrupted`` (``reason`` as its failure), FAIL it (unless ``set_fail``
    is false: Optuna is about to), and queue its params to run again.

    Returns:
        False when the trial had already finished (another process got there first).
    """
    storage = study._storage
    try:
        if storage.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        storage.set_trial_user_attr(trial_id, STATUS_ATTR, "interrupted")
        storage.set_trial_user_attr(trial_id, FAILURE_ATTR, reason)
        if set_fail and not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
        return False
    retry_interrupted(study, storage.get_trial(trial_id))
    return True


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker was a process on this host that no longer exists, and queue
    again interrupted trials whose worker ended between failing them and queueing them
    (:func:`requeue_lost_retries`).

    Returns:
        Numbers of the trials failed (each re-queued with the same params).
    """
    host = platform.node()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ident = t.user_attrs.get(WORKER_ATTR)
        if not ident or ident.get("host") != host or _alive(ident):
            continue
        if abandon_trial(study, t._trial_id, f"interrupted: worker pid {ident.get('pid')} on {host} ended during the trial"):
            failed.append(t.number)
    requeue_lost_retries(study)
    return failed


def requeue_lost_retries(study: optuna.Study) -> list[int]:
    """Queue again every failed ``interrupted`` trial that no later trial retries: its process ended
    (a worker past its grace period when its parent died) after failing it and before queueing it.
    Returns their numbers."""
    trials = study.get_trials(deepcopy=False)
    last_retry: dict[Any, int] = {}  # original trial -> number of its newest retry
    for u in trials:
        if RETRY_OF_ATTR in u.user_attrs:
            key = u.user_attrs[RETRY_OF_ATTR]
            last_retry[key] = max(last_retry.get(key, -1), u.number)
    lost = []
    for t in trials:
        if t.state != TrialState.FAIL or t.user_attrs.get(STATUS_ATTR) != "interrupted":
            continue
        if last_retry.get(t.user_attrs.get(RETRY_OF_ATTR, t.number), -1) <= t.number:
            retry_interrupted(study, t)
            lost.append(t.number)
    return lost


def abandon_own_running_trials(study: optuna.Study, reason: str) -> list[int]:
    """Abandon (interrupted, FAIL, re-queued) the RUNNING trials of this very process.

    Called when the loop is left by an interrupt that did not pass through a trial's own handler
    (e.g. Ctrl-C while the sampler proposed); the trials a trial's handler abandoned are finished already.
    """
    me = worker_identity()
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ident = t.user_attrs.get(WORKER_ATTR) or {}
        if ident.get("host") == me["host"] and ident.get("pid") == me["pid"]:
            if abandon_trial(study, t._trial_id, reason):
                out.append(t.number)
    return out


# -- storage faults as ConfigErrors ----------------------------------------------------------------
_DRIVERS = {
    "psycopg2": ("PostgreSQL", "pip install psycopg2-binary, or write the URL as postgresql://... with pip install -e '.[postgres]' (psycopg 3)"),
    # SQLAlchemy 2.1 opens postgresql:// with psycopg (3), which is what the postgres extra installs
    "psycopg": ("PostgreSQL", "pip install -e '.[postgres]' (psycopg 3) from a clone of hwtune"),
    "pg8000": ("PostgreSQL", "pip install pg8000, or use postgresql:// with pip install -e '.[postgres]'"),
    "asyncpg": ("PostgreSQL", "use postgresql:// (a synchronous driver) with pip install -e '.[postgres]'"),
    "pymysql": ("MySQL", "pip install pymysql"),
    "MySQLdb": ("MySQL", "pip install mysqlclient, or use mysql+pymysql:// with pip install pymysql"),
}

_RACE_MARKERS = ("already exists", "unique constraint failed", "database is locked", "duplicate key value")
"""Errors two processes creating the same storage at once can get; retried a few times."""


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        orig = getattr(cur, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's own exception
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        cur = cur.__cause__ or cur.__context__


def is_storage_error(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is an error of the storage or its database driver."""
    import sqlite3

    import sqlalchemy.exc

    for x in _chain(e):
        if isinstance(x, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, sqlite3.Error)):
            return True
        if type(x).__module__.split(".")[0] in ("psycopg2", "psycopg", "pymysql", "MySQLdb", "pg8000"):
            return True
    return False


def _root_message(e: BaseException) -> str:
    """The driver's own words (``database or disk is full``), not the wrapper's."""
    import sqlalchemy.exc

    best = str(e)
    for x in _chain(e):
        if isinstance(x, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.StatementError)):
            continue  # wrappers: their text is generic or carries the SQL statement
        text = str(x).strip()
        if text:
            best = text
    line = best.strip().splitlines()[0] if best.strip() else type(e).__name__
    return line[:300]


def safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url[:200]


def _sqlite_path(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:
        return None
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    db = u.database
    if db.startswith("file:"):  # an SQLite URI (?uri=true): file:path?mode=ro
        db = db[len("file:"):].split("?", 1)[0]
        if db in ("", ":memory:") or "mode=memory" in u.database:
            return None
    return str(Path(db).expanduser())


BUDGET_LOCK_KEY = 0x6877_7475_6E65  # "hwtune": PostgreSQL advisory-lock key of a study database's budget
_PG_ENGINES: dict[tuple[int, str], Any] = {}


def _is_postgresql(url: str | None) -> bool:
    if not url:
        return False
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).get_backend_name() == "postgresql"
    except Exception:
        return False


@contextlib.contextmanager
def _postgresql_lock(url: str) -> Iterator[None]:
    """A session-level ``pg_advisory_lock`` held on one connection: the server releases it when the
    connection ends, so a killed worker never leaves it held."""
    import sqlalchemy

    key = (os.getpid(), url)
    if key not in _PG_ENGINES:  # one small pool per process and database (after a fork: a new one)
        _PG_ENGINES[key] = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    with _PG_ENGINES[key].connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": BUDGET_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": BUDGET_LOCK_KEY})
            conn.commit()


@contextlib.contextmanager
def budget_lock(url: str | None) -> Iterator[None]:
    """Held while a process counts a study's trials and starts one (the sampler proposes inside Optuna's
    ``ask``, so inside the lock), so that separate processes — ``hwtune run`` started twice on one
    SQLite file, or on several hosts against one PostgreSQL database — never overshoot ``n_trials``
    nor propose while another does.

    SQLite: an advisory ``flock`` on ``<database>.lock`` beside the file (one host). PostgreSQL: an
    advisory lock of the server (``pg_advisory_lock``), held by the connection (any host). Other
    servers: nothing beyond their transactions. The workers of one ``optimize`` also share a
    multiprocessing lock (``Study.optimize``)."""
    if _is_postgresql(url):
        assert url is not None
        with _postgresql_lock(url):
            yield
        return
    path = _sqlite_path(url) if url else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        path = None
    if path is None:
        yield
        return
    with open(path + ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def storage_config_error(e: BaseException, url: str | None, field: str = "storage") -> ConfigError | None:
    """The :class:`ConfigError` a storage fault ``e`` means for a user (field, real cause, fix), or
    ``None`` when ``e`` is not a storage fault."""
    shown = safe_url(url) if url else "the storage"
    for x in _chain(e):
        if isinstance(x, ImportError):
            mod = (getattr(x, "name", None) or "").split(".")[0]
            if mod in _DRIVERS:
                db, fix = _DRIVERS[mod]
                return ConfigError(field, f"{shown} needs the {db} driver {mod!r}, which is not installed.", f"{fix}.")
    import sqlalchemy.exc

    for x in _chain(e):
        if isinstance(x, sqlalchemy.exc.NoSuchModuleError):
            return ConfigError(field, f"{shown}: unknown database kind ({_root_message(x)}).", "use e.g. sqlite:///hwtune.db or postgresql://user@host/db.")
    if not is_storage_error(e):
        return None
    msg = _root_message(e)
    low = msg.lower()
    path = _sqlite_path(url) if url else None
    where = f"the SQLite file {path!r}" if path else shown
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return ConfigError(field, f"{where} is not a readable SQLite database ({msg}).", "move the damaged file away (or restore a backup), or choose another storage path.")
    if "readonly" in low or "read-only" in low or "unable to open database file" in low or "permission denied" in low:
        return ConfigError(field, f"{where} cannot be written ({msg}).", "make the file and its folder writable, or choose another storage path.")
    if "disk is full" in low or "no space left" in low or "disk full" in low:
        return ConfigError(field, f"{where} cannot grow: the disk is full ({msg}).", "free disk space, or choose a storage on another disk.")
    if "disk i/o error" in low:
        return ConfigError(field, f"{where} could not be written: {msg} (the disk is full, a file-size limit was reached, or the disk failed).", "free disk space, or choose a storage on another disk.")
    if "database is locked" in low:
        return ConfigError(field, f"{where} stayed locked by another process ({msg}).", "retry; for many concurrent workers use a PostgreSQL server.")
    if path is None and any(k in low for k in ("connect", "connection", "could not translate host", "timeout", "refused", "password authentication")):
        return ConfigError(field, f"cannot reach the database server of {shown} ({msg}).", "start the server, or check host, port, database name and credentials in the URL.")
    return ConfigError(field, f"the storage {shown} failed: {msg}.", "check that the database is reachable, writable and has space.")


@contextlib.contextmanager
def storage_errors_as_config_errors(url: str | None, field: str = "storage") -> Iterator[None]:
    """Re-raise storage faults inside the block as :class:`ConfigError` (with the original as cause)."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        ce = storage_config_error(e, url, field)
        if ce is None:
            raise
        raise ce from e


def is_creation_race(e: BaseException) -> bool:
    """Errors of two processes creating the same tables, version row or study at the same moment."""
    return is_storage_error(e) and any(m in str(x).lower() for x in _chain(e) for m in _RACE_MARKERS)


def retry_creation_race(fn: Any, attempts: int = 8) -> Any:
    """``fn()``, retried with a short random backoff while it fails by :func:`is_creation_race`."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:
            if i == attempts - 1 or not is_creation_race(e):
                raise
            time.sleep(0.05 * (i + 1) + random.random() * 0.1)
    raise AssertionError("unreachable")


def _check_url(url: str, field: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        raise ConfigError(field, f"{url!r} is not a SQLAlchemy URL.", "use e.g. sqlite:///hwtune.db or postgresql://user@host/db.") from None
    path = _sqlite_path(url)
    if path is not None:
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(field, f"folder {str(parent)!r} of the SQLite file does not exist.", "create it or choose another path.")


def open_storage(url: str | None, field: str = "storage") -> optuna.storages.BaseStorage:
    """Open (creating tables if needed) the storage at ``url``; ``None`` means in memory.

    Raises:
        ConfigError: naming ``field``, the real cause and the fix, when the storage cannot be opened
            (missing driver, server down, a file that is not a database, cannot be written...).
    """
    if url is None:
        return optuna.storages.InMemoryStorage()
    _check_url(url, field)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    if url.rstrip("/").endswith(":memory:") or url.rstrip("/") == "sqlite:":
        # one private database per connection: no other worker can exist, and Optuna's heartbeat
        # thread (its own connection) would not see the tables
        with storage_errors_as_config_errors(url, field):
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)

    def create() -> optuna.storages.BaseStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=GRACE_PERIOD_S,
                heartbeat_stale_trial_callback=retry_interrupted,
            )

    path = _sqlite_path(url)
    existed = path is not None and os.path.exists(path)
    try:
        with storage_errors_as_config_errors(url, field):
            # two processes creating a new SQLite file at once race on its tables and version row
            return retry_creation_race(create)
    except ConfigError:
        if path is not None and not existed and os.path.exists(path) and os.path.getsize(path) == 0:
            with contextlib.suppress(OSError):
                os.remove(path)  # nothing written: no empty file left behind
        raise
