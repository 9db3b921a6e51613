"""The Ray executor (issue 16): a study's trials run as Ray tasks — measurements on the target devices,
training wherever the cluster has the resources — while the driver keeps the sampler and the storage.

``executor: ray`` in a study file (or ``hwtune run --ray auto|ADDRESS|local``) sets
``Study.executor`` to a :class:`RayExecutor`; ``Study.optimize`` hands it the study. Ray schedules;
hwtune writes no scheduler:

- the driver runs the loop's one-trial logic (``study._objective``) unchanged, one thread per trial in
  flight (Optuna's ``optimize(n_jobs=slots)``), each waiting on its trial's tasks
  (``study._ray_tasks``). Measurement and training of different trials overlap: while one trial trains,
  the next is measured;
- proposals come in batches of the free slots from the sampler's ``propose(study, q)``
  (``study._ray_batch``), so a batch never repeats itself nor a running trial;
- every result is written by the driver, into the study's Optuna storage (SQLite or PostgreSQL):
  ``hwtune show``, the report and the dashboard read it as any study. The tasks never write: a task Ray
  retries, or one lost halfway, cannot record a trial twice, and the budget (counted under the study's
  budget lock before each trial) stays exact;
- a task lost with its worker or node marks its trial ``interrupted`` and re-queues its params
  (``hwtune:retry_of``); a killed driver leaves RUNNING trials that the next ``hwtune run`` on this
  host, or the heartbeat elsewhere, recovers the same way.

Ray is an optional extra (``pip install 'hwtune[ray]'``), imported only here, when a study runs on it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["DEFAULT_DEVICE_RESOURCE", "RayExecutor", "executor_from_spec", "import_ray"]

DEFAULT_DEVICE_RESOURCE = "hwtune_device"
"""The Ray resource a measurement holds when the study file names none."""


def import_ray() -> Any:
    """``ray``, or a ``ConfigError`` naming ``executor`` and the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor", "the Ray executor needs Ray, which is not installed.", "pip install 'hwtune[ray]' (or pip install ray), or drop executor: ray / --ray.") from None
    return ray


@dataclass
class RayExecutor:
    """Where and how a study's trials run on Ray.

    Args:
        address: the cluster: ``"auto"`` (the one ``ray start`` began on this machine), ``"ray://host:10001"``
            or ``"host:6379"``, or ``"local"`` (start a Ray instance here, holding one unit of
            ``device_resource``, stopped at the end). ``None``: a Ray already initialised in this
            process (tests, notebooks), else ``"local"``.
        device_resource: the Ray custom resource that names the target device (``ray start
            --resources='{"pixel7": 1}'`` on the node wired to it); a measurement holds one unit.
        train_num_cpus, train_num_gpus: what a training task asks for.
        train_resources: further custom resources a training task asks for (``{"a100": 1}``).
        measure_num_cpus: CPUs a measurement task holds besides its device unit (0: the device is the
            resource; give 1 or more where the device is this node's CPU, so that no training shares it).
        max_in_flight: trials under way at once (default: the training slots of the cluster plus four per
            device unit: the device queue runs ahead of the trainers, so that they do not wait even when
            most measured networks are over budget; docs/benchmarks.md "Ray executor").
        local_cpus: CPUs of a ``"local"`` instance (default: Ray's, all of them).
    """

    address: str | None = None
    device_resource: str = DEFAULT_DEVICE_RESOURCE
    train_num_cpus: float = 1.0
    train_num_gpus: float = 0.0
    train_resources: dict[str, float] = field(default_factory=dict)
    measure_num_cpus: float = 0.0
    max_in_flight: int | None = None
    local_cpus: int | None = None
    last_run: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """What the last run did: slots, batch sizes, tasks submitted (for tests and benchmarks)."""

    def __post_init__(self) -> None:
        if not isinstance(self.device_resource, str) or not self.device_resource.strip():
            raise ConfigError("executor.device_resource", f"must name a Ray resource, got {self.device_resource!r}.", 'e.g. device_resource: pixel7 (ray start --resources=\'{"pixel7": 1}\' on its node).')
        for name in ("train_num_cpus", "train_num_gpus", "measure_num_cpus"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"executor.{name.replace('train_', 'train.').replace('measure_', 'measure.')}", f"must be a number >= 0, got {v!r}.")
        if self.train_num_cpus == 0 and self.train_num_gpus == 0 and not self.train_resources:
            raise ConfigError("executor.train", "a training task that asks for no resource would run without limit.", "give train: {num_cpus: 1} (or num_gpus).")
        if self.max_in_flight is not None and (isinstance(self.max_in_flight, bool) or not isinstance(self.max_in_flight, int) or self.max_in_flight < 1):
            raise ConfigError("executor.max_in_flight", f"must be a positive integer, got {self.max_in_flight!r}.")

    # -- the cluster --------------------------------------------------------------------------------
    def _connect(self, ray: Any) -> bool:
        """Join or start the cluster; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": None}
        if self.address in (None, "local"):
            ray.init(num_cpus=self.local_cpus, resources={self.device_resource: 1}, **kwargs)
        else:
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError("executor.address", f"cannot join the Ray cluster at {self.address!r} ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}).", "start it with `ray start --head` (its address is printed), or use --ray local.") from e
        return True

    def slots(self, ray: Any) -> tuple[int, int]:
        """``(trials in flight, device units)`` the cluster offers; ``ConfigError`` when the device or
        the training resources are not in the cluster (tasks would wait forever)."""
        res = ray.cluster_resources()
        devices = int(res.get(self.device_resource, 0))
        if devices < 1:
            raise ConfigError(
                "executor.device_resource",
                f"no node of the Ray cluster holds the resource {self.device_resource!r} (it has {', '.join(sorted(k for k in res if not k.startswith('node:'))) or 'none'}): measurements would wait forever.",
                f'start the node wired to the device with ray start --resources=\'{{"{self.device_resource}": 1}}\', or name its resource in executor.device_resource.',
            )
        limits = [res.get("CPU", 0) / self.train_num_cpus if self.train_num_cpus else math.inf,
                  res.get("GPU", 0) / self.train_num_gpus if self.train_num_gpus else math.inf]
        limits += [res.get(k, 0) / v for k, v in self.train_resources.items() if v > 0]
        trainers = min(limits)
        if not trainers >= 1:
            raise ConfigError(
                "executor.train",
                f"no node of the Ray cluster has the resources a training task asks for (num_cpus={self.train_num_cpus}, num_gpus={self.train_num_gpus}, {self.train_resources}).",
                "ask for what the cluster has, or add the nodes that have it.",
            )
        in_flight = self.max_in_flight or int(trainers) + 4 * devices
        return max(1, in_flight), devices

    # -- the run ------------------------------------------------------------------------------------
    def optimize(
        self,
        study: Any,
        build_model: Any,
        train_and_evaluate: Any,
        measure: Any,
        n_trials: int | None,
        n_trained: int | None,
        timeout: float | None,
        callbacks: Sequence[Callable[..., None]] = (),
    ) -> Any:
        """``Study.optimize`` on Ray (called by it): returns the study's summary."""
        ray = import_ray()
        import optuna

        from hwtune.study._ray_batch import BatchSampler, LockedCostModels
        from hwtune.study._ray_tasks import RayMeasure, RayTaskLost, RayTrain, _InFlight

        started = self._connect(ray)
        try:
            slots, devices = self.slots(ray)
            inflight = _InFlight()
            rmeasure = RayMeasure(measure, study, self.device_resource, self.measure_num_cpus, inflight)
            prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)  # its reports need answers while training
            rtrain = RayTrain(train_and_evaluate, self.train_num_cpus, self.train_num_gpus, self.train_resources, inflight, live_reports=prunes)
            study.calibrate(build_model, rmeasure)  # relative limits: measured on the device too
            lock = threading.RLock()  # the budget lock of the driver's threads; also guards the cost model
            samplers: list[BatchSampler] = []

            def budget_left() -> int | None:
                return None if n_trials is None else max(0, n_trials - study._reserved())

            def on_open(optuna_study: Any) -> None:
                if study._costs is not None:
                    study._costs = LockedCostModels(study._costs, lock)
                    use = getattr(optuna_study.sampler, "use_cost_models", None)
                    if callable(use):
                        use(study._costs)
                optuna_study.sampler = BatchSampler(optuna_study.sampler, slots, budget_left)
                samplers.append(optuna_study.sampler)

            errors: list[BaseException] = []
            done = threading.Event()  # not Thread.join: a join interrupted by Ctrl-C may return early afterwards (CPython < 3.13)

            def drive() -> None:
                try:
                    study._run(0, build_model, rtrain, rmeasure, n_trials, n_trained, timeout, callbacks,
                               reserve_lock=lock, n_jobs=slots, on_open=on_open, catch=(RayTaskLost,))
                except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                    errors.append(e)
                finally:
                    done.set()

            threading.Thread(target=drive, name="hwtune-ray-driver", daemon=True).start()
            try:  # the main thread waits here, where Ctrl-C (SIGINT) arrives
                while not done.wait(0.2):
                    pass
            except KeyboardInterrupt:  # Ctrl-C: no new trial; the running ones are cancelled and re-queued
                opt = study._optuna
                if opt is not None:
                    opt._stop_flag = True
                inflight.cancel_all()
                done.wait()
                raise
            if errors:
                raise errors[0]
            self.last_run = {
                "slots": slots, "devices": devices, "measure_tasks": rmeasure.tasks, "train_tasks": rtrain.tasks,
                "batch_sizes": [q for s in samplers for q in s.batch_sizes],
            }
        finally:
            if started:
                ray.shutdown()
        return study.summary()


_KEYS = {"kind", "address", "device_resource", "train", "measure", "max_in_flight", "local_cpus"}


def executor_from_spec(spec: Any, address: str | None = None) -> RayExecutor | None:
    """The executor of a study file's ``executor:`` (``local``, ``ray``, or a mapping with ``kind: ray``),
    with ``--ray ADDRESS`` (``address``) overriding its address; ``None`` for the local loop."""
    if spec is None or spec == "local":
        if address is None:
            return None
        spec = "ray"
    if spec == "ray":
        spec = {"kind": "ray"}
    if not isinstance(spec, Mapping):
        raise ConfigError("executor", f"unknown executor {spec!r}.", "use executor: local (default), executor: ray, or a mapping with kind: ray.")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(f"executor.{unknown[0]}", "unknown key.", f"use: {', '.join(sorted(_KEYS))}.")
    kind = spec.get("kind", "ray")
    if kind == "local" and address is None:
        return None
    if kind not in ("ray", "local"):
        raise ConfigError("executor.kind", f"unknown executor {kind!r}.", "use ray or local.")
    train, measure = spec.get("train") or {}, spec.get("measure") or {}
    for name, section, allowed in (("train", train, {"num_cpus", "num_gpus", "resources"}), ("measure", measure, {"num_cpus"})):
        if not isinstance(section, Mapping):
            raise ConfigError(f"executor.{name}", f"must be a mapping, got {section!r}.", f"e.g. {name}: {{num_cpus: 1}}.")
        bad = sorted(set(section) - allowed)
        if bad:
            raise ConfigError(f"executor.{name}.{bad[0]}", "unknown key.", f"use: {', '.join(sorted(allowed))}.")
    resources = train.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise ConfigError("executor.train.resources", f"must map resource names to amounts, got {resources!r}.")
    return RayExecutor(
        address=address if address is not None else spec.get("address"),
        device_resource=spec.get("device_resource", DEFAULT_DEVICE_RESOURCE),
        train_num_cpus=train.get("num_cpus", 1.0),
        train_num_gpus=train.get("num_gpus", 0.0),
        train_resources={str(k): float(v) for k, v in resources.items()},
        measure_num_cpus=measure.get("num_cpus", 0.0),
        max_in_flight=spec.get("max_in_flight"),
        local_cpus=spec.get("local_cpus"),
    )
