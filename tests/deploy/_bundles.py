"""Bundles for the deploy tests: real tiny ONNX exports of the ``cnn`` family, and manifests of the
schema ``hwtune export --pareto`` writes (format 1)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INPUT = (1, 8, 8)
TINY = (
    {"conv_layers": 2, "filters_0": 8, "filters_1": 8, "dense_units": 32},
    {"conv_layers": 1, "filters_0": 4, "dense_units": 16},
    {"conv_layers": 1, "filters_0": 2, "dense_units": 8},
)


def export_onnx(model: Any, path: Path, input_shape: Sequence[int] = INPUT, *, dynamic: bool = True) -> None:
    """``torch.onnx.export`` with a dynamic batch dimension (the TorchScript-based exporter: fast)."""
    import torch

    x = torch.zeros((2, *input_shape))
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"], dynamic_axes=axes)


def build(params: dict[str, Any], seed: int = 0, input_shape: Sequence[int] = INPUT) -> Any:
    import torch

    from hwtune.train import get_family

    torch.manual_seed(seed)
    return get_family("cnn").build(params, tuple(input_shape), 10).eval()


def entry(trial: int, error: float, latency_ms: float | None, *, energy_mj: float | None = None, exported_ms: float | None = None,
          file: str | None = None, verification: dict[str, Any] | None = None, batch: int = 4) -> dict[str, Any]:
    """One ``models`` entry of a manifest."""
    metrics: dict[str, Any] = {"error": {"value": error, "source": "measured:training"}}
    if latency_ms is not None:
        metrics["latency_ms"] = {"value": latency_ms, "unit": "ms", "source": "measured:timer", "ci_low": latency_ms * 0.97, "ci_high": latency_ms * 1.03}
    if energy_mj is not None:
        metrics["energy_mj"] = {"value": energy_mj, "unit": "mJ", "source": "estimated:tdp"}
    e: dict[str, Any] = {"trial": trial, "file": file or f"trial_{trial}.onnx", "format": "onnx", "metrics": metrics, "pareto": True,
                         "verification": verification if verification is not None else {"max_abs_diff": 1e-6, "argmax_agreement": 1.0}}
    if exported_ms is not None:
        e["exported"] = {"latency_ms": {"value": exported_ms, "unit": "ms", "source": "measured:onnxruntime", "ci_low": exported_ms * 0.98, "ci_high": exported_ms * 1.02, "batch_size": batch}}
    return e


def write_manifest(folder: Path, models: list[dict[str, Any]], *, input_shape: Sequence[int] = INPUT, batch_sizes: Sequence[int] = (4,), touch: bool = True) -> Path:
    """``folder/manifest.json``; ``touch``: create an empty file for each model that has none (for
    tests that never open a session)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format_version": 1,
        "study": {"name": "tiny", "storage": "memory"},
        "device": {"type": "cpu", "model": "test CPU", "threads": 1},
        "input_shape": list(input_shape),
        "batch_sizes": list(batch_sizes),
        "models": models,
    }
    if touch:
        for m in models:
            p = folder / str(m["file"])
            if "/" not in str(m["file"]) and ".." not in str(m["file"]) and not p.exists():
                p.write_bytes(b"")
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def tiny_bundle(folder: Path, *, energy: bool = True) -> list[Any]:
    """A real bundle of three tiny ``cnn`` models (8x8 input), errors 0.02 / 0.05 / 0.10 and latencies
    3 / 1.5 / 0.5 ms (stated, not measured: the selector's arithmetic is what these tests check).
    Returns the PyTorch models in manifest order."""
    folder.mkdir(parents=True, exist_ok=True)
    nets, models = [], []
    for trial, (params, err, lat, en) in enumerate(zip(TINY, (0.02, 0.05, 0.10), (3.0, 1.5, 0.5), (9.0, 4.0, 1.0))):
        net = build(params, seed=trial)
        export_onnx(net, folder / f"trial_{trial}.onnx")
        nets.append(net)
        models.append(entry(trial, err, lat, energy_mj=en if energy else None))
    write_manifest(folder, models, touch=False)
    return nets
