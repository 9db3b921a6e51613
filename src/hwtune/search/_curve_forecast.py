"""What the ``curve`` pruner knows beyond the study's own curves: earlier studies, and the study's budget.

Two facts bound what a pruner that compares a trial with the study's best so far can save (measured
in ``benchmarks/train_pruning_replay.py``, docs/benchmarks.md "The floors of a causal pruner"): it
trains the first ``min_complete`` networks whole before its model of the curves can decide anything,
and it trains every new *record* whole, since any record might be the study's last best. This module
gives the pruner what relaxes both, when the user has it:

- **prior curves**: the learning curves of earlier studies of the same task and training setting
  (:func:`load_prior_curves` reads them from studies in the same storage). They join the pooled curve
  model and count towards ``min_complete``, so decisions start with the first network.
- **the budget left** (:class:`StudyBudget`, bound by the study loop): how many more networks the
  study will try. With the distribution of final errors (whole curves, and the model's forecast for
  stopped ones) it turns "will this trial beat the best so far" into "will it beat the best so far
  *and* every network still to come" (:func:`final_best_probability`): a modest record early in a long
  study is likely to be beaten later, and finishing it buys little.

NumPy only; the budget is counted on stored trials, so it holds across workers and resumed studies.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from hwtune.exceptions import ConfigError
from hwtune.search._curves import CurvePrediction, trial_curve

__all__ = ["PRIOR_FINALS_WEIGHT", "StudyBudget", "final_best_probability", "load_prior_curves", "parse_prior_curves"]

_Z = np.array([NormalDist().inv_cdf((i + 0.5) / 64) for i in range(64)])
"""64 equal-probability points of a standard normal: the predictive distribution on a grid."""


PRIOR_FINALS_WEIGHT = 4.0
"""How many of the study's own networks the prior's final errors count as, in the forecast of the
networks to come: the prior tells what a network of the task can reach, the study's own networks what
*its* sampler proposes now. Counted as the whole study, a prior from a study that had found a better
region than the new one has yet says every network to come beats the new study's modest records, and
the forecast stops them all (docs/benchmarks.md, "Where the forecast fails")."""


def final_best_probability(
    pred: CurvePrediction, best: float, finals: Sequence[float], remaining: float,
    prior_finals: Sequence[float] = (), prior_weight: float | None = None,
) -> float:
    """P(the trial's final error beats ``best`` and each of ``remaining`` networks still to come).

    The trial's final error is ``pred`` (log-normal); each network to come draws its final error,
    independently, from a mixture of ``finals`` (the study's own networks' final errors) and
    ``prior_finals`` (the prior's), the prior weighing as ``prior_weight`` networks of the study
    (default :data:`PRIOR_FINALS_WEIGHT`).
    With ``remaining`` 0 this is ``pred.prob_below(best)`` up to the grid.
    """
    x = np.exp(pred.log_mean + pred.log_sd * _Z)
    beats = x < best
    weight = PRIOR_FINALS_WEIGHT if prior_weight is None else float(prior_weight)
    w_own, w_prior = float(len(finals)), (weight if len(prior_finals) else 0.0)
    if remaining <= 0 or w_own + w_prior <= 0:
        return float(np.mean(beats))
    below = np.zeros_like(x)  # share of networks to come that would beat x
    for values, w in ((finals, w_own), (prior_finals, w_prior)):
        if w > 0:
            dist = np.sort(np.asarray(values, dtype=float))
            below += w * np.searchsorted(dist, x, side="left") / len(dist)
    below /= w_own + w_prior
    return float(np.mean(beats * (1.0 - below) ** float(remaining)))


@dataclass
class StudyBudget:
    """The study's budget as the loop runs it: ``n_trials`` / ``n_trained`` (whole study) and a
    ``deadline`` on ``clock`` (this run). :meth:`remaining_networks` forecasts how many more
    networks (trained or stopped trials) the study will try; ``None`` when it cannot tell yet."""

    n_trials: int | None = None
    n_trained: int | None = None
    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=math.nan)
    networks_at_start: int | None = None

    def remaining_networks(self, trials: Sequence[FrozenTrial], running: int | None = None) -> float | None:
        """Networks still to come after the running ones, the smallest of what each budget allows.

        ``trials``: the study's trials; a *network* is a trial that trained (complete) or was stopped
        (pruned), a trial measured over budget is not. ``running``: the trial asking, left out.
        """
        finished = [t for t in trials if t.number != running and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        networks = sum(1 for t in finished if trial_curve(t))
        counted = len(finished)
        forecasts: list[float] = []
        if self.n_trials is not None and counted:
            forecasts.append(max(0.0, self.n_trials - counted - 1) * networks / counted)
        if self.n_trained is not None:
            trained = sum(1 for t in finished if t.state == TrialState.COMPLETE and trial_curve(t))
            if trained:
                forecasts.append(max(0.0, self.n_trained - trained - 1) * networks / trained)
        if self.deadline is not None and self.networks_at_start is not None:
            now = self.clock()
            done = networks - self.networks_at_start
            if done > 0 and now > self.started:
                forecasts.append(max(0.0, self.deadline - now) * done / (now - self.started))
        return min(forecasts) if forecasts else None

    def start(self, trials: Sequence[FrozenTrial]) -> StudyBudget:
        """Mark the start of this run (the deadline's rate counts networks from here)."""
        self.started = self.clock()
        self.networks_at_start = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and trial_curve(t))
        return self


def parse_prior_curves(field_name: str, raw: Any) -> list[dict[int, float]]:
    """Curves given inline: each a list of validation errors from epoch 1, or a mapping epoch -> error."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise ConfigError(field_name, f"expected a list of learning curves, got {raw!r}.", "give e.g. [[0.4, 0.2, 0.1], [0.9, 0.8, 0.7]].")
    out: list[dict[int, float]] = []
    for i, c in enumerate(raw):
        items = c.items() if isinstance(c, Mapping) else enumerate(c, start=1) if isinstance(c, Sequence) and not isinstance(c, (str, bytes)) else None
        try:
            curve = {int(e): float(v) for e, v in items} if items is not None else {}
        except (TypeError, ValueError):
            curve = {}
        if not curve or any(e < 1 or not (math.isfinite(v) and 0.0 <= v <= 1.0) for e, v in curve.items()):
            raise ConfigError(f"{field_name}[{i}]", f"expected a learning curve (validation errors in [0, 1] from epoch 1), got {c!r}.",
                              "give each curve as a list of errors, one per epoch.")
        out.append(curve)
    return out


def load_prior_curves(storage: Any, names: Sequence[str], field_name: str, own: str | None = None) -> list[dict[int, float]]:
    """The learning curves of every trained or stopped trial of the studies ``names`` in ``storage``
    (``own``: the study that reads them, which cannot be its own prior).

    Raises:
        ConfigError: the study's own name, or a name that is not a study of the storage (the message
            lists those that are).
    """
    import optuna

    curves: list[dict[int, float]] = []
    for i, name in enumerate(names):
        if name == own:
            raise ConfigError(f"{field_name}[{i}]", f"{name!r} is this study: its own curves are read anyway.", "name an earlier study of the same task.")
        try:
            prior = optuna.load_study(study_name=str(name), storage=storage)
        except KeyError:
            known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False) if s.study_name != own) or "none"
            raise ConfigError(f"{field_name}[{i}]", f"no study {name!r} in this storage.", f"name an earlier study of the same task; studies here: {known}.") from None
        curves += [c for t in prior.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)) if (c := trial_curve(t))]
    return curves
