"""Keeping a study's trained networks (``keep_models``) as Optuna artifacts.

A trained trial's network is written by the study's framework (``Framework.save_kept``, found from the
study's runtime; ``study._framework``): PyTorch's a ``state_dict`` of tensors (``torch.save``, read back
only with ``torch.load(..., weights_only=True)``; ``trial-<n>-weights.pt``), Keras's the model as a
``.keras`` file (``trial-<n>-model.keras``, read back with ``safe_mode=True``), on any backend. The
format is recorded with it (``hwtune:model`` ``format``) and says who reads it back
(``Framework.load_kept``). It is uploaded with ``optuna.artifacts.upload_artifact`` *inside the trial*,
before its status becomes ``trained``, so a crash never leaves a trained trial without its weights;
``optuna-dashboard`` lists them. Where they go:
a folder beside a SQLite file (``hwtune.db`` -> ``hwtune.db.artifacts/``), the folder ``artifacts``
names, or any Optuna artifact store passed through the API; a study in memory keeps them in a
temporary folder that lives as long as the process.

Which trials keep theirs (``keep_models``): ``best`` (one: the best feasible network; with several
objectives the best on the first), ``pareto`` (the feasible Pareto front; the best one for a single
objective; the default), ``all`` (every trained trial) or ``none``. With ``best`` and ``pareto`` a model
that later drops out is deleted (:meth:`ModelKeeper.tidy`, after each trial), and so are weights whose
trial was never recorded trained (stopped between the upload and the end of the trial). A finished
trial's attributes cannot change, so a deletion is recorded on the study
(:data:`~hwtune.vocabulary.MODEL_REMOVED_PREFIX`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError
from hwtune.study._framework import (
    framework_for_runtime,
    get_framework,
    state_from_bytes,
    weights_bytes,
)
from hwtune.study._storage import _sqlite_path, safe_url
from hwtune.vocabulary import MODEL_ATTR, MODEL_REMOVED_PREFIX, trial_status

__all__ = ["KEEP_MODES", "WEIGHTS_FORMAT", "ModelKeeper", "ModelRecord", "ModelsSummary", "model_records", "read_artifact", "read_weights", "state_from_bytes", "weights_bytes"]

KEEP_MODES: tuple[str, ...] = ("best", "pareto", "all", "none")
WEIGHTS_FORMAT = "torch.state_dict"
"""PyTorch's kept format (``TorchFramework.kept_format``): ``torch.save`` of a dict of tensors
(``state_dict``); read with ``torch.load(weights_only=True)``."""
_ARTIFACT_PREFIX = "artifacts:"  # Optuna's system attribute of an uploaded artifact's meta
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _filename(number: int, suffix: str = ".pt") -> str:
    """The kept file's name: its extension says its format (PyTorch's keeps the name of before frameworks)."""
    return f"trial-{number}-weights.pt" if suffix == ".pt" else f"trial-{number}-model{suffix}"


def _own_filename(name: Any, number: int) -> bool:
    """Whether ``name`` is a file hwtune keeps for trial ``number`` (of any framework)."""
    return isinstance(name, str) and (name == _filename(number) or (name.startswith(f"trial-{number}-model.") and "/" not in name))


def _framework_of(study: Any) -> Any:
    """The framework whose networks ``study`` holds (from its runtime; PyTorch for a study without one)."""
    try:
        return framework_for_runtime(getattr(study, "runtime", "torch"))
    except ConfigError:
        return get_framework("torch")


def _is_store(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("open_reader", "write", "remove"))


def _in_memory(url: str | None) -> bool:
    if url is None:
        return True
    u = url.rstrip("/")
    return u.endswith(":memory:") or u == "sqlite:" or "mode=memory" in u


def default_folder(url: str | None) -> Path | None:
    """The artifact folder beside a SQLite file (``x.db`` -> ``x.db.artifacts``), else ``None``."""
    if url is None or _in_memory(url):
        return None
    path = _sqlite_path(url)
    return Path(path + ".artifacts").expanduser().resolve() if path else None


def read_artifact(store: Any, artifact_id: str, sha256: str | None, field_name: str = "trial") -> bytes:
    """The bytes of a kept artifact, checked against its recorded sha256."""
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        with store.open_reader(artifact_id) as f:
            data = f.read()
    except (ArtifactNotFound, FileNotFoundError):
        raise ConfigError(
            "artifacts", f"the weights {artifact_id} are not in the artifact store ({describe_store(store)}).",
            "keep the artifact folder beside the storage file, or pass the Study with its artifacts= store.",
        ) from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(field_name, f"the weights {artifact_id} do not match their recorded sha256: the file was changed or damaged.", "use another trial's model, or run the trial again.")
    return bytes(data)


def read_weights(store: Any, artifact_id: str, sha256: str | None, field_name: str = "trial") -> dict[str, Any]:
    """The ``state_dict`` of a PyTorch artifact, checked against its recorded sha256; loaded with ``weights_only=True``."""
    return state_from_bytes(read_artifact(store, artifact_id, sha256, field_name), artifact_id, field_name)


def describe_store(store: Any) -> str:
    base = getattr(store, "_base_path", None)
    return str(base) if base is not None else type(store).__name__


@dataclass(frozen=True)
class ModelRecord:
    """Where one trained trial's weights are, or why it has none.

    Attributes:
        trial: the trial number.
        kept: whether weights are kept (recorded, not deleted).
        artifact_id: Optuna's artifact id (kept or deleted).
        path: the file, for a folder store.
        bytes, sha256, format: of the stored weights.
        reason: why none is kept (or why it was deleted).
    """

    trial: int
    kept: bool
    artifact_id: str | None = None
    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    format: str | None = None
    reason: str | None = None


@dataclass
class ModelsSummary:
    """The kept models of a study, for reports: the mode, where they are, one record per trained trial."""

    mode: str
    location: str | None
    records: dict[int, ModelRecord] = field(default_factory=dict)

    @property
    def kept(self) -> list[ModelRecord]:
        return [r for r in self.records.values() if r.kept]


def removed_models(study_user_attrs: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """trial number -> ``{artifact_id, reason}`` of weights deleted after their trial ended."""
    out: dict[int, dict[str, Any]] = {}
    for k, v in study_user_attrs.items():
        if k.startswith(MODEL_REMOVED_PREFIX) and k[len(MODEL_REMOVED_PREFIX):].isdigit() and isinstance(v, Mapping):
            out[int(k[len(MODEL_REMOVED_PREFIX):])] = dict(v)
    return out


def model_records(trials: list[Any], study_user_attrs: Mapping[str, Any], fallback_folder: Path | None = None) -> dict[int, ModelRecord]:
    """One :class:`ModelRecord` per trained trial, or per trial with a model attribute (plain reading: no store touched)."""
    removed = removed_models(study_user_attrs)
    out: dict[int, ModelRecord] = {}
    for t in trials:
        status = trial_status(t)
        attr = t.user_attrs.get(MODEL_ATTR)
        if status != "trained" and not isinstance(attr, Mapping):
            continue
        n = t.number
        if not isinstance(attr, Mapping):
            out[n] = ModelRecord(n, False, reason="no model kept (the study kept no models when this trial ran)")
            continue
        if not attr.get("kept"):
            out[n] = ModelRecord(n, False, reason=str(attr.get("reason") or "no model kept"))
            continue
        aid = str(attr.get("artifact_id"))
        folder = attr.get("folder")
        base = Path(folder) if folder and Path(folder).is_dir() else fallback_folder or (Path(folder) if folder else None)
        path = str(base / aid) if base is not None else None
        common = {"artifact_id": aid, "path": path, "bytes": attr.get("bytes"), "sha256": attr.get("sha256"), "format": attr.get("format")}
        if n in removed:
            out[n] = ModelRecord(n, False, reason=f"deleted: {removed[n].get('reason', '')}".rstrip(": "), **common)  # type: ignore[arg-type]
        elif status != "trained":
            out[n] = ModelRecord(n, False, reason=f"its trial is {status}, not trained", **common)  # type: ignore[arg-type]
        else:
            out[n] = ModelRecord(n, True, **common)  # type: ignore[arg-type]
    return out


class ModelKeeper:
    """A study's ``keep_models`` and artifact store: keeps weights inside a trial, tidies after it.

    Args:
        mode: one of :data:`KEEP_MODES`.
        artifacts: a folder (text or path), an Optuna artifact store object, or ``None``: beside a
            SQLite file, in a temporary folder for a study in memory.
        storage_url: the study's storage.
    """

    def __init__(self, mode: Any, artifacts: Any, storage_url: str | None) -> None:
        if mode not in KEEP_MODES:
            raise ConfigError("keep_models", f"unknown mode {mode!r}.", "use best, pareto (the default), all or none.")
        self.mode: str = mode
        self._store_obj: Any = None
        self._folder: Path | None = None
        self._tmp: Path | None = None
        if artifacts is not None and _is_store(artifacts):
            self._store_obj = artifacts
        elif isinstance(artifacts, (str, os.PathLike)):
            if not str(artifacts).strip():
                raise ConfigError("artifacts", "is empty.", "give a folder for the kept models, e.g. artifacts: models/.")
            self._folder = Path(artifacts).expanduser().resolve()
            if self._folder.exists() and not self._folder.is_dir():
                raise ConfigError("artifacts", f"{str(self._folder)!r} is a file, not a folder.", "give a folder for the kept models.")
        elif artifacts is not None:
            raise ConfigError("artifacts", f"expected a folder or an Optuna artifact store, got {type(artifacts).__name__}.", "pass a path such as 'models/', or e.g. optuna.artifacts.FileSystemArtifactStore(...).")
        else:
            self._folder = default_folder(storage_url)
        self._memory = artifacts is None and _in_memory(storage_url)
        self._url = storage_url

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tmp"] = None  # a worker never shares a temporary folder (in-memory studies have no workers)
        return state

    # -- where ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a storage the weights have no place beside (a database server without ``artifacts``)."""
        if self.mode != "none" and self._store_obj is None and self._folder is None and not self._memory:
            raise ConfigError(
                "artifacts",
                f"keep_models: {self.mode} needs a place for the weights, and the storage {safe_url(self._url) if self._url else 'in memory'} is not a SQLite file they can sit beside.",
                "give artifacts: <a folder every worker can reach> (or an Optuna artifact store through the API), or keep_models: none.",
            )

    @property
    def folder(self) -> Path | None:
        """The folder of a folder store (``None`` for another store, or before an in-memory study kept any)."""
        return self._folder or self._tmp

    def location(self) -> str | None:
        if self._store_obj is not None:
            return describe_store(self._store_obj)
        f = self.folder
        return str(f) if f is not None else ("a temporary folder (study in memory)" if self._memory else None)

    def store(self, create: bool = False) -> Any:
        """The artifact store (the folder is created when ``create``)."""
        if self._store_obj is not None:
            return self._store_obj
        from optuna.artifacts import FileSystemArtifactStore

        folder = self.folder
        if folder is None and self._memory and create:
            self._tmp = Path(tempfile.mkdtemp(prefix="hwtune-models-"))
            atexit.register(shutil.rmtree, self._tmp, True)
            folder = self._tmp
        if folder is None:
            raise ConfigError(
                "artifacts", "this study's weights are in an artifact store hwtune cannot open from the storage alone.",
                "pass the Study made with artifacts=<that store or folder>.",
            )
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return FileSystemArtifactStore(folder)

    def definition(self) -> dict[str, Any]:
        """Stored with the study's definition (not compared on resume)."""
        where = str(self._folder) if self._folder is not None else (describe_store(self._store_obj) if self._store_obj is not None else None)
        return {"keep_models": self.mode, "artifacts": where}

    # -- inside a trial ---------------------------------------------------------------------------
    def keep(self, study: Any, trial: Any, model: Any, reason: str | None) -> None:
        """Store ``model`` on ``trial`` (running) when ``reason`` (:meth:`why_not`, asked once by the
        loop) is ``None``, else record the reason; the study's framework writes it
        (``Framework.save_kept``) and names its format."""
        if reason is not None:
            trial.set_user_attr(MODEL_ATTR, {"kept": False, "reason": reason})
            return
        from optuna.artifacts import upload_artifact

        framework = _framework_of(study)
        store = self.store(create=True)
        with tempfile.TemporaryDirectory(prefix="hwtune-weights-") as d:
            path = Path(d) / _filename(trial.number, framework.kept_suffix)
            framework.save_kept(model, path)
            data = path.read_bytes()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning in some Optuna versions
                # Optuna records the artifact's meta on the trial, then writes the file
                artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=framework.kept_mimetype)
        folder = self.folder if self._store_obj is None else None
        trial.set_user_attr(MODEL_ATTR, {
            "kept": True, "artifact_id": artifact_id, "format": framework.kept_format, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "filename": path.name, "folder": str(folder) if folder else None,
        })

    def why_not(self, study: Any, model: Any, values: tuple[float, ...], feasible: bool) -> str | None:
        """Why the mode does not keep ``model`` now, or ``None`` when it does (asked once per trial,
        before the kept network is measured again and stored)."""
        if self.mode == "none":
            return "keep_models: none"
        if model is None:
            return "train_and_evaluate handed no model over (call ctx.keep_model(model) after training)"
        if self.mode == "all":
            return None
        if not feasible:
            return f"infeasible: it violates a constraint (keep_models: {self.mode} keeps feasible networks only)"
        mine = _signed(study, values)
        best = study.best_feasible()
        if self.mode == "best" or len(study.objectives) == 1:
            top = _best_of(study, best)
            if top is not None and _signed(study, top.values) <= mine:
                return f"not the best feasible network when it was trained (trial {top.number} is at least as good; keep_models: {self.mode})"
            return None
        for r in best:
            k2 = _signed(study, r.values)
            if k2 != mine and all(a <= b for a, b in zip(k2, mine)):
                return f"not on the Pareto front when it was trained (trial {r.number} dominates it; keep_models: pareto)"
        return None

    # -- after a trial ----------------------------------------------------------------------------
    def keep_set(self, study: Any) -> set[int] | None:
        """Trials whose weights the mode keeps now (``None``: every trained one)."""
        if self.mode in ("all", "none"):
            return None
        best = study.best_feasible()
        if self.mode == "best" or len(study.objectives) == 1:
            top = _best_of(study, best)
            return {top.number} if top is not None else set()
        return {r.number for r in best}

    def tidy(self, study: Any) -> list[int]:
        """Delete the weights of finished trials the mode no longer keeps (and of trials never recorded
        trained); returns their numbers. The deletion is recorded on the study before the file goes."""
        ost = study.optuna_study
        holding = [(t, ids) for t in ost.get_trials(deepcopy=False) if t.state.name in _FINISHED and (ids := _artifact_ids(t))]
        if not holding:  # (most studies of the bench: nothing handed over, nothing to read)
            return []
        removed = removed_models(ost.user_attrs)
        keep = self.keep_set(study) if self.mode in ("best", "pareto") else None
        done: list[int] = []
        for t, ids in holding:
            if t.number in removed:
                self._remove(ids, only_if_present=True)  # recorded, then stopped before the file went
                continue
            status = trial_status(t)
            if status != "trained":
                reason = f"its trial ended {status}, not trained (stopped after the weights were stored)"
            elif keep is not None and t.number not in keep:
                reason = "dropped out of the Pareto front" if self.mode == "pareto" and len(study.objectives) > 1 else "no longer the best feasible network"
                reason += f" (keep_models: {self.mode})"
            else:
                continue
            ost.set_user_attr(MODEL_REMOVED_PREFIX + str(t.number), {"artifact_id": ids[0], "reason": reason})
            self._remove(ids)
            done.append(t.number)
        return done

    def _remove(self, ids: list[str], only_if_present: bool = False) -> None:
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            store = self.store()
        except ConfigError:
            return
        folder = self.folder if self._store_obj is None else None
        for aid in ids:
            if only_if_present and (folder is None or not (folder / aid).exists()):
                continue
            try:
                store.remove(aid)
            except ArtifactNotFound:
                pass
            except Exception as e:  # noqa: BLE001 - a store that cannot delete: the study goes on, the file stays
                warnings.warn(f"hwtune could not delete the weights {aid}: {type(e).__name__}: {e}", stacklevel=2)

    def summary(self, study: Any) -> ModelsSummary:
        """The kept models, for reports."""
        ost = study.optuna_study
        return ModelsSummary(self.mode, self.location(), model_records(ost.get_trials(deepcopy=False), ost.user_attrs, self.folder))


def _artifact_ids(t: Any) -> list[str]:
    """The weights hwtune uploaded for trial ``t``: from its model attribute and Optuna's artifact meta."""
    import json

    ids: list[str] = []
    attr = t.user_attrs.get(MODEL_ATTR)
    if isinstance(attr, Mapping) and attr.get("artifact_id"):
        ids.append(str(attr["artifact_id"]))
    for k, v in (getattr(t, "system_attrs", None) or {}).items():
        if not k.startswith(_ARTIFACT_PREFIX):
            continue
        with contextlib.suppress(ValueError, TypeError):
            meta = json.loads(v) if isinstance(v, str) else v
            if isinstance(meta, Mapping) and _own_filename(meta.get("filename"), t.number) and meta.get("artifact_id") not in ids:
                ids.append(str(meta["artifact_id"]))
    return ids


def _signed(study: Any, values: Any) -> tuple[float, ...]:
    sign = [1.0 if o.direction == "minimize" else -1.0 for o in study.objectives]
    return tuple(s * float(v) for s, v in zip(sign, values))


def _best_of(study: Any, records: list[Any]) -> Any:
    """The best of feasible records: lexicographic on the (signed) objectives, then the lower number."""
    if not records:
        return None
    return min(records, key=lambda r: (_signed(study, r.values), r.number))
