"""The two Ray tasks of a trial and the driver's stand-ins for ``measure`` and ``train_and_evaluate``.

The loop's one-trial logic (``study._objective.make_objective``) runs unchanged in the driver, one
thread per trial in flight; only its two expensive callables are replaced:

- :class:`RayMeasure` sends the network to a task that holds one unit of the device's Ray resource
  (``resources={device_resource: 1}``): one measurement per device unit at a time, on the node that
  declared the device, never elsewhere; an architecture already being measured for another trial is
  waited for, not measured twice;
- :class:`RayTrain` sends the untrained network and the training params to a task with the training
  resources (``num_cpus``, ``num_gpus``). What the trainer hands its context there (user attributes,
  the trained network to keep, epoch reports) comes back with the result and is replayed into the
  trial's real context by the driver, so the driver alone writes the storage; in a study with a pruner
  each epoch's report is answered live instead (``study._ray_reports``), so a pruned training stops
  at that epoch.

Tasks never touch the storage: a retried or lost task cannot record anything twice. A task lost with
its worker or node (``WorkerCrashedError``, ``NodeDiedError``...) raises :class:`RayTaskLost`, a
``KeyboardInterrupt`` for the loop: the objective abandons the trial (``interrupted``, FAIL, its params
re-queued with ``hwtune:retry_of``) as for Ctrl-C, and the executor catches it so the study goes on.
Measurement tasks are retried once by Ray (a measurement is idempotent); training tasks are not: a
lost training is re-queued through the study, under its budget lock, and shows in it.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from hwtune.study._objective import TrialContext

__all__ = ["RayMeasure", "RayTaskLost", "RayTrain", "TrainOutcome", "measure_body", "train_body"]

# calls the report broker serves at once: one awaiting ``ask`` per training in flight and one ``take``
# per trial thread (coroutines of an asyncio actor, not threads: study._ray_reports says why)
_BROKER_CONCURRENCY = 10_000


class RayTaskLost(KeyboardInterrupt):
    """A trial's Ray task was lost (its worker process or node died, or it was cancelled): the trial is
    abandoned and re-queued with the same params, as after a Ctrl-C, and the study goes on."""


# -- what runs inside the tasks (plain functions: Ray wraps them lazily) ---------------------------
def measure_body(meter: Any, model: Any, params: dict[str, Any]) -> Any:
    """Inside a device task: the study's meter on the network (a ``HardwareReport``)."""
    return meter(model, params)


@dataclass
class TrainOutcome:
    """What a training task returns to the driver (everything the trial's context received)."""

    metrics: dict[str, Any] | None
    reports: list[tuple[int, float]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    kept_model: Any = None
    error: BaseException | None = None
    remote_traceback: str = ""


@dataclass(frozen=True)
class TrainInfo:
    """The parts of the trial's :class:`TrialContext` that travel to the training task."""

    seed: int
    trial_number: int
    hardware: Any
    compression: Any
    broker: Any = None  # the ReportBroker actor when the study prunes (study._ray_reports): reports answered live


def _picklable(e: BaseException) -> BaseException:
    try:
        import pickle

        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - an exception that does not travel: its type and words do
        return RuntimeError(f"{type(e).__name__}: {e}")


def train_body(train: Any, model: Any, params: dict[str, Any], info: TrainInfo) -> TrainOutcome:
    """Inside a training task: ``train_and_evaluate`` with a context that collects what it is handed."""
    out = TrainOutcome(metrics=None)
    ctx = TrialContext(
        seed=info.seed, trial_number=info.trial_number, hardware=info.hardware, compression=info.compression,
        report=lambda epoch, value: out.reports.append((int(epoch), float(value))),
        set_user_attr=out.attrs.__setitem__,
    )
    if info.broker is not None:
        from hwtune.study._ray_reports import live_report

        ctx.report = live_report(info.broker, info.trial_number)
    try:
        out.metrics = dict(train(model, params, ctx))
    except Exception as e:  # noqa: BLE001 - optuna.TrialPruned included: each is replayed by the driver
        out.error = _picklable(e)
        out.remote_traceback = traceback.format_exc()[-4000:]
    out.kept_model = ctx.kept_model
    return out


# -- the driver's side -----------------------------------------------------------------------------
class _InFlight:
    """The object refs the driver waits on (cancelled together when the run is interrupted)."""

    def __init__(self) -> None:
        self._refs: set[Any] = set()
        self._lock = threading.Lock()
        self.cancelled = False

    def add(self, ref: Any) -> None:
        with self._lock:
            self._refs.add(ref)

    def discard(self, ref: Any) -> None:
        with self._lock:
            self._refs.discard(ref)

    def cancel_all(self) -> None:
        import ray

        with self._lock:
            self.cancelled = True
            refs = list(self._refs)
        for ref in refs:
            with contextlib.suppress(Exception):  # finished meanwhile
                ray.cancel(ref, force=True)


_LOST_ERRORS = (
    "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
    "ObjectReconstructionFailedError", "ObjectFetchTimedOutError", "TaskCancelledError", "RaySystemError",
    "TaskUnschedulableError", "RuntimeEnvSetupError",
)


def get_result(ref: Any, inflight: _InFlight, what: str) -> Any:
    """``ray.get(ref)``: the task's own exception as it was raised; a lost task as :class:`RayTaskLost`."""
    import ray
    import ray.exceptions as rx

    inflight.add(ref)
    try:
        return ray.get(ref)
    except rx.RayTaskError as e:  # the task's code raised: re-raise that exception (the trial's failure)
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise RuntimeError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    except rx.RayError as e:
        if type(e).__name__ in _LOST_ERRORS:  # the task, not the trial, failed: re-queued
            raise RayTaskLost(f"{what}: Ray {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}") from e
        raise  # e.g. OutOfMemoryError: the trial's own failure (re-running it would fail again)
    finally:
        inflight.discard(ref)


class RayMeasure:
    """``measure(model, params)`` as a task on one unit of the device's Ray resource."""

    def __init__(self, meter: Any, study: Any, device_resource: str, num_cpus: float, inflight: _InFlight, retries: int = 1) -> None:
        import ray

        self.meter = meter
        self.study = study
        self.device_resource = device_resource
        self._inflight = inflight
        self._meter_ref = ray.put(meter)
        self._remote = ray.remote(measure_body).options(
            resources={device_resource: 1}, num_cpus=num_cpus, max_retries=retries, name=f"hwtune measure on {device_resource}",
        )
        self._pending: dict[str, Any] = {}  # hardware key -> the ref of its measurement under way
        self._lock = threading.Lock()
        self.tasks = 0
        """Measurement tasks submitted (a shared one counts once)."""

    def __call__(self, model: Any, params: dict[str, Any]) -> Any:
        key = self.study.space.hardware_key(params) if self.study is not None else None
        with self._lock:
            ref = self._pending.get(key) if key is not None else None
            if ref is None:
                ref = self._remote.remote(self._meter_ref, model, params)
                self.tasks += 1
                if key is not None:
                    self._pending[key] = ref
        try:
            return get_result(ref, self._inflight, "measure")
        finally:
            with self._lock:
                if key is not None and self._pending.get(key) is ref:
                    del self._pending[key]  # a later measurement of it (decide_near_bounds) is a new one


class RayTrain:
    """``train_and_evaluate(model, params, ctx)`` as a task with the training resources; the context's
    reports, attributes and kept network are replayed into the trial's real context by the driver."""

    def __init__(self, train: Any, num_cpus: float, num_gpus: float, resources: dict[str, float], inflight: _InFlight, live_reports: bool = False) -> None:
        import ray

        self.train = train
        self._broker = None
        if live_reports:  # the study prunes: each epoch's report is answered by the driver while the task runs
            from hwtune.study._ray_reports import ReportBroker

            self._broker = ray.remote(ReportBroker).options(num_cpus=0, max_concurrency=_BROKER_CONCURRENCY, name=None).remote()
        self._inflight = inflight
        self._train_ref = ray.put(train)
        self._remote = ray.remote(train_body).options(
            num_cpus=num_cpus, num_gpus=num_gpus, resources=dict(resources) or None, max_retries=0, name="hwtune train",
        )
        self.tasks = 0

    def __call__(self, model: Any, params: dict[str, Any], ctx: TrialContext) -> Any:
        info = TrainInfo(seed=ctx.seed, trial_number=ctx.trial_number, hardware=ctx.hardware, compression=ctx.compression, broker=self._broker)
        ref = self._remote.remote(self._train_ref, model, params, info)
        self.tasks += 1
        if self._broker is not None:
            from hwtune.study._ray_reports import serve_reports

            self._inflight.add(ref)
            try:
                serve_reports(self._broker, ctx.trial_number, ref, ctx)
            finally:
                self._inflight.discard(ref)
        out: TrainOutcome = get_result(ref, self._inflight, "train")
        if ctx.set_user_attr is not None:
            for k, v in out.attrs.items():
                ctx.set_user_attr(k, v)
        for epoch, value in out.reports:  # the pruner sees every epoch (it may prune: raises TrialPruned)
            ctx.report(epoch, value)
        if out.kept_model is not None:
            ctx.keep_model(out.kept_model)
        if out.error is not None:
            if out.remote_traceback and not getattr(out.error, "__notes__", None):
                with contextlib.suppress(Exception):
                    out.error.add_note("in the Ray training task:\n" + out.remote_traceback)
            raise out.error
        return out.metrics
