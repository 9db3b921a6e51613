"""What the sampler reads from a study: one observation per trial, through the trial vocabulary's reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from hwtune.space import SearchSpace
from hwtune.vocabulary import PENDING_STATUSES, read_trial

__all__ = ["Observation", "read_observations"]


@dataclass
class Observation:
    """A trial as the sampler sees it.

    Attributes:
        number: Optuna's trial number.
        params: every param (a pending trial's proposal), completed with the space's fixed params.
        status: hwtune's status (``trained``, ``over_budget``, ``running``, ``waiting``...).
        values: measured hardware values and training metrics; on a plain study also ``__value<i>``
            (objective values) and ``__constraint:<name>`` (Optuna's constraint values).
    """

    number: int
    params: dict[str, Any]
    status: str
    values: dict[str, float] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES and bool(self.params)


def read_observations(trials: Sequence[Any], space: SearchSpace | None, plain: bool, exclude_number: int | None = None) -> list[Observation]:
    """Observations of ``trials`` (Optuna ``FrozenTrial`` s), leaving out ``exclude_number`` (the
    trial being proposed for)."""
    out = []
    for t in trials:
        if t.number == exclude_number:
            continue
        s = read_trial(t)
        params = space.complete(s.params) if space is not None and s.params else s.params
        values = s.measured()
        if plain and s.values is not None and t.state.name == "COMPLETE":
            for i, v in enumerate(s.values):
                values[f"__value{i}"] = float(v)
        for k, v in s.constraints.items():
            values[f"__constraint:{k}"] = float(v)
        out.append(Observation(s.number, params, s.status, values))
    return out
