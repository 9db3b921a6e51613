"""Export a study's trained networks: model files, verification, re-measurement, ``manifest.json``.

For every chosen trial, :func:`export`

1. loads the trained network (:func:`hwtune.study.load_model`: the kept weights),
2. writes it as ONNX (dynamic batch) or TorchScript (:mod:`hwtune.hardware._convert`),
3. **verifies** the file: its outputs in ONNX Runtime / TorchScript against the PyTorch network's on
   real validation inputs (max absolute difference, argmax agreement, and both errors on those inputs),
4. **re-measures** the file's latency with :func:`hwtune.hardware.profile` on the study's device at the
   study's inference batch size (at the study's reference speed when its latencies are), stored beside
   the study's own measurement, with whether it lies inside the study's interval,

and writes ``DIR/manifest.json`` (:mod:`hwtune.deploy._manifest`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwtune.deploy._int8 import export_int8, is_int8_trial, verify_int8
from hwtune.deploy._manifest import (
    FORMAT_VERSION,
    created_now,
    measurement_entry,
    quality_entry,
    versions,
    write_manifest,
)
from hwtune.exceptions import ConfigError
from hwtune.vocabulary import CONFIG_ATTR, DEVICE_ATTR, read_trial

if TYPE_CHECKING:
    import numpy as np

    from hwtune.hardware import Measurement
    from hwtune.study import Study

__all__ = ["FORMATS", "compare_latency", "export", "export_file", "remeasure_latency", "select_trials", "verify_export"]

FORMATS = ("onnx", "torchscript", "keras", "tflite", "tflite-int8")
RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "torchscript": "torchscript", "keras": "keras", "tflite": "tflite", "tflite-int8": "tflite-int8"}
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "keras": ".keras", "tflite": ".tflite", "tflite-int8": "_int8.tflite"}
_KERAS_FORMATS = ("keras", "tflite", "tflite-int8")  # a Keras study's (its adapter writes them: hwtune.keras)
TOLERANCE = 1e-4
"""Largest absolute output difference (relative to the outputs' scale, at least 1) a verified export may show."""


def _check_format(fmt: Any) -> str:
    if fmt not in FORMATS:
        raise ConfigError("format", f"unknown export format {fmt!r}.", f"use one of {', '.join(FORMATS)}.")
    return str(fmt)


def export_file(model: Any, example_input: Any, folder: str | Path, trial: int, fmt: str, *, exporter: str = "auto") -> Path:
    """Write ``model`` to ``folder/trial_<trial>.onnx`` (dynamic batch) or ``.pt`` (traced TorchScript)."""
    from hwtune.hardware import export_onnx, export_torchscript

    path = Path(folder) / f"trial_{trial}{_SUFFIX[_check_format(fmt)]}"
    if fmt == "onnx":
        return export_onnx(model, example_input, path, dynamic_batch=True, exporter=exporter)
    return export_torchscript(model, example_input, path)


def _run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    import numpy as np

    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return ts(torch.from_numpy(x)).numpy()


def verify_export(model: Any, path: str | Path, fmt: str, inputs: Any, labels: Any = None, *, inputs_name: str = "validation") -> dict[str, Any]:
    """Outputs of the exported file against the PyTorch network on ``inputs`` (N, ...) float32.

    Returns:
        ``{max_abs_diff, argmax_agreement, n_inputs, inputs, tolerance, passed}``, and with ``labels``
        ``error_pytorch`` / ``error_exported``: the share of those inputs each one gets wrong.
        ``argmax_agreement`` is ``None`` for outputs with one value per sample.
    """
    import numpy as np
    import torch

    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError("inputs", f"verification needs a batch of inputs (N, ...), got shape {x.shape}.", "pass at least one validation sample.")
    was = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).detach().cpu().numpy()
    finally:
        model.train(was)
    got = _run_exported(Path(path), _check_format(fmt), x)
    return _agreement(ref, got, x, labels, inputs_name)


def verify_saved(framework: Any, model: Any, path: str | Path, inputs: Any, labels: Any = None, *, inputs_name: str = "validation") -> dict[str, Any]:
    """:func:`verify_export` for a network saved by its framework (``study._framework``: a ``.keras``
    file): the file loaded back against the trained network, on the same inputs."""
    import numpy as np

    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
    ref = np.asarray(framework.predict(model, x))
    got = np.asarray(framework.predict(framework.load(path), x))
    return _agreement(ref, got, x, labels, inputs_name)


def _agreement(ref: Any, got: Any, x: Any, labels: Any, inputs_name: str) -> dict[str, Any]:
    import numpy as np

    if got.shape != ref.shape:
        return {"max_abs_diff": None, "argmax_agreement": None, "n_inputs": len(x), "inputs": inputs_name, "passed": False,
                "note": f"the exported model's output has shape {list(got.shape)}, PyTorch's {list(ref.shape)}"}
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    tol = TOLERANCE * max(1.0, float(np.abs(ref).max()))
    out: dict[str, Any] = {
        "max_abs_diff": diff,
        "argmax_agreement": float(np.mean(got.argmax(-1) == ref.argmax(-1))) if ref.ndim >= 2 and ref.shape[-1] > 1 else None,
        "n_inputs": len(x),
        "inputs": inputs_name,
        "tolerance": tol,
        "passed": bool(diff <= tol),
    }
    if labels is not None and ref.ndim >= 2:
        y = np.asarray(labels).reshape(-1)[: len(x)]
        out["error_pytorch"] = float(np.mean(ref.argmax(-1) != y))
        out["error_exported"] = float(np.mean(got.argmax(-1) != y))
    return out


def remeasure_latency(
    path: str | Path, input_shape: Sequence[int], device: Any, batch_size: int, *,
    rel_ci: float = 0.05, max_time_s: float = 3.0, reference_ms: float | None = None,
) -> tuple[Measurement, dict[str, Any]]:
    """The exported file's latency per batch of ``batch_size`` with :func:`profile` on ``device``,
    labelled with its runtime (``measured:timer[onnxruntime]``). ``reference_ms``: at that reference
    speed, as the study measured (the wall clock's value in ``extra``). Returns (measurement, device description)."""
    import torch

    from hwtune.hardware import label_runtime, load_model, profile, runtime_of_file

    if getattr(device, "kind", None) == "remote":  # measured where the study measured: through its agent
        from hwtune.hardware import remote_meter

        if Path(path).suffix != ".onnx":
            raise ConfigError("format", "a remote device's agent measures ONNX files; this study's exports cannot be re-measured as TorchScript.", "export with --format onnx, or skip the re-measurement (remeasure=False).")
        rep = remote_meter(device, (batch_size, *input_shape), rel_ci, max_time_s, ("latency_ms",), "onnxruntime").measure_file(path)
        return rep["latency_ms"], rep.device
    kwargs: dict[str, Any] = {"target_rel_ci": rel_ci, "max_time_s": max_time_s}
    if reference_ms is not None:
        kwargs["reference_ms"] = reference_ms
    if Path(path).suffix == ".tflite":  # in the TFLite interpreter, timed by profile (hwtune.keras._tflite)
        from hwtune.study._framework import get_framework

        rep = get_framework("keras").measure_file(path, (batch_size, *input_shape), device, **kwargs)  # type: ignore[attr-defined]
        return rep["latency_ms"], rep.device
    if Path(path).suffix == ".keras":  # measured by its framework, as the study measured it
        from hwtune.study._framework import get_framework

        fw = get_framework("keras")
        rep = fw.measure(fw.load(path), {}, (batch_size, *input_shape), device, ("latency_ms",), "keras", **kwargs)
        return rep["latency_ms"], rep.device
    report = profile(load_model(path), torch.zeros((batch_size, *input_shape)), device, ["latency_ms"], **kwargs)
    report = label_runtime(report, runtime_of_file(path))
    return report["latency_ms"], report.device


def compare_latency(exported: Measurement, study: Measurement | None, study_runtime: str, runtime: str, retest: Any = None) -> dict[str, Any]:
    """The exported latency's entry: its value and interval (``note``: the measurement's own), the
    study's beside it, whether it lies inside the study's interval (``None`` when the study has none),
    and ``comparison``: a sentence when it lies outside, or when the study measured in another runtime.

    ``retest``: the study's :class:`~hwtune.study._retest.RetestInterval` for this trial (where a later
    measurement falls, from the study's before/after-training pairs), recorded as ``study_retest`` with
    ``within_study_retest_interval``; the study's interval of the median at measuring time stays ``study_ci``."""
    d = measurement_entry(exported)
    d.setdefault("batch_size", (exported.extra or {}).get("batch_size"))
    for k in ("wall_ms", "at_reference_ms"):
        if k in (exported.extra or {}):
            d[k] = exported.extra[k]
    notes: list[str] = []
    if study is None or not study.available:
        d.update(study_value=None, within_study_interval=None)
        notes.append("the study has no latency measurement of this trial to compare with")
    else:
        d["study_value"] = study.value
        d["study_ci"] = [study.ci_low, study.ci_high]
        d["study_source"] = study.source
        if study.ci_low is None or study.ci_high is None or exported.value is None:
            d["within_study_interval"] = None
            notes.append("the study's latency has no interval")
        else:
            inside = bool(study.ci_low <= exported.value <= study.ci_high)
            d["within_study_interval"] = inside
            if exported.ci_low is not None and exported.ci_high is not None:
                # two honest measurements of one latency: their intervals overlap far more often than a
                # second value falls in the first's interval (about 83 % of the time for equal precision)
                d["intervals_overlap"] = bool(exported.ci_low <= study.ci_high and study.ci_low <= exported.ci_high)
            d["ratio_to_study"] = round(exported.value / study.value, 4) if study.value else None
            if not inside:
                notes.append(
                    f"the exported model's latency {exported.value:.4g} ms lies outside the study's interval "
                    f"[{study.ci_low:.4g}, {study.ci_high:.4g}] ms ({exported.value / study.value:.2f}x the study's {study.value:.4g} ms)"
                )
    if retest is not None and exported.value is not None:
        d["study_retest"] = retest.to_dict()
        d["within_study_retest_interval"] = bool(retest.contains(float(exported.value)))
        if not d["within_study_retest_interval"]:
            notes.append(f"it lies outside the study's retest interval [{retest.low:.4g}, {retest.high:.4g}] ms too")
    if study_runtime != runtime:
        notes.append(
            f"the study measured in {study_runtime}{' (eager PyTorch)' if study_runtime == 'torch' else ''}, this file runs in {runtime}: "
            "the two latencies differ by design (set the study's runtime to the one you ship)"
        )
    d["comparison"] = "; ".join(notes) or None
    return d


def _signed(st: Study, values: Sequence[float]) -> tuple[float, ...]:
    return tuple(v if o.direction == "minimize" else -v for o, v in zip(st.objectives, values))


def select_trials(st: Study, trials: Any) -> tuple[list[int], set[int]]:
    """(trial numbers to export, the numbers of the study's best feasible / Pareto set).

    ``trials``: ``"best"`` (the best feasible trained trial; with several objectives, the front's best
    on the first), ``"pareto"`` (the feasible front), a trial number, or a list of them.
    """
    front = st.best_feasible()
    front_numbers = {r.number for r in front}
    if trials in ("best", "pareto"):
        if not front:
            raise ConfigError("trials", f"study {st.name!r} has no feasible trained trial yet.", "run the study until a network fits its budget, or name a trial (--trial N).")
        if trials == "best":
            return [min(front, key=lambda r: (_signed(st, r.values or ()), r.number)).number], front_numbers
        return sorted(front_numbers), front_numbers
    numbers = [trials] if isinstance(trials, int) and not isinstance(trials, bool) else trials
    if not isinstance(numbers, Sequence) or isinstance(numbers, (str, bytes)) or not numbers or any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
        raise ConfigError("trials", f"expected 'best', 'pareto', a trial number or a list of them, got {trials!r}.", "e.g. trials='pareto' or trials=[3, 7].")
    return list(dict.fromkeys(int(n) for n in numbers)), front_numbers


def _storage_text(url: str | None) -> str:
    """The storage URL without a password."""
    if not url:
        return "in-memory"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show it as given
        return str(url)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(
    study: Any,
    *,
    trials: Any = "best",
    format: str = "onnx",
    out: str | Path,
    storage: str | None = None,
    n_inputs: int = 256,
    inputs: Any = None,
    labels: Any = None,
    remeasure: bool = True,
    latency_rel_ci: float = 0.05,
    latency_max_time_s: float = 3.0,
    exporter: str = "auto",
    build_model: Any = None,
    calibration: Any = None,
) -> dict[str, Any]:
    """Export trained networks of ``study`` to ``out`` with verification and re-measurement.

    Args:
        study: a :class:`~hwtune.study.Study`, or the name of a stored one (``None``: the only study in ``storage``).
        trials: ``"best"``, ``"pareto"``, a trial number or a list of them (each needs kept weights).
        format: ``"onnx"`` (ONNX Runtime, dynamic batch) or ``"torchscript"`` (traced); ``"keras"``
            (a ``.keras`` file), ``"tflite"`` or ``"tflite-int8"`` (full-integer int8 calibrated on the
            training split; both need TensorFlow, measured in the TFLite interpreter) for a study of framework keras.
        out: the folder to write ``trial_<n>.onnx`` / ``.pt`` and ``manifest.json`` to (created).
        storage: the storage of a study given by name (default ``sqlite:///hwtune.db``).
        n_inputs: validation inputs the verification runs on.
        inputs, labels: your own validation inputs (N, C, H, W) and labels, for a study made through
            the API (hwtune knows the data of study-file studies only).
        remeasure: re-measure each exported file's latency on the study's device (``False``: skip it;
            the manifest then has no ``exported.latency_ms``).
        latency_rel_ci, latency_max_time_s: the re-measurement's precision target and time cap.
        exporter: the ONNX exporter (:func:`hwtune.hardware.export_onnx`).
        build_model: ``params -> nn.Module`` of a study made through the API.
        calibration: training inputs (N, C, H, W) for a trial quantized to int8 of a study made
            through the API (a study file's are read from its data section).

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        ConfigError: naming ``trials`` / ``trial`` (no such trial, no kept weights), ``format``,
            ``inputs`` (no validation data known), ``study`` / ``storage``.
        hwtune.hardware.ExportError: a network the exporter cannot export.
    """
    import numpy as np
    import torch

    from hwtune.study import load_model, load_model_for, validation_data

    fmt = _check_format(format)
    runtime = RUNTIME_OF_FORMAT[fmt]
    if fmt == "onnx":
        from hwtune.hardware import check_runtime

        check_runtime("onnxruntime", field="format")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise ConfigError("n_inputs", f"must be a positive number of inputs, got {n_inputs!r}.")
    from hwtune.study import as_study

    st = as_study(study, storage)
    numbers, front = select_trials(st, trials)
    if st.input_shape is None:
        raise ConfigError("study", f"study {st.name!r} does not record its input shape.", "pass input_shape= when creating the study.")
    if inputs is None:
        try:
            inputs, labels = validation_data(st, n_inputs)
        except ConfigError as e:
            raise ConfigError("inputs", e.problem, "pass your own validation inputs: hwtune.export(..., inputs=x_val, labels=y_val).") from None
    x = np.ascontiguousarray(np.asarray(inputs.detach().cpu() if hasattr(inputs, "detach") else inputs, dtype=np.float32)[:n_inputs])
    cfg = dict(st.optuna_study.user_attrs.get(CONFIG_ATTR) or {})
    study_runtime = str(cfg.get("runtime", "torch"))
    from hwtune.study._framework import framework_for_runtime

    framework = framework_for_runtime(study_runtime)  # whose networks the study holds
    if (fmt in _KERAS_FORMATS) != (framework.name == "keras"):
        raise ConfigError("format", f"study {st.name!r} holds {framework.name} networks; format {fmt} is for {'keras' if fmt in _KERAS_FORMATS else 'torch'} ones.",
                          "export a keras study with format keras, tflite or tflite-int8 (--format tflite), a torch study with onnx or torchscript.")
    if fmt in _KERAS_FORMATS:
        framework.check_export(fmt)  # type: ignore[attr-defined]  # TFLite needs TensorFlow: said before anything is written
    by_number = {t.number: t for t in st.optuna_study.get_trials(deepcopy=False)}
    from hwtune.study._closing import closing_hardware
    from hwtune.study._retest import retest_interval

    records = {r.number: r for r in st.records()} if remeasure else {}
    closing = closing_hardware(st.optuna_study.user_attrs) if remeasure else {}
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError("out", f"{str(folder)!r} is a file, not a folder.", "give a folder for the model files and manifest.json (it is created).")
    folder.mkdir(parents=True, exist_ok=True)
    models: list[dict[str, Any]] = []
    device_desc: dict[str, Any] = {}
    for n in numbers:
        if n not in by_number:
            raise ConfigError("trial", f"study {st.name!r} has no trial {n}.", f"use one of 0..{max(by_number, default=0)} (hwtune show lists them).")
        stored = read_trial(by_number[n])
        model = load_model_for(st, n, build_model=build_model) if build_model is not None else load_model(st, n)
        t0 = time.perf_counter()
        int8 = is_int8_trial(stored.params)
        if int8 and fmt != "onnx":
            raise ConfigError("format", f"trial {n} is quantized to int8, which runs in ONNX Runtime.", "export it with format onnx (--format onnx).")
        if int8:  # the int8 model the study evaluated: the kept weights with the same calibration batches
            path = export_int8(model, torch.from_numpy(x[:1]), folder, n, st, calibration)
        elif fmt == "keras":  # as its framework ships it (study._framework)
            path = framework.save(model, folder / f"trial_{n}{_SUFFIX[fmt]}")
        elif fmt in _KERAS_FORMATS:  # TFLite, float or int8 calibrated on the training split (hwtune.keras._tflite)
            path = framework.export_file(model, fmt, folder / f"trial_{n}{_SUFFIX[fmt]}", tuple(st.input_shape),  # type: ignore[attr-defined]
                                         calibration=_training_inputs(st, calibration) if fmt == "tflite-int8" else None)
        else:
            path = export_file(model, torch.from_numpy(x[:1]), folder, n, fmt, exporter=exporter)
        export_s = time.perf_counter() - t0
        entry: dict[str, Any] = {
            "trial": n,
            "file": path.name,
            "format": fmt,
            "params": dict(stored.params),
            "pareto": n in front,
            "metrics": _metrics(stored),
            "verification": verify_int8(model, path, st, stored, x, labels) if int8 else verify_saved(framework, model, path, x, labels) if fmt == "keras"
            else framework.verify_file(model, path, fmt, x, labels, tolerance=TOLERANCE, validation=_validation_split(st, fmt))  # type: ignore[attr-defined]
            if fmt in _KERAS_FORMATS else verify_export(model, path, fmt, x, labels),
        }
        if stored.final_hardware:  # a compressed or kept network: its measurement after training too
            entry["final_hardware"] = {k: d for k, d in stored.final_hardware.items()}
        exported: dict[str, Any] = {"runtime": runtime, "bytes": path.stat().st_size, "sha256": _sha256(path), "export_s": round(export_s, 4)}
        desc = by_number[n].user_attrs.get(DEVICE_ATTR)
        if isinstance(desc, dict) and not device_desc:
            device_desc = dict(desc)
        if remeasure:
            from hwtune.hardware import Measurement

            study_lat = Measurement.from_dict({"metric": "latency_ms", **stored.hardware["latency_ms"]}) if "latency_ms" in stored.hardware else None
            ref_ms = (study_lat.extra or {}).get("at_reference_ms") if study_lat is not None else None
            lat, measured_on = remeasure_latency(
                path, st.input_shape, st.device, st.inference_batch_size,
                rel_ci=latency_rel_ci, max_time_s=latency_max_time_s, reference_ms=ref_ms,
            )
            retest = retest_interval(records[n], records.values(), closing=closing) if n in records and study_runtime == runtime else None
            exported["latency_ms"] = compare_latency(lat, study_lat, study_runtime, runtime, retest)
            exported["device"] = measured_on
            if not device_desc:
                device_desc = dict(measured_on)
        entry["exported"] = exported
        models.append(entry)
    manifest = {
        "format_version": FORMAT_VERSION,
        **versions(),
        "created": created_now(),
        "study": {
            "name": st.name,
            "storage": _storage_text(st.storage_url),
            "objectives": [str(o) for o in st.objectives],
            "constraints": [c.text for c in st.constraints],
            "runtime": study_runtime,
            "inference_batch_size": st.inference_batch_size,
        },
        "device": device_desc,
        "input_shape": [int(s) for s in st.input_shape],
        "batch_sizes": [int(st.inference_batch_size)],
        "dynamic_batch": True,
        "models": models,
    }
    write_manifest(folder, manifest)
    return manifest


def _training_inputs(st: Any, calibration: Any) -> Any:
    """An int8 TFLite file's calibration inputs: the given ones, else the study file's training split."""
    if calibration is not None:
        return calibration
    from hwtune.study import training_inputs

    try:
        return training_inputs(st)
    except ConfigError as e:
        raise ConfigError("calibration", f"an int8 TFLite export is calibrated on training inputs, and {e.problem}", "pass calibration=<training inputs (N, C, H, W)> to hwtune.export.") from None


def _validation_split(st: Any, fmt: str) -> Any:
    """The study's whole validation split (inputs, labels) an int8 file's error is checked on, or ``None``."""
    if fmt != "tflite-int8":
        return None
    from hwtune.study import validation_data

    try:
        return validation_data(st)
    except ConfigError:
        return None


def _metrics(stored: Any) -> dict[str, Any]:
    """The trial's validation and test error (``measured:training``) and every hardware measurement."""
    from hwtune.hardware import Measurement

    out: dict[str, Any] = {
        "error": quality_entry(stored.metrics.get("error")),
        "test_error": quality_entry(stored.metrics.get("test_error")),
    }
    for k, d in stored.hardware.items():
        out[k] = measurement_entry(Measurement.from_dict({"metric": k, **d}))
    return out
