"""Plain-text rendering of a :class:`HardwareReport` (what ``hwtune profile`` prints)."""

from __future__ import annotations

from typing import Any

from hwtune.hardware._measurement import BATCH_METRICS, HardwareReport, Measurement, format_number

__all__ = ["format_report", "describe_device_line"]

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
