"""Test doubles around the study loop: a meter and a trainer that are pure functions of params."""

from __future__ import annotations

import math
from typing import Any

from hwtune.hardware import HardwareReport, Measurement

SPACE = {
    "width": {"type": "int", "low": 1, "high": 10, "role": "architecture"},
    "lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "role": "training"},
}


def build(params: dict[str, Any]) -> dict[str, Any]:
    return {"width": params["width"]}


def measure(model: dict[str, Any], params: dict[str, Any]) -> HardwareReport:
    """Latency grows with width: width <= 5 fits 'latency_ms <= 5'."""
    lat = float(model["width"])
    return HardwareReport({"latency_ms": Measurement("latency_ms", lat, "ms", "measured:test-double", lat * 0.99, lat * 1.01, 10)})


def train(model: dict[str, Any], params: dict[str, Any], ctx: Any) -> dict[str, float]:
    err = 1.0 / (1 + model["width"]) + abs(math.log(params["lr"]) + 2.3) / 10
    return {"error": err, "test_error": err + 0.01}


def slow_train(model: dict[str, Any], params: dict[str, Any], ctx: Any) -> dict[str, float]:
    """Like :func:`train`, taking a second (so that two workers overlap)."""
    import time

    time.sleep(1.0)
    return train(model, params, ctx)
