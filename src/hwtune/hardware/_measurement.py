"""A measured, estimated or predicted value that always says where it came from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["Measurement", "HardwareReport"]


@dataclass(frozen=True)
class Measurement:
    """One value of the metric vocabulary with its provenance.

    Attributes:
        metric: vocabulary name (``latency_ms``, ``params``...).
        value: the value, or ``None`` when it could not be obtained (never 0 for "missing").
        unit: unit of ``value``.
        source: where it came from: ``measured:timer``, ``measured:nvml``, ``measured:rapl``,
            ``counted``, ``measured:serialized``, ``estimated:<method>``, ``predicted:<model>``,
            or ``unavailable``.
        ci_low, ci_high: 95 % confidence interval, when the source has one.
        repeats: how many samples the value summarises.
        note: free text: why a value is unavailable, what was subtracted, warnings.
        extra: source-specific details (batch size, outliers, convergence).
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

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        return cls(**{k: d.get(k) for k in ("metric", "value", "unit", "source", "ci_low", "ci_high", "repeats", "note")}, extra=dict(d.get("extra") or {}))

    def format(self, digits: int = 4) -> str:
        """Human text: ``0.412 ms [0.405, 0.420] (measured:timer, n=120)``."""
        if not self.available:
            return f"unavailable ({self.note or self.source})"
        v = self.value
        txt = f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:.{digits}g}"
        if self.unit:
            txt += f" {self.unit}"
        if self.ci_low is not None and self.ci_high is not None:
            txt += f" [{self.ci_low:.{digits}g}, {self.ci_high:.{digits}g}]"
        src = self.source + (f", n={self.repeats}" if self.repeats else "")
        return f"{txt} ({src})"


@dataclass
class HardwareReport:
    """Measurements of one model on one device, keyed by metric name."""

    measurements: dict[str, Measurement]
    device: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, metric: str) -> Measurement:
        return self.measurements[metric]

    def __contains__(self, metric: object) -> bool:
        return metric in self.measurements

    def values(self) -> dict[str, float]:
        """Available values only (a missing value is absent, not zero)."""
        return {k: float(m.value) for k, m in self.measurements.items() if m.available}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "measurements": {k: m.to_dict() for k, m in self.measurements.items()}}
