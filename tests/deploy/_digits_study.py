"""A tiny real study on the digits with every trained model kept: what the export tests export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwtune.study import Study, parse_study_file, study_from_file


def spec(tmp: Path, *, trials: int = 2, name: str = "digits-export", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "storage": f"sqlite:///{tmp / 'export.db'}",
        "data": {"name": "digits"},
        "model": {"family": "cnn"},
        "space": {"conv_layers": 1, "filters_0": {"type": "int", "low": 4, "high": 12}, "kernel_0": 3, "dense_units": 16,
                  "lr": {"type": "float", "low": 0.05, "high": 0.2, "log": True}, "batch_size": 64, "epochs": 1},
        "objective": {"minimize": ["error", "latency_ms"]},
        "device": "cpu:1",
        "inference_batch_size": 16,
        "sampler": "random",
        "cost_model": "none",
        "latency": {"max_time_s": 0.2},
        "budget": {"trials": trials},
        "keep_models": "all",
        "runtime": "onnxruntime",
        "trainer": {"amp": False, "channels_last": False, "compile": False},
        **extra,
    }


def run_study(tmp: Path, **kw: Any) -> Study:
    """Run the study (a few seconds: one epoch of a tiny CNN per trial) and return it."""
    s = spec(tmp, **kw)
    study, build, train = study_from_file(parse_study_file(s))
    study.optimize(build, train, n_trials=s["budget"]["trials"])
    return study
