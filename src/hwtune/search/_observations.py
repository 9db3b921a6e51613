"""What the sampler reads from a study: one observation per trial, through the trial vocabulary's reader.

A trial stopped early (``pruned``) is not lost to the sampler: the study's curve model
(:mod:`hwtune.search._curves`, the one the ``curve`` pruner decides with) predicts the validation error
it would have reached at the study's last epoch, and the trial is observed with that error, as a
trained network whose quality is predicted (``Observation.predicted``). The quality surrogate is a GP
with one noise level for every point (:class:`hwtune.costmodel.GaussianProcess`), so the prediction
enters as an observation at its predicted median; its extra uncertainty (``log_sd``) is kept on the
observation but not used by that GP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hwtune.search._curves import CurvePrediction, fit_curves, horizon_of, trial_curve
from hwtune.space import SearchSpace
from hwtune.vocabulary import PENDING_STATUSES, complete_quality, read_trial

__all__ = ["Observation", "read_observations", "MIN_CURVES"]

MIN_CURVES = 3
"""Whole curves (trials trained to their last epoch, the study's own or its prior's) the curve model needs
before a stopped trial is observed with its predicted final error; before that, a stopped trial is
observed as ``pruned`` (not trained: the start-up still spreads away from it, :mod:`._proposer`)."""


@dataclass
class Observation:
    """A trial as the sampler sees it.

    Attributes:
        number: Optuna's trial number.
        params: every param (a pending trial's proposal), completed with the space's fixed params.
        status: hwtune's status (``trained``, ``over_budget``, ``running``, ``waiting``...); a stopped
            trial observed through its learning curve reads ``trained`` (see ``predicted``).
        values: measured hardware values and training metrics; on a plain study also ``__value<i>``
            (objective values) and ``__constraint:<name>`` (Optuna's constraint values).
        predicted: for a stopped trial observed through its learning curve: the curve model's
            prediction of its final error (``error`` / ``accuracy`` in ``values`` come from it), and
            ``stored_status`` keeps ``pruned``.
    """

    number: int
    params: dict[str, Any]
    status: str
    values: dict[str, float] = field(default_factory=dict)
    predicted: CurvePrediction | None = None
    stored_status: str | None = None

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES and bool(self.params)


def read_observations(
    trials: Sequence[Any],
    space: SearchSpace | None,
    plain: bool,
    exclude_number: int | None = None,
    *,
    curves: bool = True,
    prior_curves: Sequence[Mapping[int, float]] = (),
) -> list[Observation]:
    """Observations of ``trials`` (Optuna ``FrozenTrial`` s), leaving out ``exclude_number`` (the
    trial being proposed for); with ``curves``, stopped trials are observed with their predicted
    final error (module docstring; not on a plain Optuna study, whose values are the user's own).
    ``prior_curves``: learning curves of earlier studies of the task (the ``curve`` pruner's
    ``prior_studies``), fitted with the study's own, so a stopped trial is predicted from the start."""
    out = []
    stored = []
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
        stored.append(t)
    if curves and not plain:
        _predict_stopped(out, stored, [c for c in prior_curves if c])
    return out


def _predict_stopped(obs: list[Observation], trials: list[Any], priors: Sequence[Mapping[int, float]]) -> None:
    """Stopped trials with a curve get the curve model's predicted final error (in place)."""
    stopped = [i for i, o in enumerate(obs) if o.status == "pruned" and o.params]
    if not stopped:
        return
    all_curves = {o.number: trial_curve(t) for o, t in zip(obs, trials) if o.status in ("trained", "pruned", "running")}
    if not any(all_curves.get(obs[i].number) for i in stopped):
        return
    longest = max([max(c) for c in all_curves.values() if c] + [max(c) for c in priors])
    complete = [
        o for o in obs if o.status == "trained" and all_curves.get(o.number)
        and max(all_curves[o.number]) >= (horizon_of(o.params, (), longest) or 0)
    ]
    horizon = max(horizon_of(obs[i].params, (), longest) or longest for i in stopped)
    prior_whole = sum(1 for c in priors if max(c) >= horizon)
    if len(complete) + prior_whole < MIN_CURVES:
        return
    model = fit_curves([c for c in all_curves.values() if c] + list(priors), horizon)
    for i in stopped:
        o = obs[i]
        c = all_curves.get(o.number)
        final = horizon_of(o.params, (), longest)
        if not c or final is None:
            continue
        pred = model.predict(c, final)
        if not math.isfinite(pred.log_mean):
            continue
        o.values.update(complete_quality({"error": min(pred.error, 1.0)}))
        o.predicted, o.stored_status, o.status = pred, o.status, "trained"
