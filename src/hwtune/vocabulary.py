"""The trial vocabulary: what a hwtune study stores on each Optuna trial, and one reader of it.

Every layer reads and writes trials with these names (the loop writes them, the sampler, the report,
the bench and the CLI read them), so they are written here once, on the ground floor: this module
imports nothing of hwtune and not Optuna either (a stored trial is read by duck typing: ``number``,
``state.name``, ``params``, ``user_attrs``, ``system_attrs``, ``values``, ``constraints``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

__all__ = [
    "STATUS_ATTR",
    "HARDWARE_ATTR",
    "PREDICTED_ATTR",
    "METRICS_ATTR",
    "FAILURE_ATTR",
    "TRACEBACK_ATTR",
    "WORKER_ATTR",
    "HWKEY_ATTR",
    "PARAMS_ATTR",
    "SEED_ATTR",
    "RETRY_OF_ATTR",
    "DEVICE_ATTR",
    "DECISION_ATTR",
    "PRUNED_AT_ATTR",
    "TRAIN_SETTINGS_ATTR",
    "CURVE_ATTR",
    "COST_ATTR",
    "CONFIG_ATTR",
    "PROPOSAL_ATTR",
    "MODEL_ATTR",
    "COMPRESSION_ATTR",
    "FINAL_HARDWARE_ATTR",
    "MODEL_REMOVED_PREFIX",
    "CLOSING_HARDWARE_PREFIX",
    "Status",
    "STATUSES",
    "BUDGET_STATUSES",
    "OVER_BUDGET_STATUSES",
    "PENDING_STATUSES",
    "complete_quality",
    "trial_status",
    "StoredTrial",
    "read_trial",
]

# -- trial user attributes ---------------------------------------------------------------------------
STATUS_ATTR = "hwtune:status"
"""One of :data:`STATUSES`."""
HARDWARE_ATTR = "hwtune:hardware"
"""metric -> ``Measurement.to_dict()`` (value, unit, source, CI, repeats, note, extra)."""
PREDICTED_ATTR = "hwtune:predicted"
"""metric -> the cost model's prediction made before measuring (same layout, source ``predicted:<model>``)."""
METRICS_ATTR = "hwtune:metrics"
"""Metrics returned by training and evaluation (error, accuracy, test_error...), source ``measured:training``."""
FAILURE_ATTR = "hwtune:failure"
"""Why a trial failed: ``<stage>: <ExceptionType>: <message>``."""
TRACEBACK_ATTR = "hwtune:traceback"
WORKER_ATTR = "hwtune:worker"
"""host, pid and process start time of the worker that ran the trial (to detect dead workers)."""
HWKEY_ATTR = "hwtune:hardware_key"
"""Canonical text of the hardware-relevant params: equal keys share one measurement."""
PARAMS_ATTR = "hwtune:params"
"""All params of the trial, fixed ones included (Optuna's own ``params`` holds the searched ones)."""
SEED_ATTR = "hwtune:train_seed"
RETRY_OF_ATTR = "hwtune:retry_of"
DEVICE_ATTR = "hwtune:device"
DECISION_ATTR = "hwtune:decision"
"""constraint -> how a measurement near its bound was decided (rounds measured, pooled interval, verdict)."""
PRUNED_AT_ATTR = "hwtune:pruned_at_epoch"
TRAIN_SETTINGS_ATTR = "hwtune:train_settings"
CURVE_ATTR = "hwtune:curve"
"""Validation error per reported epoch (cost-aware pruner)."""
COST_ATTR = "hwtune:prune_cost"
"""Hardware costs the cost-aware pruner compared this trial on."""
MODEL_ATTR = "hwtune:model"
"""The trained weights kept for a trained trial (``keep_models``): ``{kept: true, artifact_id, format,
bytes, sha256, filename, folder}`` (an Optuna artifact), or ``{kept: false, reason}``. Written inside
the trial, before its status becomes ``trained``."""
COMPRESSION_ATTR = "hwtune:compression"
"""What compressing the trained network did (issue 14): ``{plan, teacher, sparsity, compressed_size_mb,
finetune, error_before, test_error_before}``; the errors in ``hwtune:metrics`` are the compressed network's."""
FINAL_HARDWARE_ATTR = "hwtune:final_hardware"
"""The compressed trained network measured again after training, as ``hwtune:hardware`` (metric ->
measurement), or ``{"unavailable": reason}``: the check that measuring before training told the truth."""

# -- study and system attributes ---------------------------------------------------------------------
CONFIG_ATTR = "hwtune:config"
"""Study user attribute: the study's definition (space, objectives, constraints, device...)."""
PROPOSAL_ATTR = "hwtune:proposal"
"""Trial system attribute: the sampler's whole proposal (JSON), so that other workers see pending ones."""
MODEL_REMOVED_PREFIX = "hwtune:model_removed:"
"""Study user attribute ``hwtune:model_removed:<trial number>``: ``{artifact_id, reason}`` of kept
weights deleted later (a finished trial's own attributes cannot change), e.g. off the Pareto front."""
CLOSING_HARDWARE_PREFIX = "hwtune:closing_hardware:"
"""Study user attribute ``hwtune:closing_hardware:<trial number>``: a kept network, or one of up to 8
others of the run, measured once more when the study's run ended (metric -> measurement as ``hwtune:hardware``, plus ``measured_at``, Unix
seconds): the closing retest of :mod:`hwtune.study._closing`."""

# -- statuses ----------------------------------------------------------------------------------------
Status = Literal["trained", "over_budget", "predicted_over_budget", "pruned", "failed", "interrupted", "running", "waiting"]
STATUSES: tuple[str, ...] = ("trained", "over_budget", "predicted_over_budget", "pruned", "failed", "interrupted", "running", "waiting")
"""``trained``; ``over_budget`` (measured over a hardware limit, never trained); ``predicted_over_budget``
(the cost model was nearly sure: neither measured nor trained); ``pruned`` (stopped during training);
``failed``; ``interrupted`` (its worker died; proposed again); ``running``; ``waiting`` (queued)."""
BUDGET_STATUSES: tuple[str, ...] = ("trained", "over_budget", "predicted_over_budget", "pruned", "failed")
"""Statuses a budget of trials counts (an interrupted trial is proposed again, so it does not count)."""
OVER_BUDGET_STATUSES: tuple[str, ...] = ("over_budget", "predicted_over_budget")
PENDING_STATUSES: tuple[str, ...] = ("running", "waiting")


def complete_quality(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` with ``accuracy`` added from ``error`` (``1 - error``) or the reverse, when one is missing."""
    out = dict(metrics)
    if "error" in out and "accuracy" not in out:
        out["accuracy"] = 1.0 - out["error"]
    elif "accuracy" in out and "error" not in out:
        out["error"] = 1.0 - out["accuracy"]
    return out


def trial_status(t: Any) -> Status:
    """hwtune's status of a stored trial, from its ``hwtune:status`` and Optuna state (no record built)."""
    state = t.state.name
    status = t.user_attrs.get(STATUS_ATTR)
    if state == "RUNNING":
        return "running"
    if state == "WAITING":
        return "waiting"
    if state == "FAIL" and status == "running":
        return "interrupted"  # the worker never finished it (killed, or its heartbeat stopped)
    if state == "PRUNED" and status == "running":
        return "pruned"  # a user's TrialPruned before issue 11 left the status as it was
    if status is None:
        # not written by hwtune's loop (a plain Optuna trial)
        return {"COMPLETE": "trained", "PRUNED": "pruned"}.get(state, "failed")  # type: ignore[return-value]
    if state == "FAIL" and status not in ("failed", "interrupted"):
        return "failed"
    return status


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    fv = float(v)
    return fv if math.isfinite(fv) else None


@dataclass(frozen=True)
class StoredTrial:
    """One stored trial as every layer reads it (plain data: measurements stay dicts).

    Attributes:
        number: Optuna's trial number.
        status: hwtune's status (:func:`trial_status`).
        params: every param (fixed ones included); for a running or queued trial, its proposal.
        hardware: metric -> stored measurement dict (``measured:*`` or ``counted``...).
        final_hardware: for a compressed or kept trained network, its measurement after training (same layout).
        predicted: metric -> stored prediction dict (``predicted:<model>``).
        metrics: training results, with error/accuracy completed for trained trials.
        values: Optuna's objective values (``None`` unless complete).
        constraints: Optuna's constraint values by name (feasible when <= 0).
        failure: why it failed or was interrupted.
        duration_s: wall-clock seconds from start to completion.
        user_attrs: every user attribute as stored (for readers of other keys).
    """

    number: int
    status: Status
    params: dict[str, Any]
    hardware: dict[str, dict[str, Any]] = field(default_factory=dict)
    final_hardware: dict[str, dict[str, Any]] = field(default_factory=dict)
    predicted: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    constraints: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    duration_s: float | None = None
    user_attrs: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def measured(self) -> dict[str, float]:
        """Every finite measured hardware value and training metric, by metric name (predictions left out)."""
        out: dict[str, float] = {}
        for k, m in self.hardware.items():
            if isinstance(m, Mapping) and not str(m.get("source", "")).startswith("predicted:"):
                v = _finite(m.get("value"))
                if v is not None:
                    out[k] = v
        for k, v in self.metrics.items():
            fv = _finite(v)
            if fv is not None:
                out[k] = fv
        return out


def _proposal_params(t: Any) -> dict[str, Any] | None:
    """A running or queued trial's params before the loop stored them: the sampler's proposal, or the
    params it was queued with."""
    import json

    raw = t.system_attrs.get(PROPOSAL_ATTR)
    if raw:
        try:
            p = json.loads(raw)
            if isinstance(p, dict):
                return p
        except ValueError:
            pass
    fixed = t.system_attrs.get("fixed_params")
    return dict(fixed) if isinstance(fixed, Mapping) else None


def read_trial(t: Any) -> StoredTrial:
    """The one reader of stored trials (an Optuna ``FrozenTrial`` or anything shaped like it)."""
    ua = t.user_attrs
    status = trial_status(t)
    params = ua.get(PARAMS_ATTR)
    if params is None and status in PENDING_STATUSES:
        params = _proposal_params(t)
    if params is None:
        params = dict(t.params)
    metrics = {k: v for k, v in (ua.get(METRICS_ATTR) or {}).items()}
    if status == "trained":
        metrics = complete_quality(metrics)
    start, end = getattr(t, "datetime_start", None), getattr(t, "datetime_complete", None)
    failure = ua.get(FAILURE_ATTR) or ("interrupted: its worker ended during the trial" if status == "interrupted" else None)
    return StoredTrial(
        number=t.number,
        status=status,
        params=dict(params),
        hardware=dict(ua.get(HARDWARE_ATTR) or {}),
        final_hardware={k: v for k, v in dict(ua.get(FINAL_HARDWARE_ATTR) or {}).items() if isinstance(v, Mapping)},
        predicted=dict(ua.get(PREDICTED_ATTR) or {}),
        metrics=metrics,
        values=tuple(t.values) if t.values is not None else None,
        constraints=dict(t.constraints or {}),
        failure=failure,
        duration_s=(end - start).total_seconds() if start and end else None,
        user_attrs=ua,
    )
