"""``manifest.json`` of an export: what each exported model is, how it was verified, what it costs.

One manifest per export folder, written by :func:`hwtune.export` / ``hwtune export`` and read by the
run-time selector (``deploy._bundle``). Layout (``format_version`` 1)::

    {"format_version": 1, "hwtune_version", "torch_version", "onnxruntime_version", "created",
     "study": {"name", "storage", "objectives": [text], "constraints": [text], "runtime", "inference_batch_size"},
     "device": {...the study's device description...},
     "input_shape": [C, H, W], "batch_sizes": [inference batch size], "dynamic_batch": bool,
     "models": [{"trial", "file", "format", "params", "pareto",
                 "metrics": {"error": {"value", "source"}, "test_error": {...},
                             <hardware metric>: {"value", "unit", "source", "ci_low", "ci_high", ...}},
                 "exported": {"latency_ms": {"value", "unit", "source", "ci_low", "ci_high", "batch_size",
                                             "study_value", "study_ci", "within_study_interval", "comparison"},
                              "bytes", "sha256", "runtime", "export_s"},
                 "verification": {"max_abs_diff", "argmax_agreement", "n_inputs", "inputs", "passed", ...}}]}

The study's measurements and the exported model's re-measurement sit side by side; one is never
copied into the other.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_KEYS",
    "MODEL_KEYS",
    "STUDY_KEYS",
    "measurement_entry",
    "missing_keys",
    "read_manifest",
    "versions",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

MANIFEST_KEYS = (
    "format_version", "hwtune_version", "torch_version", "onnxruntime_version", "created",
    "study", "device", "input_shape", "batch_sizes", "models",
)
"""Top-level keys every manifest has."""
STUDY_KEYS = ("name", "storage", "objectives", "constraints")
MODEL_KEYS = ("trial", "file", "format", "params", "metrics", "exported", "verification", "pareto")
"""Keys of every entry of ``models``."""
VERIFICATION_KEYS = ("max_abs_diff", "argmax_agreement", "n_inputs", "inputs")
EXPORTED_LATENCY_KEYS = ("value", "unit", "source", "ci_low", "ci_high", "batch_size")


def missing_keys(manifest: Mapping[str, Any]) -> list[str]:
    """Every required key the manifest lacks, as a path (``models[0].verification.n_inputs``)."""
    out = [k for k in MANIFEST_KEYS if k not in manifest]
    study = manifest.get("study") or {}
    out += [f"study.{k}" for k in STUDY_KEYS if k not in study]
    for i, m in enumerate(manifest.get("models") or []):
        out += [f"models[{i}].{k}" for k in MODEL_KEYS if k not in m]
        metrics = m.get("metrics") or {}
        out += [f"models[{i}].metrics.{k}" for k in ("error", "test_error") if k not in metrics]
        ver = m.get("verification") or {}
        out += [f"models[{i}].verification.{k}" for k in VERIFICATION_KEYS if k not in ver]
        lat = (m.get("exported") or {}).get("latency_ms")
        if lat is not None:
            out += [f"models[{i}].exported.latency_ms.{k}" for k in EXPORTED_LATENCY_KEYS if k not in lat]
    return out


def versions() -> dict[str, str | None]:
    """hwtune, torch and ONNX Runtime versions (``None`` for one that is not installed)."""
    import sys

    hwtune_version = str(getattr(sys.modules.get("hwtune"), "__version__", "unknown"))  # the package is imported: this module is inside it
    try:
        import torch

        tv: str | None = str(torch.__version__)
    except ImportError:  # pragma: no cover - hwtune depends on torch
        tv = None
    try:
        import onnxruntime

        ov: str | None = str(onnxruntime.__version__)
    except ImportError:
        ov = None
    return {"hwtune_version": hwtune_version, "torch_version": tv, "onnxruntime_version": ov}


def created_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def measurement_entry(m: Any) -> dict[str, Any]:
    """``{value, unit, source, ci_low, ci_high}`` of a :class:`~hwtune.hardware.Measurement` (plus its
    ``batch_size``, ``repeats`` and ``note`` when it has them); ``value`` is ``None`` when it was unavailable."""
    d: dict[str, Any] = {
        "value": _finite(m.value), "unit": m.unit, "source": m.source,
        "ci_low": _finite(m.ci_low), "ci_high": _finite(m.ci_high),
    }
    batch = (m.extra or {}).get("batch_size")
    if batch is not None:
        d["batch_size"] = batch
    if m.repeats:
        d["repeats"] = m.repeats
    if m.note:
        d["note"] = m.note
    runtime = (m.extra or {}).get("runtime")
    if runtime:
        d["runtime"] = runtime
    return d


def quality_entry(value: float | None, source: str = "measured:training") -> dict[str, Any]:
    """``{value, source}`` of a training result (``None`` when the trial has none)."""
    return {"value": _finite(float(value)) if value is not None else None, "source": source}


def write_manifest(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``folder/manifest.json`` (through a temporary file, so a reader never sees half of it)."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):  # NumPy scalars
        return v.item()
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/manifest.json`` as written (no checks beyond JSON; ``deploy._bundle`` checks what it serves)."""
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))

