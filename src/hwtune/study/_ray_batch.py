"""The driver side of the Ray executor's proposals: batches from the sampler, a cost model safe to share
between the driver's trial threads.

The driver runs several trials at once, each in a thread of Optuna's ``optimize(n_jobs=...)`` that
waits on its Ray tasks. Every thread asks for its trial under the study's budget lock, so proposals
are made one after the other; :class:`BatchSampler` makes ONE call of the sampler's
``propose(study, q)`` for ``q`` asks (one surrogate fit for ``q`` proposals, none equal to another, to
a finished trial or to a running one; ``q`` = the driver's free slots at the start, then a round of
``slots``) and hands them out one per ask. A batch is dropped once a round of trials has finished since
it was proposed: a proposal never lags more than one round behind what the study learnt. A re-queued
trial (``hwtune:retry_of``) keeps its params: nothing is proposed for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hwtune.search._hwsampler import publish_proposal
from hwtune.vocabulary import WORKER_ATTR

__all__ = ["BatchSampler", "LockedCostModels"]


class BatchSampler(BaseSampler):
    """Wraps the study's sampler: proposals in batches of the free slots when it has ``propose(study, q)``
    (hwtune's ``HwSampler``); any other sampler is asked as it is.

    Args:
        inner: the study's sampler.
        slots: trials the driver runs at once.
        budget_left: how many more trials the budget allows (``None``: no trial budget); caps a batch.
        max_batch: most proposals of one call (a round of a thousand slots is proposed 64 at a time).
    """

    def __init__(self, inner: BaseSampler, slots: int, budget_left: Callable[[], int | None] = lambda: None, max_batch: int = 64) -> None:
        self.inner = inner
        self.slots = max(1, int(slots))
        self.max_batch = max(1, int(max_batch))
        self.budget_left = budget_left
        self._batch: list[dict[str, Any]] = []
        self._made_at = -1  # finished trials when the batch was proposed
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []
        """``q`` of every batch proposed (for tests and the benchmark)."""

    # -- Optuna's sampler interface -------------------------------------------------------------
    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        fixed = trial.system_attrs.get("fixed_params") or {}
        if fixed and all(n in fixed for n in search_space):  # a re-queued or enqueued trial: its own params
            return {}
        if not callable(getattr(self.inner, "propose", None)):
            return self.inner.sample_relative(study, trial, search_space)
        with self._lock:
            prop = self._next(study, trial)
        return publish_proposal(study, trial, prop, search_space)  # other processes see it pending, as HwSampler's

    def sample_independent(self, study: Any, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        # Optuna reseeds the sampler in every thread of optimize(n_jobs>1); hwtune's sampler is seeded by
        # (seed, trial number), which keeps a study reproducible: only other samplers are reseeded
        if not callable(getattr(self.inner, "propose", None)):
            self.inner.reseed_rng()

    def before_trial(self, study: Any, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Any, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    # -- batches --------------------------------------------------------------------------------
    def _next(self, study: Any, trial: FrozenTrial) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state.is_finished())
        if self._batch and finished - self._made_at < min(self.slots, self.max_batch):  # at most a batch of trials old
            return self._batch.pop(0)
        me = os.getpid()
        running_here = sum(  # trials of this driver already under way (the ones asking now are not)
            1 for t in trials
            if t.state == TrialState.RUNNING and t.number != trial.number and (t.user_attrs.get(WORKER_ATTR) or {}).get("pid") == me
        )
        q = max(1, self.slots - running_here) if self._made_at < 0 else self.slots  # then a whole round at a time
        q = min(q, self.max_batch)
        left = self.budget_left()
        if left is not None:
            q = max(1, min(q, left))
        self._batch = list(self.inner.propose(study, q))  # type: ignore[attr-defined]
        self._made_at = finished
        self.batch_sizes.append(q)
        return self._batch.pop(0) if self._batch else {}


class LockedCostModels:
    """The study's one cost model behind a lock: the driver's trial threads observe measurements and
    predict while the sampler screens proposals with it in another thread. A method call holds the
    lock (re-entrant: the sampler proposes under the same lock); attribute reads pass through."""

    def __init__(self, inner: Any, lock: Any) -> None:
        self.__dict__["_inner"] = inner
        self.__dict__["_lock"] = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return attr(*args, **kwargs)

        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)
