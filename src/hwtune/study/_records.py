"""What a study stores per trial (Optuna user attributes) and a typed view of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from optuna.trial import FrozenTrial, TrialState

from hwtune.hardware import Measurement

__all__ = [
    "STATUS_ATTR",
    "HARDWARE_ATTR",
    "METRICS_ATTR",
    "PREDICTED_ATTR",
    "FAILURE_ATTR",
    "WORKER_ATTR",
    "HWKEY_ATTR",
    "SEED_ATTR",
    "PARAMS_ATTR",
    "RETRY_OF_ATTR",
    "CONFIG_ATTR",
    "Status",
    "TrialRecord",
    "trial_status",
]

STATUS_ATTR = "hwtune:status"
"""``trained`` | ``over_budget`` (measured over a hardware limit, never trained) |
``predicted_over_budget`` (the cost model was nearly certain it is over: not measured, not trained) | ``pruned`` |
``failed`` | ``interrupted`` (its worker died; re-proposed)."""
HARDWARE_ATTR = "hwtune:hardware"
"""metric -> :meth:`Measurement.to_dict` (value, unit, source, CI, repeats...)."""
PREDICTED_ATTR = "hwtune:predicted"
"""metric -> prediction made before measuring (``Measurement.to_dict`` layout, source ``predicted:<model>``)."""
METRICS_ATTR = "hwtune:metrics"
"""Metrics returned by training and evaluation (error, test_error, ...), source ``measured:training``."""
FAILURE_ATTR = "hwtune:failure"
"""Why a trial failed: ``<stage>: <ExceptionType>: <message>``."""
WORKER_ATTR = "hwtune:worker"
"""host, pid and process start time of the worker that ran the trial (to detect dead workers)."""
HWKEY_ATTR = "hwtune:hardware_key"
"""Canonical text of the hardware-relevant params: equal keys share one measurement."""
PARAMS_ATTR = "hwtune:params"
"""All params of the trial, fixed ones included (Optuna's own ``params`` holds the searched ones)."""
SEED_ATTR = "hwtune:train_seed"
RETRY_OF_ATTR = "hwtune:retry_of"
CONFIG_ATTR = "hwtune:config"
"""Study attribute: the study's definition (space, objectives, constraints, device...)."""

Status = Literal["trained", "over_budget", "predicted_over_budget", "pruned", "failed", "interrupted", "running", "waiting"]


def trial_status(t: FrozenTrial) -> Status:
    """hwtune's status of a trial, from its stored status and Optuna state (cheap: no record built)."""
    status = t.user_attrs.get(STATUS_ATTR)
    if t.state == TrialState.RUNNING:
        return "running"
    if t.state == TrialState.WAITING:
        return "waiting"
    if t.state == TrialState.FAIL and status == "running":
        # the worker never finished it (killed, or its heartbeat stopped): see _storage.py
        return "interrupted"
    if status is None or (t.state == TrialState.FAIL and status not in ("failed", "interrupted")):
        return "failed"
    return status


@dataclass(frozen=True)
class TrialRecord:
    """One trial as hwtune sees it."""

    number: int
    status: Status
    params: dict[str, Any]
    hardware: dict[str, Measurement] = field(default_factory=dict)
    predicted: dict[str, Measurement] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    violations: tuple[float, ...] = ()
    failure: str | None = None
    duration_s: float | None = None

    @property
    def feasible(self) -> bool:
        """Trained and within every constraint."""
        return self.status == "trained" and all(v <= 0 for v in self.violations)

    @classmethod
    def from_frozen(cls, t: FrozenTrial) -> "TrialRecord":
        ua = t.user_attrs
        status = trial_status(t)
        hw = {k: Measurement.from_dict(v) for k, v in (ua.get(HARDWARE_ATTR) or {}).items()}
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        return cls(
            number=t.number,
            status=status,
            params=dict(ua.get(PARAMS_ATTR) or t.params),
            hardware=hw,
            predicted={k: Measurement.from_dict(v) for k, v in (ua.get(PREDICTED_ATTR) or {}).items()},
            metrics=dict(ua.get(METRICS_ATTR) or {}),
            values=tuple(t.values) if t.values is not None else None,
            violations=tuple(t.constraints.values()),
            failure=ua.get(FAILURE_ATTR) or ("interrupted: its worker ended during the trial" if status == "interrupted" else None),
            duration_s=dur,
        )
