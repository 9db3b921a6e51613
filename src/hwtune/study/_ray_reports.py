"""Epoch reports of a Ray training task, answered live by the driver's pruner.

A study with a pruner needs each ``ctx.report(epoch, error)`` answered before the training goes on
(stop now, or continue). The pruner and the trial live in the driver, the training in a task, so one
small asyncio actor (no CPU) passes each report to the trial's driver thread and its answer back:
the task blocks in :meth:`ReportBroker.ask` until the driver thread, which polls
:meth:`ReportBroker.take` while it waits for the task, has run the trial's real ``ctx.report`` (which
stores the intermediate value and asks the pruner) and :meth:`ReportBroker.answer` ed. A study without
a pruner needs no answer: its reports travel back with the task's result and are replayed
(``study._ray_tasks``).

Why asyncio and not threads: a threaded Ray actor starts ``max_concurrency`` OS threads when it is
created (Ray's ``BoundedExecutor``); with one blocked ``ask`` per training in flight that number has to
be large, and on a loaded 2-core CI machine creating thousands of threads killed the actor's worker
before it served a call. An asyncio actor's concurrency is coroutines on one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["ReportBroker", "live_report"]


class ReportBroker:
    """The actor's class (``ray.remote(ReportBroker)``; asyncio: one awaiting ``ask`` per training)."""

    def __init__(self) -> None:
        self._cv: asyncio.Condition | None = None  # made in the actor's event loop, at the first call
        self._asks: dict[int, tuple[int, float]] = {}
        self._answers: dict[int, bool] = {}

    def _condition(self) -> asyncio.Condition:
        if self._cv is None:
            self._cv = asyncio.Condition()
        return self._cv

    async def ask(self, trial: int, epoch: int, value: float) -> bool:
        """From the task: the report of ``trial``; returns True when the pruner stops it."""
        cv = self._condition()
        async with cv:
            self._asks[trial] = (epoch, value)
            cv.notify_all()
            await cv.wait_for(lambda: trial in self._answers)
            return self._answers.pop(trial)

    async def take(self, trial: int, timeout: float) -> tuple[int, float] | None:
        """From the driver: ``trial``'s pending report, waiting up to ``timeout`` seconds for one."""
        cv = self._condition()
        async with cv:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cv.wait_for(lambda: trial in self._asks), timeout)
            return self._asks.pop(trial, None)

    async def answer(self, trial: int, stop: bool) -> None:
        cv = self._condition()
        async with cv:
            self._answers[trial] = bool(stop)
            cv.notify_all()


def live_report(broker: Any, trial: int) -> Any:
    """Inside the task: ``ctx.report`` that asks the driver and raises ``optuna.TrialPruned`` when told to stop."""

    def report(epoch: int, value: float) -> None:
        import optuna
        import ray

        if ray.get(broker.ask.remote(trial, int(epoch), float(value))):
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report


def serve_reports(broker: Any, trial: int, ref: Any, ctx: Any, poll_s: float = 0.5) -> bool:
    """In the driver thread, until the task ``ref`` ends: answer its reports with the trial's real
    ``ctx.report``. Returns True when the pruner stopped the trial."""
    import optuna
    import ray

    pruned = False
    while not ray.wait([ref], timeout=0)[0]:
        pending = ray.get(broker.take.remote(trial, poll_s))
        if pending is None:
            continue
        stop = False
        try:
            ctx.report(*pending)
        except optuna.TrialPruned:
            stop = pruned = True
        broker.answer.remote(trial, stop)
    return pruned
