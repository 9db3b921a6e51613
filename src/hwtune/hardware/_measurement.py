"""A measured, estimated or predicted value that always says where it came from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["Measurement", "HardwareReport", "BATCH_METRICS", "is_measured", "is_estimated", "unavailable"]

BATCH_METRICS = ("latency_ms", "throughput_sps", "power_w", "energy_mj", "peak_mem_mb")
"""Metrics whose value depends on the inference batch size (the others are per model)."""


def is_estimated(source: str) -> bool:
    """True for ``estimated:<method>`` sources."""
    return source.startswith("estimated")


def is_measured(source: str) -> bool:
    """True for sources that read a sensor, a clock or a counter (``measured:*`` and ``counted*``)."""
    return source.startswith("measured") or source.startswith("counted")


@dataclass(frozen=True)
class Measurement:
    """One value of the metric vocabulary with its provenance.

    Attributes:
        metric: vocabulary name (``latency_ms``, ``params``...).
        value: the value, or ``None`` when it could not be obtained (never 0 for "missing").
        unit: unit of ``value``.
        source: where it came from: ``measured:timer``, ``measured:nvml``, ``measured:rapl``,
            ``measured:rss``, ``measured:cuda_allocator``, ``measured:serialized``, ``counted``,
            ``counted:flop_counter``, ``estimated:<method>``, ``predicted:<model>``, or ``unavailable``.
        ci_low, ci_high: 95 % confidence interval, when the source has one.
        repeats: how many samples the value summarises.
        note: free text: why a value is unavailable, what was subtracted, warnings.
        extra: source-specific details (batch size, outliers, convergence, device state).
    """

    metric: str
    value: float | None
    unit: str
    source: str
    ci_low: float | None = None
    ci_high: float | None = None
    repeats: int | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.value is not None and not (isinstance(self.value, float) and math.isnan(self.value))

    @property
    def estimated(self) -> bool:
        """True when the value is an estimate (source ``estimated:<method>``), not a measurement."""
        return is_estimated(self.source)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        return cls(**{k: d.get(k) for k in ("metric", "value", "unit", "source", "ci_low", "ci_high", "repeats", "note")}, extra=dict(d.get("extra") or {}))

    def format(self, digits: int = 4) -> str:
        """Human text: ``0.412 ms [0.405, 0.420] (measured:timer, n=120)``.

        Estimated values are prefixed with ``~`` so that they are never read as measured.
        """
        if not self.available:
            return f"unavailable ({self.note or self.source})"
        txt = ("~" if self.estimated else "") + format_number(float(self.value), digits)  # type: ignore[arg-type]
        if self.unit:
            txt += f" {self.unit}"
        if self.ci_low is not None and self.ci_high is not None:
            txt += f" [{self.ci_low:.{digits}g}, {self.ci_high:.{digits}g}]"
        src = self.source + (f", n={self.repeats}" if self.repeats else "")
        return f"{txt} ({src})"


def format_number(v: float, digits: int = 4) -> str:
    """Integers >= 1000 with thousands separators, everything else with ``digits`` significant digits."""
    if float(v).is_integer() and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def unavailable(metric: str, unit: str, reason: str, **extra: Any) -> Measurement:
    """A value that could not be obtained: ``value=None``, source ``unavailable``, the reason in ``note``."""
    return Measurement(metric, None, unit, "unavailable", note=reason, extra=dict(extra))


@dataclass
class HardwareReport:
    """Measurements of one model on one device, keyed by metric name.

    Attributes:
        measurements: metric -> measurement, at the primary batch size (the first one profiled).
        device: the device's self-description (model, driver, threads, torch version...).
        batches: batch size -> batch-dependent measurements (latency, throughput, power, energy,
            peak memory) for every batch size profiled; the primary one is also in ``measurements``.
        warnings: things the reader must know (device busy or throttling, sensors missing...).
    """

    measurements: dict[str, Measurement]
    device: dict[str, Any] = field(default_factory=dict)
    batches: dict[int, dict[str, Measurement]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, metric: str) -> Measurement:
        return self.measurements[metric]

    def __contains__(self, metric: object) -> bool:
        return metric in self.measurements

    def values(self, *, include_estimated: bool = True) -> dict[str, float]:
        """Available values only (a missing value is absent, not zero).

        Args:
            include_estimated: keep values whose source is ``estimated:<method>``.
        """
        return {
            k: float(m.value)  # type: ignore[arg-type]
            for k, m in self.measurements.items()
            if m.available and (include_estimated or not m.estimated)
        }

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.batches)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"device": self.device, "measurements": {k: m.to_dict() for k, m in self.measurements.items()}}
        if self.batches:
            d["batches"] = {str(b): {k: m.to_dict() for k, m in ms.items()} for b, ms in self.batches.items()}
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HardwareReport":
        return cls(
            measurements={k: Measurement.from_dict(v) for k, v in (d.get("measurements") or {}).items()},
            device=dict(d.get("device") or {}),
            batches={int(b): {k: Measurement.from_dict(v) for k, v in ms.items()} for b, ms in (d.get("batches") or {}).items()},
            warnings=list(d.get("warnings") or []),
        )

    def format(self) -> str:
        """A plain-text table (see :func:`hwtune.hardware.format_report`)."""
        from hwtune.hardware._format import format_report

        return format_report(self)
