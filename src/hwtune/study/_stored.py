"""A stored study, opened read-only: for ``hwtune show``, ``hwtune.load_model`` and exports.

Nothing here writes: a SQLite file is opened through SQLite's read-only mode (a missing file is an
error, never created), a server storage without creating tables. The :class:`Study` rebuilt from the
stored definition (``hwtune:config``) gives the same summary ``hwtune run`` prints.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from hwtune.exceptions import ConfigError
from hwtune.study._calibrate import apply_stored_calibration
from hwtune.study._reference_speed import adopt_stored_reference
from hwtune.study._storage import (
    DEFAULT_STORAGE,
    _sqlite_path,
    storage_errors_as_config_errors,
)
from hwtune.study._study import Study
from hwtune.vocabulary import CONFIG_ATTR

__all__ = ["open_storage_readonly", "stored_study", "study_names"]


def open_storage_readonly(url: str, field: str = "storage") -> optuna.storages.BaseStorage:
    """Open an existing storage without writing to it.

    Raises:
        ConfigError: naming ``field`` when the SQLite file does not exist, is not an Optuna storage,
            or the storage cannot be opened (the driver's own words and the fix).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    fix = "give the storage `hwtune run` wrote to, e.g. --storage sqlite:///hwtune.db (run from the folder that holds it)."
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError(field, f"{url!r} is not a SQLAlchemy URL.", fix) from None
    path = _sqlite_path(url)
    if backend == "sqlite" and path is None:
        raise ConfigError(field, f"{url} is an in-memory database: nothing stays in it once its process ends.", fix)
    ro_url, engine_kwargs = url, None
    if path is not None:
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise ConfigError(field, f"there is no SQLite file {str(p)!r}: no study was stored there.", fix)
        uri = p.as_uri() + "?mode=ro"  # SQLite's read-only mode: nothing can be written, whatever the caller does
        ro_url, engine_kwargs = "sqlite://", {"creator": lambda: sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)}
    try:
        with storage_errors_as_config_errors(url, field), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(ro_url, engine_kwargs=engine_kwargs, skip_table_creation=True)
    except ConfigError as e:
        if "no such table" in e.problem or "readonly" in e.problem or "read-only" in e.problem:
            raise ConfigError(field, f"{url} is not an Optuna storage: it holds no hwtune study.", fix) from None
        raise


def study_names(storage: optuna.storages.BaseStorage, url: str, field: str = "storage") -> list[str]:
    with storage_errors_as_config_errors(url, field):
        return [s.study_name for s in storage.get_all_studies()]


def _device(spec: Any) -> Any:
    from hwtune.hardware import parse_device

    try:
        return parse_device(spec if isinstance(spec, str) else None, check=False)
    except ConfigError:  # e.g. cpu:8 stored on a larger machine: the device only matters for measuring
        return parse_device("cpu")


def stored_study(
    name: str | None = None, storage: str | None = None, *, study_field: str = "study", storage_field: str = "storage"
) -> Study:
    """The stored study ``name`` of ``storage`` (default: ``sqlite:///hwtune.db``, as ``hwtune run``),
    as a read-only :class:`Study` (``records()``, ``summary()``, ``best_feasible()`` work; never run it).

    ``name`` may be left out when the storage holds one study.

    Raises:
        ConfigError: naming ``storage_field`` (no such storage, not an Optuna storage, empty) or
            ``study_field`` (no such study, several to choose from, not made by hwtune).
    """
    from hwtune.search._targets import objectives_from_config, space_from_config

    url = storage or DEFAULT_STORAGE
    st = open_storage_readonly(url, storage_field)
    names = study_names(st, url, storage_field)
    if not names:
        raise ConfigError(storage_field, f"{url} holds no study.", "run one first (hwtune run), or give the storage it wrote to.")
    if name is None:
        if len(names) > 1:
            raise ConfigError(study_field, f"{url} holds {len(names)} studies: {', '.join(names)}.", f"name one, e.g. {names[0]!r}.")
        name = names[0]
    elif name not in names:
        raise ConfigError(study_field, f"there is no study {name!r} in {url}.", f"use one of: {', '.join(names)}.")
    with storage_errors_as_config_errors(url, storage_field):
        ost = optuna.load_study(study_name=name, storage=st, sampler=optuna.samplers.RandomSampler(seed=0))
        cfg = ost.user_attrs.get(CONFIG_ATTR)
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("space"), Mapping):
        raise ConfigError(study_field, f"study {name!r} in {url} was not made by hwtune (it has no {CONFIG_ATTR}).", "browse it with optuna-dashboard instead.")
    objectives = [{o.direction: o.metric} for o in objectives_from_config(cfg.get("objectives") or ["minimize error"])]
    art = cfg.get("artifacts")
    study = Study(
        name,
        space_from_config(cfg["space"]),
        objectives=objectives,
        constraints=list(cfg.get("constraints") or []) or None,
        storage=url,
        device=_device(cfg.get("device")),
        input_shape=cfg.get("input_shape"),
        inference_batch_size=int(cfg.get("inference_batch_size") or 1),
        sampler="random",
        seed=int(cfg.get("seed") or 0),
        description=cfg.get("description") if isinstance(cfg.get("description"), Mapping) else None,
        cost_model=None,
        runtime=cfg.get("runtime", "torch") if cfg.get("runtime") in ("torch", "torchscript", "onnxruntime") else "torch",
        keep_models=cfg.get("keep_models", "none") if cfg.get("keep_models") in ("best", "pareto", "all", "none") else "none",
        # the folder recorded at creation; a moved one is looked for beside the storage file
        artifacts=art if isinstance(art, str) and Path(art).is_dir() else None,
    )
    study._optuna = ost
    apply_stored_calibration(study, st)  # 'latency_ms <= q40' shows its stored absolute limit
    adopt_stored_reference(study, st)  # and the machine speed its latencies are at
    return study
