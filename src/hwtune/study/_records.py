"""A typed view of one stored trial, with its measurements as :class:`Measurement` objects.

The attribute keys and statuses are the trial vocabulary (:mod:`hwtune.vocabulary`); reading a stored
trial is :func:`hwtune.vocabulary.read_trial`, which this view wraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwtune.hardware import Measurement
from hwtune.vocabulary import Status, read_trial, trial_status

__all__ = ["TrialRecord", "trial_status"]


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
