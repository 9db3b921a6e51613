"""The vocabulary of measured quantities, shared by storage, constraints and reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MetricInfo", "METRICS", "HARDWARE_METRICS", "QUALITY_METRICS", "metric_info"]

Kind = Literal["quality", "hardware"]


@dataclass(frozen=True)
class MetricInfo:
    """What one metric name means.

    Attributes:
        name: the name used everywhere (storage keys, constraint text, reports).
        unit: its unit, printed beside every value.
        kind: ``"quality"`` (known after training) or ``"hardware"`` (known before training).
        better: ``"lower"`` or ``"higher"``.
        description: one line for reports and error messages.
    """

    name: str
    unit: str
    kind: Kind
    better: Literal["lower", "higher"]
    description: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("error", "", "quality", "lower", "validation error (1 - accuracy)"),
        MetricInfo("accuracy", "", "quality", "higher", "validation accuracy"),
        MetricInfo("latency_ms", "ms", "hardware", "lower", "inference latency per batch"),
        MetricInfo("throughput_sps", "samples/s", "hardware", "higher", "inference throughput"),
        MetricInfo("power_w", "W", "hardware", "lower", "mean power while inferring"),
        MetricInfo("energy_mj", "mJ", "hardware", "lower", "energy per inference (per sample)"),
        MetricInfo("peak_mem_mb", "MB", "hardware", "lower", "peak memory during inference"),
        MetricInfo("params", "", "hardware", "lower", "number of parameters"),
        MetricInfo("flops", "", "hardware", "lower", "floating-point operations per sample"),
        MetricInfo("size_mb", "MB", "hardware", "lower", "serialized model size"),
    )
}

HARDWARE_METRICS = frozenset(n for n, m in METRICS.items() if m.kind == "hardware")
QUALITY_METRICS = frozenset(n for n, m in METRICS.items() if m.kind == "quality")


def metric_info(name: str, field: str = "metric") -> MetricInfo:
    """Look a metric up by name, with an error that lists the known names."""
    from hwtune.exceptions import ConfigError

    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            field,
            f"unknown metric {name!r}.",
            f"use one of {', '.join(sorted(METRICS))}.",
        ) from None
