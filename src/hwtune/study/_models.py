"""The networks a study found, back in their framework: ``load_model``, the kept models, validation data.

``load_model(study, trial)`` reads the kept network back through the framework that its recorded
format belongs to (``study._framework.framework_for_kept_format``): PyTorch's rebuilds the network from
the trial's stored params (the study's ``build_model``; for a study made from a study file, its model
family from the stored definition) and loads the kept weights (``torch.load(..., weights_only=True)``:
tensors only, never a pickled object); Keras's loads the kept ``.keras`` file (``safe_mode=True``: no
code from the file runs) on whatever backend Keras runs on.
``kept_models`` lists every trial whose weights are kept, with its stored record (params, errors,
hardware measurements); ``validation_inputs`` / ``validation_labels`` give the study's validation data
with the split and scaling training used, for checking an export against the trained network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.study._keep import ModelRecord, _best_of, read_artifact
from hwtune.study._stored import stored_study
from hwtune.study._study import Study
from hwtune.vocabulary import StoredTrial, read_trial

__all__ = ["KeptModel", "as_study", "kept_models", "load_model", "load_model_for", "training_inputs", "validation_data", "validation_inputs", "validation_labels"]


@dataclass(frozen=True)
class KeptModel:
    """One trial whose trained weights are kept.

    Attributes:
        trial: the trial number.
        model: where its weights are (artifact id, file, size, sha256, format).
        stored: the stored trial (params, errors in ``metrics``, hardware measurements with unit,
            source and interval in ``hardware``, the device in ``user_attrs['hwtune:device']``).
    """

    trial: int
    model: ModelRecord
    stored: StoredTrial


def as_study(study: Any, storage: str | None = None) -> Study:
    """A :class:`Study` as given, or the stored study of that name (``None``: the only one) in ``storage``."""
    if isinstance(study, Study):
        return study
    if study is None or isinstance(study, str):
        return stored_study(study, storage)
    raise ConfigError("study", f"expected a hwtune Study or a study name, got {type(study).__name__}.", "pass the Study, or its name with storage='sqlite:///hwtune.db'.")


def _records(study: Study) -> dict[int, ModelRecord]:
    return study.model_keeper.summary(study).records


def kept_models(study: Study | str | None, *, storage: str | None = None) -> list[KeptModel]:
    """Every trial of ``study`` (a :class:`Study`, or the name of a stored one) whose weights are kept, by number."""
    st = as_study(study, storage)
    trials = st.optuna_study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    return [KeptModel(n, r, read_trial(by_number[n])) for n, r in sorted(_records(st).items()) if r.kept and n in by_number]


def _family_builder(study: Study) -> Any:
    """``build_model`` of a study made from a study file: its family, input shape and classes as stored."""
    from hwtune.study._config import FamilyBuilder

    desc = study.description or {}
    data = desc.get("data") if isinstance(desc.get("data"), dict) else {}
    family = desc.get("family")
    shape = data.get("input_shape") or study.input_shape
    classes = data.get("num_classes")
    if not isinstance(family, str) or not shape or classes is None:
        raise ConfigError(
            "build_model", f"study {study.name!r} was made through the Python API with its own build_model: hwtune cannot rebuild its networks.",
            "pass it: load_model_for(study, trial, build_model=your_build_model).",
        )
    return FamilyBuilder(family, tuple(int(s) for s in shape), int(classes), str(desc.get("framework", "torch")))  # study._framework


def _compressed_skeleton(study: Study, model: Any, params: dict[str, Any]) -> Any:
    """The rebuilt network with the channels its ``prune_ratio`` removed (the kept weights are the
    pruned network's; the widths depend on the ratio only)."""
    from hwtune.compress import compression_plan, shape_untrained

    plan = compression_plan(params)
    if plan is None or not plan.prunes_channels:
        return model
    import torch

    if study.input_shape is None:
        raise ConfigError("input_shape", "the network was pruned; rebuilding it needs the shape of one input sample.", "pass input_shape=(C, H, W) to the Study.")
    return shape_untrained(model, dataclasses.replace(plan, prune_alpha=0.0, sparsity=0.0), torch.zeros((1, *study.input_shape)))


def _no_model_fix(study: Study, records: dict[int, ModelRecord]) -> str:
    """What to do when no trial of ``study`` has a kept model: it depends on whether it kept any."""
    mode = study.model_keeper.mode
    if mode == "none":
        return "no trial of this study has a kept model: run it with keep_models: pareto, best or all (the built-in trainer hands its network over)."
    reasons = sorted({str(r.reason) for r in records.values() if not r.kept and r.reason})
    head = f"no trial of this study has a kept model, although it ran with keep_models: {mode}"
    if any("handed no model over" in r for r in reasons):
        return (f"{head}: its train_and_evaluate handed no network over. A train_and_evaluate of your own calls ctx.keep_model(model) "
                "after training; a Keras study run by an older hwtune on the tensorflow or jax backend kept none: run it again with this one.")
    if any("kept no models when this trial ran" in r for r in reasons):
        return f"{head} now: its trials ran before it kept models. Run more trials (resume the study)."
    return f"{head}: {'; '.join(reasons)[:300] or 'none was trained'}. Run more trials until one is kept."


def load_model_for(study: Study, trial_number: int, *, build_model: Any = None) -> Any:
    """The trained network of trial ``trial_number`` of ``study``, in inference mode, on the CPU: a
    PyTorch ``nn.Module`` (``eval()``), or a Keras model for a Keras study (on any backend).

    Args:
        study: the study (the one that ran, or :func:`~hwtune.study.stored_study`).
        trial_number: a trial whose weights are kept (see :func:`kept_models`).
        build_model: ``params -> untrained network``; default the one the study ran with, else its
            model family (a study made from a study file). A kept ``.keras`` file needs none: it holds
            the network.

    Raises:
        ConfigError: naming ``trial`` when that trial has no kept model (listing those that have),
            ``build_model`` when the network cannot be rebuilt, ``artifacts`` when the weights are gone.
    """
    if isinstance(trial_number, bool) or not isinstance(trial_number, (int, np.integer)):
        raise ConfigError("trial", f"expected a trial number, got {trial_number!r}.", "pass e.g. trial=3 (hwtune show lists the trials with a model).")
    n = int(trial_number)
    records = _records(study)
    with_model = sorted(k for k, r in records.items() if r.kept)
    rec = records.get(n)
    if rec is None or not rec.kept:
        trials = study.optuna_study.get_trials(deepcopy=False)
        why = rec.reason if rec is not None else ("there is no such trial" if n not in {t.number for t in trials} else f"it is {read_trial(next(t for t in trials if t.number == n)).status}, not trained")
        fix = f"use one of the trials with a model: {', '.join(map(str, with_model))}." if with_model else _no_model_fix(study, records)
        raise ConfigError("trial", f"trial {n} of study {study.name!r} has no kept model: {why}.", fix)
    from hwtune.study._framework import framework_for_kept_format

    framework = framework_for_kept_format(rec.format)  # who reads it back: the format says (not the runtime)

    def rebuild() -> Any:  # the untrained network of the trial's params, for a format of weights only
        builder = build_model or study._build_model or _family_builder(study)
        frozen = next(t for t in study.optuna_study.get_trials(deepcopy=False) if t.number == n)
        params = dict(read_trial(frozen).params)
        try:
            model = builder(params)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's build_model may raise anything
            raise ConfigError("build_model", f"cannot rebuild the network of trial {n} from its params: {type(e).__name__}: {str(e)[:300]}.", "pass the build_model the study ran with.") from None
        return _compressed_skeleton(study, model, params)

    if rec.path is not None:
        from optuna.artifacts import FileSystemArtifactStore

        store: Any = FileSystemArtifactStore(Path(rec.path).parent)
    else:
        store = study.model_keeper.store()
    return framework.load_kept(read_artifact(store, str(rec.artifact_id), rec.sha256), rebuild, n)


def load_model(study: Study | str | None, trial: int | None = None, *, storage: str | None = None) -> Any:
    """The trained network of a trial, loaded from its kept model: a PyTorch network rebuilt from its
    params with the kept weights (``eval()``, CPU), or the kept Keras model of a Keras study.

    Args:
        study: a :class:`Study`, or the name of a stored study (``None``: the only one in ``storage``).
        trial: the trial number; ``None``: the best feasible trained trial (with several objectives,
            the front's best on the first objective).
        storage: where a study given by name is stored (default ``sqlite:///hwtune.db``, as ``hwtune run``).

    Raises:
        ConfigError: naming ``trial`` when it has no kept model (the message lists the trials that
            have one), ``study`` / ``storage`` when the study or storage does not exist.
    """
    st = as_study(study, storage)
    if trial is None:
        best = _best_of(st, st.best_feasible())
        if best is None:
            with_model = [k.trial for k in kept_models(st)]
            raise ConfigError("trial", f"study {st.name!r} has no feasible trained trial yet.",
                              f"pass trial= one of {with_model}." if with_model else "run the study until a network fits its budget.")
        trial = best.number
    return load_model_for(st, trial)


# -- validation data ----------------------------------------------------------------------------------
def validation_data(study: Study | str | None, n: int | None = None, *, storage: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The study's validation split as training saw it: inputs (N, C, H, W) float32 and int64 labels (N,).

    The data set is loaded from the study file's data section stored with the study, with the study's
    seed (the same split and scaling as training). ``n``: the first ``n`` samples (``None``: all).

    Raises:
        ConfigError: naming ``study`` when the study was made through the API (hwtune does not know its data).
    """
    st = as_study(study, storage)
    data = _stored_dataset(st)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError("n", f"must be a positive number of samples, got {n!r}.")
    x = np.ascontiguousarray(data.x_val[:n], dtype=np.float32)
    y = np.ascontiguousarray(data.y_val[:n], dtype=np.int64)
    return x, y


def training_inputs(study: Study | str | None, *, storage: str | None = None) -> np.ndarray:
    """The study's training inputs (N, C, H, W) float32 as training saw them (int8 calibration)."""
    return np.ascontiguousarray(_stored_dataset(as_study(study, storage)).x_train, dtype=np.float32)


def _stored_dataset(st: Study) -> Any:
    """The data set of the study file's data section stored with the study, with the study's seed."""
    from hwtune.study._config import _DATA_CACHE, DataSpec
    from hwtune.train import load_dataset

    desc = st.description or {}
    src = desc.get("data_source")
    if not isinstance(src, dict):
        data_desc = desc.get("data") if isinstance(desc.get("data"), dict) else {}
        if data_desc.get("name") != "digits":  # a study file of before the data section was stored: only digits needs none
            raise ConfigError("study", f"study {st.name!r} does not say where its data is (made through the Python API, or by an older hwtune).",
                              "load your validation data yourself, with the split your train_and_evaluate used.")
        src = {"name": "digits", "path": None, "options": {}}
    spec = DataSpec(name=src["name"], path=src.get("path"), options=dict(src.get("options") or {}))
    key = (spec.model_dump_json(), st.seed)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(spec.name, spec.path, seed=st.seed, **spec.options)
    return _DATA_CACHE[key]


def validation_inputs(study: Study | str | None, n: int = 256, *, storage: str | None = None) -> np.ndarray:
    """The first ``n`` validation inputs of the study (N, C, H, W) float32, as training saw them."""
    return validation_data(study, n, storage=storage)[0]


def validation_labels(study: Study | str | None, n: int = 256, *, storage: str | None = None) -> np.ndarray:
    """The labels (N,) int64 of :func:`validation_inputs`."""
    return validation_data(study, n, storage=storage)[1]
