"""A typed view of one stored trial, with its measurements as :class:`Measurement` objects, and of a study
(:class:`StudySummary`: counts by status, the best feasible trials and the checks of the study).

The attribute keys and statuses are the trial vocabulary (:mod:`hwtune.vocabulary`); reading a stored
trial is :func:`hwtune.vocabulary.read_trial`, which this view wraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwtune.hardware import Measurement
from hwtune.space import Constraint, Objective, SearchSpace
from hwtune.vocabulary import Status, read_trial, trial_status

__all__ = ["StudySummary", "TrialRecord", "trial_status"]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as hwtune sees it."""

    number: int
    status: Status
    params: dict[str, Any]
    hardware: dict[str, Measurement] = field(default_factory=dict)
    predicted: dict[str, Measurement] = field(default_factory=dict)
    final_hardware: dict[str, Measurement] = field(default_factory=dict)
    """A compressed or kept network's hardware measured again after training (``hwtune:final_hardware``)."""
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
    def from_frozen(cls, t: Any) -> "TrialRecord":
        s = read_trial(t)
        return cls(
            number=s.number,
            status=s.status,
            params=s.params,
            hardware={k: Measurement.from_dict(v) for k, v in s.hardware.items()},
            predicted={k: Measurement.from_dict(v) for k, v in s.predicted.items()},
            final_hardware={k: Measurement.from_dict({"metric": k, **v}) for k, v in s.final_hardware.items()},
            metrics=s.metrics,
            values=s.values,
            violations=tuple(s.constraints.values()),
            failure=s.failure,
            duration_s=s.duration_s,
        )


@dataclass
class StudySummary:
    """Counts by status and the best feasible trial(s)."""

    name: str
    storage: str
    counts: dict[str, int]
    best: list[TrialRecord]
    objectives: list[Objective]
    constraints: list[Constraint]
    records: list[TrialRecord] = field(repr=False, default_factory=list)
    space: SearchSpace | None = field(repr=False, default=None)
    models: Any = field(repr=False, default=None)
    """``ModelsSummary`` (``study._keep``): the kept models, where they are, why a trial has none."""
    machine_speed: dict[str, Any] | None = field(repr=False, default=None)
    """How the machine's speed moved over the study (``study._reference_speed.machine_speed``)."""
    compression_check: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)
    """Networks measured before training vs again after it, compressed or kept (``study._compression_check``)."""
    closing_check: dict[str, Any] | None = field(repr=False, default=None)
    """The closing retest against the first measurements (``study._closing.closing_agreement``)."""
