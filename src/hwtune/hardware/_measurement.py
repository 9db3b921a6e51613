"""A measured, estimated or predicted value that always says where it came from, and the plain-text
rendering of a :class:`HardwareReport` (what ``hwtune profile`` prints)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = [
    "Measurement",
    "HardwareReport",
    "BATCH_METRICS",
    "is_measured",
    "is_estimated",
    "unavailable",
    "format_report",
    "describe_device_line",
]

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
        source: where it came from: ``measured:timer``, ``measured:timer/reference`` (at a study's
            stored reference speed), ``measured:nvml``, ``measured:rapl``,
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
        """A plain-text table (see :func:`format_report`)."""
        return format_report(self)


# -- plain-text rendering ----------------------------------------------------------------------------
_HEADER = ("metric", "batch", "value", "95% CI", "n", "source")


def describe_device_line(device: dict[str, Any]) -> str:
    """``cpu: AMD EPYC, 2 threads, torch 2.13.0+cpu`` from a device description."""
    kind = device.get("type", "?")
    parts = [f"{kind}: {device.get('model', '?')}"]
    if kind == "cuda":
        parts[0] = f"cuda:{device.get('index', 0)}: {device.get('model', '?')}"
        if "driver" in device:
            parts.append(f"driver {device['driver']}")
        if device.get("cuda_runtime"):
            parts.append(f"CUDA {device['cuda_runtime']}")
        parts.append(f"{device.get('threads', '?')} host threads")
    else:
        parts.append(f"{device.get('threads', '?')} threads (of {device.get('cpus_available', '?')} CPUs)")
    if device.get("torch"):
        parts.append(f"torch {device['torch']}")
    return ", ".join(parts)


def _value(m: Measurement, digits: int) -> str:
    if not m.available:
        return "unavailable"
    txt = ("~" if m.estimated else "") + format_number(float(m.value), digits)  # type: ignore[arg-type]
    return f"{txt} {m.unit}".rstrip()


def _ci(m: Measurement, digits: int) -> str:
    if m.ci_low is None or m.ci_high is None or not m.available:
        return "-"
    return f"[{m.ci_low:.{digits}g}, {m.ci_high:.{digits}g}]"


def format_report(report: HardwareReport, digits: int = 4) -> str:
    """A table, one row per value (per batch size for the batch-dependent ones), then notes.

    Estimated values carry a ``~`` and their ``estimated:<method>`` source; unavailable ones say
    ``unavailable``; the notes say why, and whether the device was busy or throttling.
    """
    rows: list[tuple[str, ...]] = []
    batches = report.batches or ({} if not report.measurements else {-1: {k: m for k, m in report.measurements.items() if k in BATCH_METRICS}})
    for b, ms in batches.items():
        for k in BATCH_METRICS:
            if k in ms:
                m = ms[k]
                rows.append((k, str(b) if b > 0 else str(m.extra.get("batch_size", "-")), _value(m, digits), _ci(m, digits), str(m.repeats or "-"), m.source))
    for k, m in report.measurements.items():
        if k not in BATCH_METRICS:
            rows.append((k, "-", _value(m, digits), _ci(m, digits), str(m.repeats or "-"), m.source))
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [describe_device_line(report.device), "", line(_HEADER), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    lat = next((ms["latency_ms"] for ms in batches.values() if "latency_ms" in ms), None)
    if lat is not None and lat.extra:
        out.append("")
        out.append(
            f"latency: median of n timed runs, 95% CI of the median (target ±{lat.extra.get('target_rel_ci', 0):.0%}), "
            f"clock {lat.extra.get('clock', 'wall')}, {lat.extra.get('threads', '?')} thread(s)"
        )
    if report.warnings:
        out.append("")
        out.append("notes:")
        out += [f"  * {w}" for w in report.warnings]
    return "\n".join(out)
