"""What a hwtune study writes so that optuna-dashboard shows it whole, and the view it is served with.

What optuna-dashboard (0.21, its current release) reads, from its source:

- objective names: the study system attribute ``study:metric_names``, which Optuna's own
  ``Study.set_metric_names`` writes (:func:`name_objectives`, when the study is created or opened);
- user attributes: every one, shown as text; the numeric ones (``int``/``float``, not ``bool``) are
  "sortable", so its trial table sorts them and its plots can take them as axes. hwtune's own records
  are JSON (``hwtune:hardware``...), so each finished trial also gets plain numbers
  (:func:`mirror_trial`): each measured metric (``latency_ms``, ``error``...), each prediction made before
  measuring (``predicted latency_ms``), each constraint's value (``constraint: latency_ms <= 5``,
  feasible when <= 0), ``feasible`` (1 or 0) and ``over_budget`` (1: measured over budget, 2:
  predicted over budget and skipped, 0: neither), beside ``hwtune:status`` in words; Optuna's state
  of an over-budget network stays PRUNED;
- constraints: only the list of Optuna 4's system attribute ``constraints``. Optuna 5's named
  constraints (``trial.set_constraint(name, value)``, the system attributes ``constraints:<name>``)
  are what hwtune stores; writing the old list as well would give ``trial.constraints`` each value
  twice (``"0"`` beside the name: Optuna reads both formats), which breaks Optuna's API and doubles
  every constraint in Optuna's samplers. So the list is never written: :func:`dashboard_storage`
  serves a storage to optuna-dashboard with the list added to the trials it reads (``hwtune
  dashboard``), and a plain ``optuna-dashboard`` shows the constraint values as the numbers above.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

from hwtune.exceptions import ConfigError
from hwtune.vocabulary import HARDWARE_ATTR, METRICS_ATTR, PREDICTED_ATTR, STATUS_ATTR

if TYPE_CHECKING:
    import optuna

__all__ = ["name_objectives", "mirror_trial", "with_dashboard_attrs", "dashboard_storage", "FEASIBLE_ATTR", "OVER_BUDGET_ATTR",
           "CONSTRAINT_PREFIX", "PREDICTED_PREFIX", "LEGACY_CONSTRAINTS_KEY"]

_log = logging.getLogger("hwtune.study")

FEASIBLE_ATTR = "feasible"
"""1 when the trial was trained and is within every constraint, else 0."""
OVER_BUDGET_ATTR = "over_budget"
"""1 measured over budget, 2 predicted over budget (skipped), 0 neither."""
CONSTRAINT_PREFIX = "constraint: "
PREDICTED_PREFIX = "predicted "
LEGACY_CONSTRAINTS_KEY = "constraints"
"""The system attribute optuna-dashboard reads (Optuna 4's list); never written to a study."""
_QUALITY_KEYS = ("error", "accuracy", "test_error", "train_loss", "epochs", "train_time_s")


def name_objectives(ostudy: "optuna.Study", metrics: list[str]) -> None:
    """Name the study's objectives (Optuna's ``set_metric_names``; the dashboard's axis titles), once."""
    if len(metrics) != len(ostudy.directions):
        return
    if list(ostudy.metric_names or []) != list(metrics):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks set_metric_names experimental
            ostudy.set_metric_names(list(metrics))


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def dashboard_attrs(user_attrs: Mapping[str, Any], constraints: Mapping[str, float]) -> dict[str, float]:
    """The plain numbers of one trial's hwtune record (see the module docstring)."""
    out: dict[str, float] = {}
    for k, m in (user_attrs.get(HARDWARE_ATTR) or {}).items():
        if isinstance(m, Mapping) and (v := _number(m.get("value"))) is not None:
            out[str(k)] = v
    for k, m in (user_attrs.get(PREDICTED_ATTR) or {}).items():
        if isinstance(m, Mapping) and (v := _number(m.get("value"))) is not None:
            out[PREDICTED_PREFIX + str(k)] = v
    metrics = user_attrs.get(METRICS_ATTR) or {}
    for k in _QUALITY_KEYS:
        if (v := _number(metrics.get(k))) is not None:
            out[k] = v
    for name, v in constraints.items():
        if (f := _number(v)) is not None:
            out[CONSTRAINT_PREFIX + str(name)] = f
    status = user_attrs.get(STATUS_ATTR)
    out[FEASIBLE_ATTR] = float(status == "trained" and all(v <= 0 for v in constraints.values()))
    out[OVER_BUDGET_ATTR] = {"over_budget": 1.0, "predicted_over_budget": 2.0}.get(str(status), 0.0)
    return out


def mirror_trial(trial: "optuna.Trial") -> None:
    """Write :func:`dashboard_attrs` of a running ``trial`` as user attributes (before it finishes:
    a finished trial cannot change). A fault here never fails the trial: these are copies. A study
    in memory is skipped: no dashboard can open it (the bench's searches run there, thousands of trials)."""
    import optuna

    if isinstance(getattr(trial, "storage", None), optuna.storages.InMemoryStorage):
        return
    try:
        attrs = dashboard_attrs(trial.user_attrs, trial.constraints)
        have = trial.user_attrs
        for k, v in attrs.items():
            if have.get(k) != v:
                trial.set_user_attr(k, v)
    except Exception as e:  # noqa: BLE001 - a storage fault shows again, and is reported, when the trial is told
        _log.debug("trial %s: dashboard attributes not written: %s", getattr(trial, "number", "?"), e)


def with_dashboard_attrs(objective: Callable[["optuna.Trial"], Any]) -> Callable[["optuna.Trial"], Any]:
    """``objective`` that also mirrors each trial's record as numbers (:func:`mirror_trial`), whether it
    ends trained, pruned, over budget or failed; an interrupt passes through untouched."""

    def run(trial: "optuna.Trial") -> Any:
        try:
            out = objective(trial)
        except Exception:
            mirror_trial(trial)
            raise
        mirror_trial(trial)
        return out

    return run


# -- the storage optuna-dashboard is served with ------------------------------------------------------
def _with_legacy_constraints(t: Any) -> Any:
    """A copy of frozen trial ``t`` whose system attributes also hold the constraint list the dashboard
    reads (in the order of the constraint names, sorted); ``t`` itself is left as it is."""
    system = getattr(t, "_system_attrs", None) or {}
    if LEGACY_CONSTRAINTS_KEY in system:
        return t
    named = {k[len(LEGACY_CONSTRAINTS_KEY) + 1:]: v for k, v in system.items() if k.startswith(LEGACY_CONSTRAINTS_KEY + ":")}
    if not named:
        return t
    t2 = copy.copy(t)
    t2._system_attrs = {**system, LEGACY_CONSTRAINTS_KEY: [float(named[k]) for k in sorted(named)]}
    return t2


def _with_numbers(t: Any) -> Any:
    """A copy of frozen trial ``t`` with :func:`dashboard_attrs` added to its user attributes where it
    lacks them (a study run before hwtune wrote them); before the constraint list is added, so that
    its constraints are read once."""
    ua = getattr(t, "_user_attrs", None) or {}
    if STATUS_ATTR not in ua or FEASIBLE_ATTR in ua:
        return t
    t2 = copy.copy(t)
    t2._user_attrs = {**ua, **dashboard_attrs(ua, t.constraints)}
    return t2


def _stored_metric_names(frozen_study: Any) -> list[str] | None:
    cfg = (getattr(frozen_study, "user_attrs", None) or {}).get("hwtune:config")
    if not isinstance(cfg, Mapping) or not cfg.get("objectives"):
        return None
    from hwtune.search._targets import objectives_from_config

    try:
        return [o.metric for o in objectives_from_config(cfg["objectives"])]
    except ConfigError:
        return None


def _with_metric_names(s: Any) -> Any:
    """A copy of frozen study ``s`` named with its objectives (from ``hwtune:config``) when unnamed."""
    system = getattr(s, "system_attrs", None) or {}  # FrozenStudy: a plain attribute
    names = _stored_metric_names(s)
    if "study:metric_names" in system or not names or len(names) != len(s.directions):
        return s
    s2 = copy.copy(s)
    s2.system_attrs = {**system, "study:metric_names": names}
    return s2


def _view_class() -> type:
    from optuna.storages import BaseStorage

    class DashboardView(BaseStorage):  # type: ignore[misc]
        """Every call goes to the storage it wraps; the trials it returns carry the constraint list."""

        def __init__(self, inner: BaseStorage) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def get_trial(self, trial_id: int) -> Any:
            return _with_legacy_constraints(_with_numbers(self._inner.get_trial(trial_id)))

        def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
            return [_with_legacy_constraints(_with_numbers(t)) for t in self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)]

        def get_best_trial(self, study_id: int) -> Any:
            return _with_legacy_constraints(_with_numbers(self._inner.get_best_trial(study_id)))

        def get_all_studies(self) -> list[Any]:
            return [_with_metric_names(s) for s in self._inner.get_all_studies()]

    own = {"get_trial", "get_all_trials", "get_best_trial", "get_all_studies"}
    for name, attr in vars(BaseStorage).items():
        if callable(attr) and not name.startswith("_") and name not in own:
            setattr(DashboardView, name, _delegate(name))
    DashboardView.__abstractmethods__ = frozenset()
    return DashboardView


def _delegate(name: str) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    call.__name__ = name
    return call


def dashboard_storage(storage: "str | optuna.storages.BaseStorage", field_name: str = "storage") -> "optuna.storages.BaseStorage":
    """``storage`` as optuna-dashboard should read a hwtune study: every trial's named constraints also
    as the dashboard's constraint list, so that it marks infeasible trials; and, for a study stored
    before hwtune wrote them, the objective names and the numbers of :func:`dashboard_attrs`. Nothing
    is written.

    Raises:
        ConfigError: naming ``field_name`` when optuna-dashboard is not installed, or the storage is
            not an Optuna storage that exists.
    """
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise ConfigError(field_name, "serving the dashboard needs optuna-dashboard, which is not installed.",
                          "pip install 'hwtune[dashboard]'.") from None
    if isinstance(storage, str):
        from pathlib import Path

        from hwtune.study._storage import _sqlite_path, open_storage

        path = _sqlite_path(storage)
        if path is not None and not Path(path).is_file():  # never create an empty database to browse
            raise ConfigError(field_name, f"there is no SQLite file {str(Path(path).resolve())!r}: no study was stored there.",
                              "give the storage `hwtune run` wrote to, e.g. --storage sqlite:///hwtune.db.")
        storage = open_storage(storage, field_name)  # the dashboard writes its notes: opened as hwtune opens it
    return _view_class()(storage)
