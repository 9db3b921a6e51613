"""A tiny real study on the digits with every trained model kept: what the export tests export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwtune.study import Study, parse_study_file, study_from_file
from tests._tiny_digits import tiny_digits_spec


def spec(tmp: Path, *, trials: int = 2, name: str = "digits-export", **extra: Any) -> dict[str, Any]:
    return tiny_digits_spec(
        tmp / "export.db", name, trials=trials, lr=(0.05, 0.2),
        **{"objective": {"minimize": ["error", "latency_ms"]}, "inference_batch_size": 16, "keep_models": "all", "runtime": "onnxruntime", **extra},
    )


def run_study(tmp: Path, **kw: Any) -> Study:
    """Run the study (a few seconds: one epoch of a tiny CNN per trial) and return it."""
    s = spec(tmp, **kw)
    study, build, train = study_from_file(parse_study_file(s))
    study.optimize(build, train, n_trials=s["budget"]["trials"])
    return study
