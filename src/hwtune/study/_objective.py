"""One trial of the loop: propose -> build -> (reuse | predict, maybe skip | measure) -> over budget? -> train -> record.

Every failure is caught here, recorded on the trial (``hwtune:failure`` and a traceback) and raised as
:class:`TrialFailure`, which Optuna records as a failed trial; the study goes on. ``optuna.TrialPruned``
raised by user code records the trial ``pruned``. An interrupt (``KeyboardInterrupt``, ``SystemExit``)
abandons the trial (``interrupted``, FAIL, its params queued to run again) and propagates. A storage
fault propagates as it is (the study turns it into a ``ConfigError`` naming ``storage``): it is not the
trial's fault and is never recorded as one.
"""

from __future__ import annotations

import json
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optuna

from hwtune.compress._plan import CompressionPlan
from hwtune.exceptions import ConfigError, TrialFailure
from hwtune.hardware import HardwareReport, decide_near_bounds
from hwtune.space._metrics import METRICS
from hwtune.study._measured_network import measured_network
from hwtune.study._storage import abandon_trial, is_storage_error, worker_identity
from hwtune.study._validate import check_metrics
from hwtune.vocabulary import (
    CURVE_ATTR,
    DECISION_ATTR,
    DEVICE_ATTR,
    FAILURE_ATTR,
    FINAL_HARDWARE_ATTR,
    HARDWARE_ATTR,
    HWKEY_ATTR,
    METRICS_ATTR,
    PARAMS_ATTR,
    PREDICTED_ATTR,
    PRUNED_AT_ATTR,
    SEED_ATTR,
    STATUS_ATTR,
    TRACEBACK_ATTR,
    WORKER_ATTR,
    complete_quality,
)

__all__ = ["TrialContext", "make_objective", "BuildModel", "Measure", "TrainAndEvaluate"]

BuildModel = Callable[[dict[str, Any]], Any]
Measure = Callable[[Any, dict[str, Any]], HardwareReport]
TrainAndEvaluate = Callable[[Any, dict[str, Any], "TrialContext"], Mapping[str, float]]


@dataclass
class TrialContext:
    """What ``train_and_evaluate`` gets besides the model and params.

    Attributes:
        seed: training seed, derived from the study seed and the params (a retried trial gets the same).
        trial_number: Optuna's trial number.
        report: call ``report(epoch, validation_error)`` after each epoch; it raises
            ``optuna.TrialPruned`` when the study's pruner stops the trial.
        hardware: the measurements taken before training.
        set_user_attr: stores a JSON-serialisable value with the trial (e.g. the trainer's settings).
        kept_model: the trained network handed over with :meth:`keep_model` (``None``: none).
        compression: the trial's compression params (``None``: the space has none). The network
            handed to ``train_and_evaluate`` is the uncompressed one; a trainer compresses the trained
            network (``hwtune.compress.compress_trained``), returns the compressed network's errors
            and hands it to :meth:`keep_model`, which the loop then measures again.
    """

    seed: int
    trial_number: int
    report: Callable[[int, float], None]
    hardware: HardwareReport
    set_user_attr: Callable[[str, Any], None] | None = None
    kept_model: Any = field(default=None, repr=False)
    compression: CompressionPlan | None = None

    def keep_model(self, model: Any) -> None:
        """Hand the trained network over (a ``torch.nn.Module``, or a Keras model in a study of
        framework ``keras``), so that the study can keep it (``keep_models``) through its framework
        (``Framework.save_kept``, which checks the kind). The built-in trainer does this; a
        ``train_and_evaluate`` of your own calls it once training is done. A trial that hands none over
        records "no model kept"."""
        if model is None:
            raise TypeError("keep_model takes the trained network, got None")
        self.kept_model = model


def _stable_seed(seed: int, params: Mapping[str, Any]) -> int:
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return (zlib.crc32(text.encode()) ^ (seed * 2654435761)) & 0x7FFFFFFF


def _describe_exception(stage: str, e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{stage}: {type(e).__name__}: {msg}"[:500]


def _cheap_param_count(model: Any) -> int | None:
    """The network's parameter count when it can be had in microseconds (a PyTorch-like module), else None."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    try:
        return int(sum(int(p.numel()) for p in parameters()))
    except Exception:
        return None


def _stored_param_count(report: HardwareReport) -> int | None:
    m = report.measurements.get("params")
    if m is None or not getattr(m, "available", True) or m.value is None:
        return None
    try:
        return int(m.value)
    except (TypeError, ValueError):
        return None


def _check_reuse(study: Any, key: str, src_trial: int, report: HardwareReport, model: Any, params: Mapping[str, Any]) -> None:
    """Refuse to reuse trial ``src_trial``'s measurement for a network that is not the same: equal
    hardware keys but a different parameter count means a param that shapes the network is marked
    ``training`` (it is left out of the key)."""
    new = _cheap_param_count(model)
    if new is None:
        return
    old = _stored_param_count(report)
    if old is None:
        old = getattr(study, "_measure_counts", {}).get(key)
    if old is None or old == new:
        return
    try:
        trials = study.optuna_study.get_trials(deepcopy=False)
        old_params = trials[src_trial].user_attrs.get(PARAMS_ATTR, {}) if src_trial < len(trials) else {}
    except Exception:
        old_params = {}
    training = [n for n in study.space if study.space[n].role == "training"]
    suspects = [n for n in training if n in params and old_params.get(n) != params.get(n)] or training
    names = ", ".join(repr(n) for n in suspects) or "a training param"
    raise ConfigError(
        f"space.{suspects[0]}.role" if suspects else "space",
        f"trial {src_trial} and this trial have the same hardware-relevant params ({key}) but networks of "
        f"{old:,} and {new:,} parameters: {names} changes the network yet is marked role: training, so one "
        "network's measurement would be reused for another.",
        f"give {names} role: architecture (or compression) in the space.",
    )


def _timed(hw: Mapping[str, Any]) -> bool:
    """Whether a trial's stored hardware holds a measured (timed or metered) value, not only counts."""
    return any(str((d or {}).get("source", "")).startswith("measured") for d in hw.values() if isinstance(d, Mapping))


def _measure_final(trial: optuna.Trial, measure: Measure, final_model: Any, params: dict[str, Any]) -> None:
    """Measure the trained network again and store it (``hwtune:final_hardware``): a compressed network
    (did measuring the untrained one tell the truth?) and every network whose weights are kept (a retest
    of its cost minutes after the first measurement: :mod:`hwtune.study._retest` turns the study's
    pairs into the interval a later re-measurement, e.g. of the export, falls in). A failure here is
    stored as the reason; it does not undo a trained result."""
    try:
        final = measure(final_model, params)
        trial.set_user_attr(FINAL_HARDWARE_ATTR, {k: m.to_dict() for k, m in final.measurements.items()})
    except Exception as e:
        if is_storage_error(e):
            raise
        trial.set_user_attr(FINAL_HARDWARE_ATTR, {"unavailable": _describe_exception("measure final", e)})


def make_objective(study: Any, build_model: BuildModel, train_and_evaluate: TrainAndEvaluate, measure: Measure) -> Callable[[optuna.Trial], Any]:
    """Optuna's objective of one trial of ``study`` (a :class:`~hwtune.study.Study`): the loop of the module docstring."""
    hw_constraints = [c for c in study.constraints if c.is_hardware]

    def run(trial: optuna.Trial) -> Any:
        stage = ["propose"]  # where the trial is, for an interrupt's message
        try:
            return _run(trial, stage)
        except optuna.TrialPruned:
            if trial.user_attrs.get(STATUS_ATTR) == "running":  # raised by user code, not by the loop
                trial.set_user_attr(STATUS_ATTR, "pruned")
            raise
        except BaseException as e:
            if isinstance(e, Exception):
                raise
            # KeyboardInterrupt, SystemExit...: abandon the trial (re-queued), then let it propagate.
            # Optuna itself FAILs a trial on KeyboardInterrupt (telling a finished one would raise), not on SystemExit.
            reason = f"interrupted: {type(e).__name__} during {stage[0]}; queued to run again"
            try:
                abandon_trial(trial.study, trial._trial_id, reason, set_fail=not isinstance(e, KeyboardInterrupt))
            except Exception:  # the storage is gone too: the next open recovers the trial
                pass
            raise

    def _run(trial: optuna.Trial, stage: list[str]) -> Any:
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        trial.set_user_attr(STATUS_ATTR, "running")
        params = study.space.suggest(trial)
        trial.set_user_attr(PARAMS_ATTR, params)
        key = study.space.hardware_key(params)
        trial.set_user_attr(HWKEY_ATTR, key)

        def fail(stage: str, e: BaseException) -> TrialFailure:
            if is_storage_error(e):  # the storage failed, not the trial: propagate it as it is
                raise e
            trial.set_user_attr(STATUS_ATTR, "failed")
            trial.set_user_attr(FAILURE_ATTR, _describe_exception(stage, e))
            trial.set_user_attr(TRACEBACK_ATTR, traceback.format_exc()[-4000:])
            return TrialFailure(_describe_exception(stage, e))

        # build the untrained network
        stage[0] = "build"
        try:
            model = build_model(params)
        except optuna.TrialPruned:
            raise
        except Exception as e:
            raise fail("build", e) from e

        # the cost-changing compressions, applied to the untrained network: measured as it will run
        stage[0] = "compress"
        try:
            measured_model, plan = measured_network(study, model, params)
        except Exception as e:
            raise fail("compress", e) from e

        # measure it on the device (or reuse the measurement of the same architecture)
        stage[0] = "measure"
        cached = study._measure_cache.get(key)
        costs = study._costs
        if cached is None and costs is not None:
            try:
                predicted = costs.predictions(params, study._hardware_needed)
                skip = bool(hw_constraints) and costs.should_skip(params, hw_constraints)
            except Exception as e:
                raise fail("predict", e) from e
            if predicted:
                trial.set_user_attr(PREDICTED_ATTR, predicted)
            if skip:
                for c in hw_constraints:
                    if c.metric in predicted:
                        trial.set_constraint(str(c), c.violation(predicted[c.metric]["value"]))
                trial.set_user_attr(STATUS_ATTR, "predicted_over_budget")
                p_ok = float(costs.prob_feasible([params], hw_constraints)[0])
                raise optuna.TrialPruned(f"predicted over budget (P(within budget) = {p_ok:.3g}); not measured, not trained")
        try:
            if cached is not None:
                src_trial, report = cached
                _check_reuse(study, key, src_trial, report, measured_model, params)
                hw = {k: {**m.to_dict(), "extra": {**m.extra, "reused_from_trial": src_trial}} for k, m in report.measurements.items()}
            else:
                report = measure(measured_model, params)
                if hw_constraints:  # an interval straddling a bound: measured again (bounded) before deciding
                    report, decisions = decide_near_bounds(report, lambda: measure(measured_model, params), hw_constraints, max_rounds=3)
                    if decisions:
                        trial.set_user_attr(DECISION_ATTR, decisions)
                hw = {k: m.to_dict() for k, m in report.measurements.items()}
                trial.set_user_attr(DEVICE_ATTR, report.device)
            trial.set_user_attr(HARDWARE_ATTR, hw)
            values = report.values()
            for c in hw_constraints:
                if c.metric not in values:
                    raise TrialFailure(f"the meter reported no {c.metric} (constraint '{c}'): {report.measurements.get(c.metric)}")
            if cached is None and all(m in values for m in study._hardware_needed):
                study._measure_cache[key] = (trial.number, report)
                count = _cheap_param_count(measured_model)
                if count is not None and _stored_param_count(report) is None:  # the meter counted none
                    study.__dict__.setdefault("_measure_counts", {})[key] = count
                if costs is not None:
                    costs.observe(params, hw)
        except optuna.TrialPruned:
            raise
        except Exception as e:
            raise fail("measure", e) from e

        hw_violations = [c.violation(values[c.metric]) for c in hw_constraints]
        if any(v > 0 for v in hw_violations):
            for c, v in zip(hw_constraints, hw_violations):
                trial.set_constraint(str(c), v)
            trial.set_user_attr(STATUS_ATTR, "over_budget")
            raise optuna.TrialPruned(
                "over budget before training: " + ", ".join(str(c) for c, v in zip(hw_constraints, hw_violations) if v > 0)
            )

        # train and evaluate
        stage[0] = "train"
        seed = _stable_seed(study.seed, params)
        trial.set_user_attr(SEED_ATTR, seed)
        first = study.objectives[0]

        hw_objectives = [o.metric for o in study.objectives if METRICS[o.metric].kind == "hardware"]
        cost_metrics = [m for m in (hw_objectives or study._hardware_needed or ["latency_ms"]) if m in values]

        def report_epoch(epoch: int, value: float) -> None:
            """``value`` is the validation error after ``epoch``."""
            stop = False
            if hasattr(study.pruner, "should_prune_at"):  # cost-aware pruner: prunes Pareto studies too
                if cost_metrics:  # compares errors among trials of comparable measured cost
                    stop = study.pruner.should_prune_at(trial, epoch, float(value), [values[m] for m in cost_metrics])
            elif len(study.objectives) == 1 and first.metric in ("error", "accuracy"):
                # Optuna's pruners: the curve is also kept in errors (hwtune:curve; the sampler's curve model reads it)
                trial.set_user_attr(CURVE_ATTR, {**(trial.user_attrs.get(CURVE_ATTR) or {}), str(epoch): float(value)})
                trial.report(float(value) if first.metric == "error" else 1.0 - float(value), epoch)
                stop = trial.should_prune()
            if stop:
                trial.set_user_attr(STATUS_ATTR, "pruned")
                for c, v in zip(hw_constraints, hw_violations):
                    trial.set_constraint(str(c), v)
                trial.set_user_attr(PRUNED_AT_ATTR, epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        ctx = TrialContext(
            seed=seed, trial_number=trial.number, report=report_epoch, hardware=report, set_user_attr=trial.set_user_attr,
            compression=plan if plan is not None and plan.active else None,
        )
        try:
            metrics = dict(train_and_evaluate(model, params, ctx))
        except optuna.TrialPruned:
            if trial.user_attrs.get(STATUS_ATTR) == "running":  # user code pruned it: recorded and counted as pruned
                trial.set_user_attr(STATUS_ATTR, "pruned")
                for c, v in zip(hw_constraints, hw_violations):
                    trial.set_constraint(str(c), v)
            raise
        except Exception as e:
            raise fail("train", e) from e
        stage[0] = "evaluate"
        try:
            metrics = check_metrics(metrics)  # NumPy / tensor scalars -> float; error, accuracy in [0, 1]
            metrics = complete_quality(metrics)
            all_values = {**values, **metrics}
            missing = [o.metric for o in study.objectives if o.metric not in all_values] + [
                c.metric for c in study.constraints if c.metric not in all_values
            ]
            if missing:
                raise TrialFailure(f"train_and_evaluate returned no {sorted(set(missing))}; it returned {sorted(metrics)}")
        except TrialFailure as e:
            raise fail("evaluate", e) from e
        trial.set_user_attr(METRICS_ATTR, metrics)
        violations = [c.violation(all_values[c.metric]) for c in study.constraints]
        out = [float(all_values[o.metric]) for o in study.objectives]
        keeper = getattr(study, "model_keeper", None)
        compressed = plan is not None and plan.active
        why_not_kept: str | None = "no keeper"
        if keeper is not None:  # whether the mode keeps it: asked once, before measuring it again
            stage[0] = "keep"
            try:
                why_not_kept = keeper.why_not(study, ctx.kept_model, tuple(out), all(v <= 0 for v in violations))
            except Exception as e:
                raise fail("keep", e) from e
        if ctx.kept_model is not None and (compressed or (why_not_kept is None and _timed(hw))):  # measured again after training
            stage[0] = "measure final"
            _measure_final(trial, measure, ctx.kept_model, params)
        for c, v in zip(study.constraints, violations):
            trial.set_constraint(str(c), v)
        if keeper is not None:  # the weights are stored before the trial is recorded trained
            stage[0] = "keep"
            try:
                keeper.keep(study, trial, ctx.kept_model, why_not_kept)
            except Exception as e:
                raise fail("keep", e) from e
        trial.set_user_attr(STATUS_ATTR, "trained")
        return out[0] if len(out) == 1 else tuple(out)

    return run
