"""Reading an exported Pareto bundle: ``DIR/manifest.json`` plus one ONNX file per model.

The manifest is written by ``hwtune export --pareto``; this module reads exactly the keys the
run-time selector needs (error, latency, energy, the file) and checks them, so that a bad bundle
fails at load time with a message naming the file and the fix, never halfway through serving.
Plain JSON and ONNX protobuf only: nothing here unpickles anything, and no file name in the
manifest may point outside DIR.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["FORMAT_VERSION", "MANIFEST", "Bundle", "BundleModel", "Cost", "read_bundle", "safe_model_path"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_REEXPORT = "re-export the bundle with `hwtune export --pareto --format onnx --out DIR`."


@dataclass(frozen=True)
class Cost:
    """One stored cost of a model: value, unit, where it came from, interval, and at what batch size."""

    value: float
    unit: str
    source: str
    origin: str
    """``exported`` (re-measured on the exported file) or ``study`` (measured during the search)."""
    ci_low: float | None = None
    ci_high: float | None = None
    batch_size: int | None = None

    def describe(self) -> str:
        ci = f" [{self.ci_low:.4g}, {self.ci_high:.4g}]" if self.ci_low is not None and self.ci_high is not None else ""
        at = f" at batch {self.batch_size}" if self.batch_size else ""
        return f"{self.value:.4g} {self.unit}{ci}{at} ({self.origin}, {self.source})"


@dataclass(frozen=True)
class BundleModel:
    """One model of the front as the selector sees it.

    Attributes:
        index: position in the manifest's ``models`` list.
        path: the ONNX file, inside the bundle's folder.
        error: the study's error (validation), a share in [0, 1].
        latency: per batch; the exported file's re-measured latency when the manifest has it, else
            the study's; ``None`` when neither was measured.
        energy: energy per inference (mJ), ``None`` when not measured.
    """

    index: int
    trial: int
    file: str
    path: Path
    error: float
    error_source: str
    latency: Cost | None
    energy: Cost | None
    pareto: bool = True
    verification: Mapping[str, Any] = field(default_factory=dict)
    study_latency: Cost | None = None
    """The study's latency when ``latency`` is the exported one (shown side by side, never mixed)."""

    @property
    def name(self) -> str:
        return f"trial {self.trial}"


@dataclass(frozen=True)
class Bundle:
    """A bundle's folder and its checked manifest; ``models`` are sorted by error, then latency."""

    folder: Path
    manifest: Mapping[str, Any]
    input_shape: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    device: Mapping[str, Any]
    study: Mapping[str, Any]
    models: tuple[BundleModel, ...]

    @property
    def threads(self) -> int | None:
        t = self.device.get("threads")
        return int(t) if isinstance(t, int) and not isinstance(t, bool) and t > 0 else None


def safe_model_path(folder: Path, name: Any, where: str) -> Path:
    """``folder / name`` if ``name`` is a plain relative path that stays inside ``folder``.

    Rejects absolute names, drive letters, backslashes, ``..`` parts and symbolic links that lead
    out of the folder: a manifest is data, and data never chooses what else gets read.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(where, f"must be the name of a model file inside the bundle, got {name!r}.", _REEXPORT)
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or "\\" in name or ".." in posix.parts:
        raise ConfigError(
            where, f"{name!r} points outside the bundle folder {str(folder)!r} (absolute or with '..').",
            "a bundle names its model files relative to its own folder (e.g. trial_12.onnx); re-export it rather than editing paths.",
        )
    path = folder / posix
    root = folder.resolve()
    try:
        path.resolve().relative_to(root)
    except ValueError:
        raise ConfigError(where, f"{name!r} resolves outside the bundle folder {str(folder)!r} (a symbolic link?).", "copy the model file into the bundle folder.") from None
    return path


def _number(d: Any, key: str, where: str, *, positive: bool = False, required: bool = True) -> float | None:
    v = d.get(key) if isinstance(d, Mapping) else None
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        what = "a positive finite number" if positive else "a finite number"
        raise ConfigError(f"{where}.{key}", f"must be {what}, got {v!r}.", _REEXPORT)
    return float(v)


def _cost(d: Any, where: str, origin: str, unit: str, default_batch: int | None) -> Cost | None:
    if d is None:
        return None
    if not isinstance(d, Mapping):
        raise ConfigError(where, f"must be an object with value, unit and source, got {type(d).__name__}.", _REEXPORT)
    if d.get("value") is None:  # measured as unavailable: kept as missing, never read as 0
        return None
    value = _number(d, "value", where, positive=True)
    lo = _number(d, "ci_low", where, required=False)
    hi = _number(d, "ci_high", where, required=False)
    batch = d.get("batch_size", default_batch)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(f"{where}.batch_size", f"must be a positive integer, got {batch!r}.", _REEXPORT)
    got_unit = d.get("unit") or unit
    if got_unit != unit:
        raise ConfigError(f"{where}.unit", f"must be {unit!r}, got {got_unit!r}.", _REEXPORT)
    return Cost(float(value), unit, str(d.get("source") or "unknown"), origin, lo, hi, batch)  # type: ignore[arg-type]


def _int_list(v: Any, where: str, *, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(v, Sequence) or isinstance(v, (str, bytes)) or not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in v):
        raise ConfigError(where, f"must be a non-empty list of positive integers, got {v!r}.", _REEXPORT)
    if length is not None and len(v) != length:
        raise ConfigError(where, f"must have {length} entries, got {len(v)}.", _REEXPORT)
    return tuple(int(x) for x in v)


def _read_model(folder: Path, i: int, m: Any, mf: str, default_batch: int) -> BundleModel:
    where = f"{mf}: models[{i}]"
    if not isinstance(m, Mapping):
        raise ConfigError(where, f"must be an object, got {type(m).__name__}.", _REEXPORT)
    trial = m.get("trial")
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise ConfigError(f"{where}.trial", f"must be an integer trial number, got {trial!r}.", _REEXPORT)
    fmt = m.get("format", "onnx")
    if fmt != "onnx":
        raise ConfigError(f"{where}.format", f"AdaptiveModel serves ONNX models (ONNX Runtime); this model is {fmt!r}.", "export the bundle with --format onnx.")
    path = safe_model_path(folder, m.get("file"), f"{where}.file")
    if not path.is_file():
        raise ConfigError(f"{where}.file", f"model file {str(path)!r} does not exist.", f"copy {m.get('file')} back into the bundle folder, or {_REEXPORT}")
    metrics = m.get("metrics")
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{where}.metrics", f"must be an object of measured metrics, got {metrics!r}.", _REEXPORT)
    err = metrics.get("error")
    if not isinstance(err, Mapping):
        raise ConfigError(f"{where}.metrics.error", "is missing: the selector ranks models by their error.", _REEXPORT)
    error = _number(err, "value", f"{where}.metrics.error")
    if not 0.0 <= error <= 1.0:  # type: ignore[operator]
        raise ConfigError(f"{where}.metrics.error.value", f"must be a share in [0, 1], got {error!r}.", _REEXPORT)
    study_lat = _cost(metrics.get("latency_ms"), f"{where}.metrics.latency_ms", "study", "ms", default_batch)
    exported = m.get("exported") or {}
    exp_lat = _cost(exported.get("latency_ms") if isinstance(exported, Mapping) else None, f"{where}.exported.latency_ms", "exported", "ms", default_batch)
    energy = _cost(metrics.get("energy_mj"), f"{where}.metrics.energy_mj", "study", "mJ", None)
    verification = m.get("verification") if isinstance(m.get("verification"), Mapping) else {}
    return BundleModel(
        index=i, trial=trial, file=str(m["file"]), path=path, error=float(error),  # type: ignore[arg-type]
        error_source=str(err.get("source") or "unknown"), latency=exp_lat or study_lat, energy=energy,
        pareto=bool(m.get("pareto", True)), verification=verification or {},
        study_latency=study_lat if exp_lat is not None else None,
    )


def read_bundle(folder: str | Path) -> Bundle:
    """Read and check ``folder/manifest.json`` and that every model file it names exists.

    Raises:
        ConfigError: the folder, the manifest or a model file is missing or invalid; the message
            names the file and the field, and says how to fix it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("bundle", f"{str(folder)!r} is not a folder.", "give the folder written by `hwtune export --pareto --format onnx --out DIR`.")
    mf_path = folder / MANIFEST
    mf = str(mf_path)
    if not mf_path.is_file():
        raise ConfigError(mf, "does not exist: this folder is not an exported bundle.", "give the folder written by `hwtune export --pareto --format onnx --out DIR` (it holds manifest.json).")
    try:
        manifest = json.loads(mf_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(mf, f"is not valid JSON ({e}).", _REEXPORT) from None
    if not isinstance(manifest, Mapping):
        raise ConfigError(mf, f"must hold a JSON object, got {type(manifest).__name__}.", _REEXPORT)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(f"{mf}: format_version", f"this hwtune reads bundle format {FORMAT_VERSION}, the manifest says {version!r}.", f"export the bundle with this hwtune version, or {_REEXPORT}")
    input_shape = _int_list(manifest.get("input_shape"), f"{mf}: input_shape")
    batch_sizes = _int_list(manifest.get("batch_sizes", [1]), f"{mf}: batch_sizes")
    models_raw = manifest.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError(f"{mf}: models", "must be a non-empty list of exported models.", _REEXPORT)
    models = [_read_model(folder, i, m, mf, batch_sizes[0]) for i, m in enumerate(models_raw)]
    seen: dict[int, int] = {}
    for m in models:
        if m.trial in seen:
            raise ConfigError(f"{mf}: models[{m.index}].trial", f"trial {m.trial} appears twice (models[{seen[m.trial]}] too).", _REEXPORT)
        seen[m.trial] = m.index
    models.sort(key=lambda m: (m.error, m.latency.value if m.latency else math.inf, m.index))
    device = manifest.get("device") if isinstance(manifest.get("device"), Mapping) else {}
    study = manifest.get("study") if isinstance(manifest.get("study"), Mapping) else {}
    return Bundle(folder, manifest, input_shape, batch_sizes, device or {}, study or {}, tuple(models))
