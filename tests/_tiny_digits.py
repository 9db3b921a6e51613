"""A tiny real study file on the digits (one 1-conv CNN, a few trials, one thread): the shape every test
of a whole study run starts from, each changing what it is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_digits_spec(
    db: Path,
    name: str,
    *,
    epochs: int = 1,
    trials: int = 2,
    filters_high: int = 12,
    lr: tuple[float, float] = (0.02, 0.2),
    batch_size: int = 64,
    **extra: Any,
) -> dict[str, Any]:
    """A study-file dict stored in SQLite at ``db``; ``extra`` keys are added or replace the defaults."""
    return {
        "name": name,
        "storage": f"sqlite:///{db}",
        "data": {"name": "digits"},
        "model": {"family": "cnn"},
        "space": {"conv_layers": 1, "filters_0": {"type": "int", "low": 4, "high": filters_high}, "kernel_0": 3, "dense_units": 16,
                  "lr": {"type": "float", "low": lr[0], "high": lr[1], "log": True}, "batch_size": batch_size, "epochs": epochs},
        "device": "cpu:1",
        "sampler": "random",
        "cost_model": "none",
        "latency": {"max_time_s": 0.2},
        "budget": {"trials": trials},
        "trainer": {"amp": False, "channels_last": False, "compile": False},
        **extra,
    }
