"""The loop of one study: propose -> build -> measure -> (over budget: record, never train) -> train -> record.

The study is framework-agnostic: it takes three callables,

- ``build_model(params) -> model`` (untrained),
- ``measure(model, params) -> HardwareReport`` (default: :func:`hwtune.hardware.profile` on the
  study's device with a zero batch of the study's input shape),
- ``train_and_evaluate(model, params, context) -> {"error": ..., ...}``,

and keeps everything in an Optuna storage, one trial per proposal, so that Optuna's dashboard and CLI
read hwtune studies as they are and several worker processes can share one study.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hwtune.exceptions import ConfigError, TrialFailure
from hwtune.hardware import (
    DEFAULT_RUNTIME,
    PROFILE_METRICS,
    CPUDevice,
    HardwareReport,
    Measurement,
    parse_device,
)
from hwtune.search import StudyBudget, make_sampler
from hwtune.space import SearchSpace, parse_constraints, parse_objectives
from hwtune.space._metrics import METRICS
from hwtune.study._calibrate import (
    apply_stored_calibration,
    calibrate_limits,
    record_calibration,
)
from hwtune.study._closing import closing_agreement, closing_hardware
from hwtune.study._compression_check import compression_agreement
from hwtune.study._dashboard import name_objectives, with_dashboard_attrs
from hwtune.study._framework import framework_for_runtime
from hwtune.study._keep import ModelKeeper
from hwtune.study._measured_network import RemoteCompressedMeter
from hwtune.study._objective import (
    BuildModel,
    Measure,
    TrainAndEvaluate,
    TrialContext,
    make_objective,
)
from hwtune.study._pruner_priors import bind_pruner, read_pruner_priors
from hwtune.study._records import StudySummary, TrialRecord
from hwtune.study._reference_speed import (
    adopt_stored_reference,
    machine_speed,
    record_reference_speed,
    with_reference_speed,
)
from hwtune.study._storage import (
    abandon_own_running_trials,
    budget_lock,
    safe_url,
    fail_dead_local_trials,
    open_storage,
    retry_creation_race,
    storage_errors_as_config_errors,
)
from hwtune.study._validate import check_study_args, check_workers
from hwtune.study._workers import stop_workers, worker_main
from hwtune.vocabulary import (
    BUDGET_STATUSES,
    CONFIG_ATTR,
    HARDWARE_ATTR,
    HWKEY_ATTR,
    PARAMS_ATTR,
    trial_status,
)

__all__ = ["Study", "StudySummary", "TrialContext"]


ALWAYS_MEASURED = ("latency_ms", "throughput_sps", "params", "size_mb")
"""Measured for every trial whatever the constraints: one timing window and two counts."""

def _api_default_roles(space: Any) -> dict[str, str]:
    """Role of every param of an API space that names none: ``architecture`` (never silently training)."""
    return {str(n): "architecture" for n in space} if isinstance(space, Mapping) else {}


class _BudgetReached(Exception):
    """Raised instead of starting a trial the budget has no room for (ends the loop, never recorded)."""


@dataclass(frozen=True)
class _DefaultMeter:
    """``profile()`` with a zero batch of a fixed shape (a class, so worker processes can unpickle it)."""

    shape: tuple[int, ...]
    device: Any
    rel_ci: float
    max_time_s: float
    metrics: tuple[str, ...]
    reference_ms: float | None = None  # the study's stored reference speed (study._reference_speed)
    runtime: str = "torch"  # where the network runs: exported to it first (hardware.profile_in_runtime)

    def __call__(self, model: Any, params: dict[str, Any]) -> HardwareReport:
        kwargs = {"target_rel_ci": self.rel_ci, "max_time_s": self.max_time_s, "reference_ms": self.reference_ms}
        # the runtime's framework measures its own networks (study._framework: PyTorch, Keras)
        return framework_for_runtime(self.runtime).measure(model, params, self.shape, self.device, self.metrics, self.runtime, **kwargs)


class Study:
    """A hardware-constrained search, stored in an Optuna storage.

    Args:
        name: study name in the storage; an existing study of that name is resumed.
        space: the search space (a :class:`SearchSpace` or its dict form).
        objectives: ``"minimize: error"``, ``{"minimize": ["error", "latency_ms"]}``...
        constraints: texts such as ``"latency_ms <= 2"``; hardware ones are checked before training.
        storage: SQLAlchemy URL (``sqlite:///hwtune.db``, ``postgresql://...``); ``None`` = in memory.
        device: ``"cpu"`` or ``"cpu:<threads>"``, or a device object; where the default meter measures.
        input_shape: shape of one input sample (no batch dim), for the default meter.
        inference_batch_size: batch size of the latency measurement.
        sampler: ``"hwtune"`` (hardware-aware constrained BO, :class:`hwtune.search.HwSampler`),
            ``"tpe"``, ``"random"``, or an Optuna sampler instance.
        pruner: an Optuna pruner (``None``: never prune).
        seed: seeds the sampler and every trial's training.
        latency_rel_ci: the default meter times until the median's 95 % CI is within ± this share.
        latency_max_time_s: time cap of one latency measurement.
        description: free-form dict stored with the study (data set, model family...).
        cost_model: cost model predicting each hardware metric from the hardware-relevant params
            (a name of :data:`hwtune.costmodel.COST_MODELS`, ``"auto"``, or ``None`` for none). It is
            refitted as measurements arrive; its predictions are stored beside every measurement.
        skip_threshold: a proposal whose predicted probability of meeting every hardware constraint
            is below this is recorded ``predicted_over_budget``: neither measured nor trained.
            0 never skips.
        cost_model_file: JSON file of this device's earlier measurements (``DeviceCostModels.save``):
            loaded before the study if it exists, and written back with the new measurements.
        cost_features: ``params -> {feature: value}`` computed without training by the model family
            (parameter count, multiply-accumulates, the width feeding the dense layer...): the cost
            model's derived features. Must be picklable for several workers.
        keep_models: whose trained weights are kept as Optuna artifacts: ``"best"``, ``"pareto"``
            (the feasible front; the best one for a single objective), ``"all"`` trained trials, or
            ``"none"``. ``train_and_evaluate`` hands the trained network over with
            ``ctx.keep_model(model)`` (the built-in trainer does). See :mod:`hwtune.study._keep`.
        artifacts: where the weights go: a folder, or an Optuna artifact store object; default a
            folder beside a SQLite file (``hwtune.db.artifacts``), a temporary one for a study in
            memory. A server storage needs it unless ``keep_models="none"`` (checked when the study is opened).
        runtime: where the default meter runs each network: ``"onnxruntime"`` (default: what
            ``hwtune export`` ships), ``"torchscript"``, or ``"torch"`` (eager). The untrained network is
            exported to that runtime and measured there; sources say so (``measured:timer[onnxruntime]``).
        error_prior: prior knowledge of a configuration's error for ``sampler="hwtune"``
            (:class:`hwtune.search.HwSampler`'s ``error_prior``); study files of the ``nb201`` family
            pass the published NATS-Bench errors of the same cell (:func:`hwtune.tabular.nb201_error_prior`).
            Must be picklable for several workers.

    Bad arguments raise :class:`ConfigError` here, before anything is written.
    """

    def __init__(
        self,
        name: str,
        space: SearchSpace | Mapping[str, Any],
        *,
        objectives: Any = "minimize: error",
        constraints: Sequence[str] | str | None = None,
        storage: str | None = None,
        device: str | CPUDevice | None = "cpu",
        input_shape: Sequence[int] | None = None,
        inference_batch_size: int = 1,
        sampler: str | BaseSampler = "hwtune",
        pruner: optuna.pruners.BasePruner | None = None,
        seed: int = 0,
        latency_rel_ci: float = 0.05,
        latency_max_time_s: float = 3.0,
        description: Mapping[str, Any] | None = None,
        cost_model: str | None = "auto",
        skip_threshold: float = 0.001,
        cost_model_file: str | None = None,
        cost_features: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None,
        keep_models: str = "pareto",
        artifacts: Any = None,
        runtime: str = DEFAULT_RUNTIME,
        error_prior: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("name", "the study needs a non-empty name.")
        check_study_args(device=device, input_shape=input_shape, inference_batch_size=inference_batch_size, seed=seed, latency_rel_ci=latency_rel_ci, latency_max_time_s=latency_max_time_s, cost_model_file=cost_model_file, objectives=objectives, constraints=constraints)
        self.name = name
        # through the API a param with no role is architecture: measurements are shared only between
        # trials that differ in params explicitly marked training (study files take the family's roles)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space, default_roles=_api_default_roles(space))
        self.objectives = parse_objectives(objectives)
        self.constraints = parse_constraints(constraints)
        self.device = device if isinstance(device, CPUDevice) or hasattr(device, "describe") else parse_device(device)  # type: ignore[arg-type]
        self.input_shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
        if isinstance(inference_batch_size, bool) or not isinstance(inference_batch_size, int) or inference_batch_size < 1:
            raise ConfigError("inference_batch_size", f"must be a positive integer, got {inference_batch_size!r}.")
        self.inference_batch_size = inference_batch_size
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError("seed", f"must be an integer, got {seed!r}.")
        self.seed = seed
        self.sampler_spec = sampler
        make_sampler(sampler, seed)  # validates the name now
        self.error_prior = error_prior
        self.pruner = pruner or optuna.pruners.NopPruner()  # Optuna's own default would be MedianPruner
        if not (0 < latency_rel_ci < 1):
            raise ConfigError("latency_rel_ci", f"must be in (0, 1), got {latency_rel_ci!r}.")
        self.latency_rel_ci = latency_rel_ci
        self.latency_max_time_s = latency_max_time_s
        self.storage_url = storage
        self.description = dict(description or {})
        self._hardware_needed = sorted(
            {c.metric for c in self.constraints if c.is_hardware}
            | {o.metric for o in self.objectives if METRICS[o.metric].kind == "hardware"}
        )
        if cost_model is not None and cost_model != "auto":
            from hwtune.costmodel import COST_MODELS

            if cost_model not in COST_MODELS:
                raise ConfigError("cost_model", f"unknown cost model {cost_model!r}.", f"use auto, none or one of {', '.join(COST_MODELS)}.")
        if not (0.0 <= skip_threshold < 1.0):
            raise ConfigError("skip_threshold", f"must be in [0, 1), got {skip_threshold!r}.", "use a small probability such as 0.01 (0 never skips).")
        self.cost_model = cost_model
        self.skip_threshold = skip_threshold
        self.cost_model_file = cost_model_file
        self.cost_features = cost_features
        self.model_keeper = ModelKeeper(keep_models, artifacts, storage)
        self.runtime = framework_for_runtime(runtime).check_runtime(runtime, installed=False)  # installed: checked by default_measure()
        self._build_model: BuildModel | None = None  # remembered by optimize(), for load_model_for
        self._optuna: optuna.Study | None = None
        self._measure_cache: dict[str, tuple[int, HardwareReport]] = {}
        self._costs: Any = None  # DeviceCostModels, built when the study is opened
        self.calibration: Any = None  # how relative limits ('latency_ms <= q40') were resolved (study._calibrate)
        self._reference: dict[str, Any] | None = None  # the machine's speed, stored once (study._reference_speed)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_optuna"] = None  # storage connections do not cross processes
        state["_costs"] = None  # rebuilt from the storage when the worker opens the study
        return state

    # -- definition stored with the study --------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """The study's definition as stored in the storage; a resume must match it."""
        device_spec = self.device.to_spec() if hasattr(self.device, "to_spec") else str(self.device)
        return {
            "space": self.space.to_dict(),
            "objectives": [str(o) for o in self.objectives],
            "constraints": [c.text for c in self.constraints],  # as written: q40 stays q40 (its value: "calibration")
            "device": device_spec,
            "inference_batch_size": self.inference_batch_size,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "seed": self.seed,
            "description": self.description,
            "runtime": self.runtime,
            **self.model_keeper.definition(),  # not compared on resume
        }

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    # -- storage ---------------------------------------------------------------------------------
    def _sampler(self, worker: int = 0) -> BaseSampler:
        if isinstance(self.sampler_spec, str):
            # every factory takes the study's definition (the baselines ignore it); workers are seeded apart
            extra = {"error_prior": self.error_prior} if self.sampler_spec == "hwtune" and self.error_prior is not None else {}
            sampler = make_sampler(
                self.sampler_spec, self.seed + worker,
                space=self.space, objectives=self.objectives, constraints=self.constraints, **extra,
            )
        else:
            sampler = self.sampler_spec
        use = getattr(sampler, "use_cost_models", None)
        if callable(use):  # one cost model: the sampler screens with the model the loop skips with
            use(self._costs)
        return sampler

    def open(self, worker: int = 0) -> optuna.Study:
        """Create the study in the storage, or load it and check it is the same study.

        Storage faults raise :class:`ConfigError` naming ``storage`` (the real cause and the fix); two
        processes creating the same study at once both succeed (the race is retried).
        """
        with storage_errors_as_config_errors(self.storage_url):
            return retry_creation_race(lambda: self._open(worker))

    def _open(self, worker: int = 0) -> optuna.Study:
        if self.storage_url is None and self._optuna is not None:
            storage = self._optuna._storage  # in memory: reopening must not start an empty study
        else:
            storage = open_storage(self.storage_url)
        self.model_keeper.check()  # a server storage without artifacts: refused before the study is written
        apply_stored_calibration(self, storage)  # a stored relative limit wins: one absolute number per study
        adopt_stored_reference(self, storage)  # so does a stored reference speed
        definition = self.definition()
        self._costs = self._build_cost_models()
        try:
            existing = optuna.load_study(study_name=self.name, storage=storage, sampler=self._sampler(worker), pruner=self.pruner)
        except KeyError:
            existing = None
        if existing is not None:
            stored = existing.user_attrs.get(CONFIG_ATTR)
            if stored is not None:
                stored = {"runtime": "torch", **stored}  # studies made before runtimes were measured in eager PyTorch
                for key in ("space", "objectives", "constraints", "device", "inference_batch_size", "input_shape", "runtime"):
                    if json.dumps(stored.get(key), sort_keys=True) != json.dumps(definition[key], sort_keys=True):
                        raise ConfigError(
                            key,
                            f"study {self.name!r} in {self.storage_url} was created with a different {key} "
                            f"({stored.get(key)!r}); resuming it with {definition[key]!r} would mix incomparable trials.",
                            "use another study name, or the original definition.",
                        )
            self._optuna = existing
        else:
            self._optuna = optuna.create_study(
                study_name=self.name, storage=storage, sampler=self._sampler(worker), pruner=self.pruner,
                directions=self.directions, load_if_exists=True,
            )
            self._optuna.set_user_attr(CONFIG_ATTR, definition)
        fail_dead_local_trials(self._optuna)
        name_objectives(self._optuna, [o.metric for o in self.objectives])  # optuna-dashboard's axis titles
        self._load_measure_cache()
        if self._costs is not None:
            trials = self._optuna.get_trials(deepcopy=False)
            for number, report in self._measure_cache.values():
                self._costs.observe(trials[number].user_attrs.get(PARAMS_ATTR, {}), {k: m.to_dict() for k, m in report.measurements.items()})
        record_calibration(self, self._optuna)  # store it with the definition; its measurements feed the cost model
        record_reference_speed(self, self._optuna)
        return self._optuna

    @property
    def optuna_study(self) -> optuna.Study:
        """The underlying Optuna study (opened on first use)."""
        return self._optuna or self.open()

    def _load_measure_cache(self) -> None:
        assert self._optuna is not None
        for t in self._optuna.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            key, hw = t.user_attrs.get(HWKEY_ATTR), t.user_attrs.get(HARDWARE_ATTR)
            if key and hw and all(m in hw for m in self._hardware_needed) and key not in self._measure_cache:
                ms = {k: Measurement.from_dict(v) for k, v in hw.items()}
                self._measure_cache[key] = (t.number, HardwareReport(ms, {}))

    def _build_cost_models(self) -> Any:
        """The study's one cost model (``DeviceCostModels``: the loop's skip and the sampler's screen),
        with a saved file's measurements; the study's own are fed when it is opened."""
        if self.cost_model is None or not self._hardware_needed:
            return None
        from pathlib import Path

        from hwtune.costmodel import DeviceCostModels

        device = self.device.to_spec() if hasattr(self.device, "to_spec") else str(self.device)
        if self.cost_model_file and Path(self.cost_model_file).exists():
            costs = DeviceCostModels.load(self.cost_model_file, self.space, device=device, derived=self.cost_features)
            costs.skip_threshold = self.skip_threshold
            costs.constraints = [c for c in self.constraints if c.is_hardware]
        else:
            costs = DeviceCostModels(
                self.space, self._hardware_needed, self.cost_model, device=device, skip_threshold=self.skip_threshold,
                derived=self.cost_features, constraints=[c for c in self.constraints if c.is_hardware],
            )
        return costs

    def save_cost_models(self) -> None:
        """Write the device's measurements to ``cost_model_file`` (when one is set)."""
        if self._costs is not None and self.cost_model_file:
            self._costs.save(self.cost_model_file)

    # -- the default meter ------------------------------------------------------------------------
    def default_measure(self) -> Measure:
        """``profile()`` on the study's device with a zero batch of ``input_shape``."""
        missing = [m for m in self._hardware_needed if m not in PROFILE_METRICS]
        if missing:
            raise ConfigError(
                "constraints",
                f"the default meter on {self.device.to_spec()} cannot measure {missing}.",
                f"constrain one of {', '.join(PROFILE_METRICS)}, or pass measure=... that reports {missing}.",
            )
        if self.input_shape is None:
            raise ConfigError("input_shape", "the default meter needs the shape of one input sample.", "pass input_shape=(C, H, W).")
        framework_for_runtime(self.runtime).check_runtime(self.runtime, self.device)  # its package is installed (before anything is written)
        # what the study needs, plus what one timing window gives for free and what is cheap to count
        metrics = tuple(m for m in PROFILE_METRICS if m in {*self._hardware_needed, *ALWAYS_MEASURED})
        if getattr(self.device, "kind", None) == "remote":  # measured by an agent, trained here (hardware._remote)
            from hwtune.hardware import remote_meter

            return RemoteCompressedMeter(  # an int8 trial is sent as its int8 model
                remote_meter(self.device, (self.inference_batch_size, *self.input_shape), self.latency_rel_ci, self.latency_max_time_s, metrics, self.runtime))
        return _DefaultMeter((self.inference_batch_size, *self.input_shape), self.device, self.latency_rel_ci, self.latency_max_time_s, metrics, runtime=self.runtime)

    def calibrate(self, build_model: BuildModel, measure: Measure | None = None) -> Any:
        """Resolve relative limits (``latency_ms <= q40``) now: the stored ones, else measured on random
        architectures (``study._calibrate``). Returns the ``Calibration`` (``describe()``), or None without any."""
        self._read_pruner_priors()  # a wrong prior study fails before the calibration measures anything
        return calibrate_limits(self, build_model, with_reference_speed(self, measure or self.default_measure()))

    def _read_pruner_priors(self) -> None:
        """The curve pruner's ``prior_studies``, read before anything is measured or written."""
        read_pruner_priors(self.pruner, self.storage_url, self._optuna, self.name)

    # -- the loop --------------------------------------------------------------------------------
    def _objective(self, build_model: BuildModel, train_and_evaluate: TrainAndEvaluate, measure: Measure) -> Callable[[optuna.Trial], Any]:
        return with_dashboard_attrs(make_objective(self, build_model, train_and_evaluate, measure))  # numbers optuna-dashboard plots

    def counts(self) -> dict[str, int]:
        """Trials by hwtune status."""
        counts: dict[str, int] = {}
        for t in self.optuna_study.get_trials(deepcopy=False):
            s = trial_status(t)
            counts[s] = counts.get(s, 0) + 1
        return counts

    def _reserved(self) -> int:
        """Trials that count, or will count, toward ``n_trials``: finished ones and running ones."""
        return sum(v for k, v in self.counts().items() if k in BUDGET_STATUSES or k == "running")

    def _budget_reached(self, n_trials: int | None, n_trained: int | None) -> bool:
        c = self.counts()
        done = sum(v for k, v in c.items() if k in BUDGET_STATUSES)
        return (n_trials is not None and done >= n_trials) or (n_trained is not None and c.get("trained", 0) >= n_trained)

    def optimize(
        self,
        build_model: BuildModel,
        train_and_evaluate: TrainAndEvaluate,
        *,
        measure: Measure | None = None,
        n_trials: int | None = None,
        n_trained: int | None = None,
        timeout: float | None = None,
        callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
        n_workers: int = 1,
    ) -> StudySummary:
        """Run the loop until the study holds ``n_trials`` finished trials (all statuses but
        interrupted), or ``n_trained`` trained ones, or ``timeout`` seconds pass.

        Budgets count the whole study, so a resumed study only runs what is left. With
        ``n_workers > 1``, that many processes share the study through the storage (the callables
        must then be picklable, and the storage a file or server).
        """
        if n_trials is None and n_trained is None and timeout is None:
            raise ConfigError("budget", "no budget given: the study would never stop.", "give n_trials, n_trained or timeout.")
        for nm, v in (("n_trials", n_trials), ("n_trained", n_trained)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"budget.{nm}", f"must be a positive integer, got {v!r}.")
        if timeout is not None and not (timeout > 0):
            raise ConfigError("budget.timeout", f"must be a positive number of seconds, got {timeout!r}.")
        check_workers(self.storage_url, n_workers)  # before anything is measured or written
        self._read_pruner_priors()
        self._build_model = build_model
        own_meter = measure is None
        measure = with_reference_speed(self, measure or self.default_measure())  # latencies at the stored speed
        executor = getattr(self, "executor", None)  # issue 16: `executor: ray` (study._ray_executor) runs trials as Ray tasks
        if executor is not None:
            if n_workers > 1:
                raise ConfigError("workers", "an executor runs the study's trials in parallel itself.", "drop --workers (or n_workers), or the executor.")
            return executor.optimize(self, build_model, train_and_evaluate, measure, n_trials, n_trained, timeout, callbacks)
        self.calibrate(build_model, measure)  # relative limits -> absolute, before any trial (stored ones reused)
        if n_workers > 1:
            if self.storage_url is None:
                raise ConfigError("storage", "several workers need a shared storage.", "pass storage='sqlite:///file.db' or a server URL.")
            self.open()  # create it once, before the workers race to
            ctx = multiprocessing.get_context("spawn")
            lock = ctx.Lock()  # reserves the budget: one process at a time counts and starts a trial
            procs = [
                ctx.Process(
                    target=worker_main,
                    args=(self, i, build_model, train_and_evaluate, measure, n_trials, n_trained, timeout, lock, os.getpid()),
                )
                for i in range(1, n_workers)
            ]
            for p in procs:
                p.start()
            try:
                self._run(0, build_model, train_and_evaluate, measure, n_trials, n_trained, timeout, callbacks, reserve_lock=lock)
            except BaseException:
                stop_workers(procs)  # each abandons its trial (re-queued) and exits
                raise
            finally:
                for p in procs:
                    p.join()
        else:
            self._run(0, build_model, train_and_evaluate, measure, n_trials, n_trained, timeout, callbacks)
        if own_meter:  # a meter of the user's own is not called beyond the trials
            self.closing_retest(measure)
        return self.summary()

    def closing_retest(self, measure: Measure | None = None, build_model: BuildModel | None = None) -> list[int]:
        """Measure the kept networks and a few others once more, as :meth:`optimize` does when its
        budget is spent with the default meter (:mod:`hwtune.study._closing`): the pairs that tell
        how far a later re-measurement, e.g. of an export, may fall from the study's. ``build_model``:
        default the one :meth:`optimize` ran with. Returns the trials measured."""
        from hwtune.study._closing import measure_again

        build = build_model or self._build_model
        if build is None:
            raise ConfigError("build_model", "the closing retest rebuilds the networks it measures again.", "pass build_model=..., the one the study ran with.")
        return measure_again(self, with_reference_speed(self, measure or self.default_measure()), build)

    def _run(
        self,
        worker: int,
        build_model: BuildModel,
        train_and_evaluate: TrainAndEvaluate,
        measure: Measure,
        n_trials: int | None,
        n_trained: int | None,
        timeout: float | None,
        callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
        reserve_lock: Any = None,
        n_jobs: int = 1,
        on_open: Callable[[optuna.Study], None] | None = None,
        catch: tuple[type[BaseException], ...] = (),
    ) -> None:
        study = self.open(worker)
        if on_open is not None:  # an executor's hook (study._ray_executor: batch proposals, thread-safe cost model)
            on_open(study)
        self.model_keeper.tidy(self)  # weights left by a trial that never ended trained
        if self._budget_reached(n_trials, n_trained):
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        bind_pruner(self.pruner, study, StudyBudget(n_trials=n_trials, n_trained=n_trained, deadline=deadline), self.storage_url)

        def stop_when_done(st: optuna.Study, t: FrozenTrial) -> None:
            if self._budget_reached(n_trials, n_trained) or (deadline is not None and time.monotonic() >= deadline):
                st.stop()

        ask = study.ask

        def ask_within_budget(*args: Any, **kwargs: Any) -> optuna.Trial:
            # the budget is reserved before a trial starts (finished and running trials count), so
            # several workers never overshoot n_trials; the stop callback runs only after a trial
            with reserve_lock if reserve_lock is not None else contextlib.nullcontext(), budget_lock(self.storage_url):
                if n_trials is not None and self._reserved() >= n_trials:
                    raise _BudgetReached
                trial = ask(*args, **kwargs)
                # propose now, inside the lock: Optuna 5 samples lazily at the first suggest, where two
                # workers would propose at once without seeing each other's pending proposal
                _ = trial.relative_params
                return trial

        study.ask = ask_within_budget  # type: ignore[method-assign]  (Optuna's loop starts each trial with study.ask())
        try:
            with storage_errors_as_config_errors(self.storage_url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    self._objective(build_model, train_and_evaluate, measure),
                    timeout=timeout,
                    catch=(TrialFailure, *catch),  # type: ignore[arg-type]
                    callbacks=[stop_when_done, lambda st, t: self.model_keeper.tidy(self), *callbacks, *([measure.after_trial] if hasattr(measure, "after_trial") else [])],  # a remote meter stops a study its agent fails
                    gc_after_trial=False,
                    n_jobs=n_jobs,  # an executor's trials in flight, each waiting on its remote tasks
                )
        except _BudgetReached:
            pass
        except BaseException as e:
            # left by an interrupt (or a fault) outside a trial's own handler, e.g. while the sampler
            # proposed: a trial this process started must not stay RUNNING
            with contextlib.suppress(Exception):
                abandon_own_running_trials(study, f"interrupted: {type(e).__name__} between trials; queued to run again")
            raise
        finally:
            study.__dict__.pop("ask", None)
        self.save_cost_models()

    # -- results ---------------------------------------------------------------------------------
    def records(self) -> list[TrialRecord]:
        return [TrialRecord.from_frozen(t) for t in self.optuna_study.get_trials(deepcopy=False)]

    def best_feasible(self) -> list[TrialRecord]:
        """The best feasible trained trial (single objective) or the feasible Pareto set."""
        feasible = [r for r in self.records() if r.feasible and r.values is not None]
        if not feasible:
            return []
        sign = [1.0 if o.direction == "minimize" else -1.0 for o in self.objectives]
        keyed = [(tuple(s * v for s, v in zip(sign, r.values)), r) for r in feasible]  # type: ignore[arg-type]
        if len(self.objectives) == 1:
            return [min(keyed, key=lambda kr: (kr[0], kr[1].number))[1]]
        front = [r for k, r in keyed if not any(all(a <= b for a, b in zip(k2, k)) and k2 != k for k2, _ in keyed)]
        return sorted(front, key=lambda r: r.values)  # type: ignore[arg-type,return-value]

    def summary(self) -> StudySummary:
        recs = self.records()
        counts: dict[str, int] = {}
        for r in recs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return StudySummary(self.name, safe_url(self.storage_url) if self.storage_url else "in-memory", counts, self.best_feasible(), self.objectives, self.constraints, recs, self.space,
                            models=self.model_keeper.summary(self), machine_speed=machine_speed(recs, self._reference),
                            compression_check=compression_agreement(recs),
                            closing_check=closing_agreement(recs, closing_hardware(self.optuna_study.user_attrs)))
