"""Decisions near a budget's bound: a value whose interval straddles the bound is measured again.

A network measured at 4.9 ms [4.6, 5.3] under ``latency_ms <= 5`` is neither within nor over the
budget: its interval says the measurement cannot tell. :func:`remeasure_until_decided` measures it
again (bounded), pools the rounds (their windows, when the measurements carry them), and decides
once the pooled interval clears the bound; after ``max_rounds`` it decides by the pooled value and
says that the interval still straddled. The returned record says how the decision was reached, for
the study to store with the trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwtune.hardware._measurement import HardwareReport, Measurement
from hwtune.hardware._windows import t_quantile_975

__all__ = ["decide_near_bounds", "pool_measurements", "remeasure_until_decided", "straddles"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
    ">=": lambda v, b: v >= b,
    ">": lambda v, b: v > b,
}


def straddles(m: Measurement, bound: float) -> bool:
    """True when ``m`` has an interval and the bound lies strictly inside it."""
    return m.available and m.ci_low is not None and m.ci_high is not None and m.ci_low < bound < m.ci_high


def pool_measurements(rounds: Sequence[Measurement]) -> Measurement:
    """One measurement from several rounds of the same metric.

    With window medians in ``extra`` (``window_medians_ms``, as :func:`profile` records for latency),
    the pooled value is the median of all rounds' window medians and the interval the Student-t
    interval on them (joined with the rounds' narrowest own interval around the pooled value); else
    the median of the values within the envelope of the rounds' intervals' medians.
    """
    if not rounds:
        raise ValueError("no rounds to pool")
    if len(rounds) == 1:
        return rounds[0]
    last = rounds[-1]
    meds = [w for r in rounds for w in (r.extra.get("window_medians_ms") or [])]
    vals = np.array([float(r.value) for r in rounds if r.available])  # type: ignore[arg-type]
    if len(meds) >= 2 and last.metric == "latency_ms":
        w = np.asarray(meds, dtype=float)
        value = float(np.median(w))
        half = t_quantile_975(w.size - 1) * float(np.std(w, ddof=1)) / math.sqrt(w.size)
        lo, hi = max(0.0, value - half), value + half
        how = f"median of {w.size} window medians over {len(rounds)} rounds, Student-t interval on them"
    else:
        value = float(np.median(vals))
        los = [r.ci_low for r in rounds if r.ci_low is not None]
        his = [r.ci_high for r in rounds if r.ci_high is not None]
        lo = float(np.median(los)) if los else None  # type: ignore[assignment]
        hi = float(np.median(his)) if his else None  # type: ignore[assignment]
        how = f"median of {len(rounds)} rounds' values"
    repeats = sum(int(r.repeats or 0) for r in rounds) or None
    extra: dict[str, Any] = {**last.extra, "rounds": len(rounds), "round_values": [float(v) for v in vals], "pooled": how}
    if meds:
        extra["window_medians_ms"] = [float(x) for x in meds]
    note = "; ".join(x for x in (last.note, f"pooled over {len(rounds)} measurements") if x)
    return Measurement(last.metric, value, last.unit, last.source, lo, hi, repeats, note, extra)


def remeasure_until_decided(
    measure_fn: Callable[[], Measurement],
    bound: float,
    op: str,
    max_rounds: int = 3,
    *,
    first: Measurement | None = None,
) -> tuple[Measurement, dict[str, Any]]:
    """Measure until the interval clears ``bound`` or ``max_rounds`` measurements were taken.

    Args:
        measure_fn: takes one new measurement of the metric.
        bound, op: the constraint (``value op bound`` means within budget).
        max_rounds: most measurements in all (the first included).
        first: a measurement already taken (counts as round 1).

    Returns:
        The pooled measurement and the decision record: ``{"bound", "op", "decision": "within" |
        "over", "how", "rounds", "values", "intervals", "value", "ci"}``; ``how`` is
        ``"interval clear of the bound"`` or ``"point value: interval still straddles after N rounds"``.
    """
    if op not in _OPS:
        raise ValueError(f"unknown operator {op!r}; use one of {list(_OPS)}")
    rounds = [first if first is not None else measure_fn()]
    pooled = rounds[0]
    while straddles(pooled, bound) and len(rounds) < max(1, max_rounds):
        rounds.append(measure_fn())
        pooled = pool_measurements(rounds)
    return pooled, _record(rounds, pooled, bound, op)


def _record(rounds: Sequence[Measurement], pooled: Measurement, bound: float, op: str) -> dict[str, Any]:
    if not pooled.available:
        raise ValueError(f"no value to decide on: {pooled.note or pooled.source}")
    within = _OPS[op](float(pooled.value), bound)  # type: ignore[arg-type]
    if straddles(pooled, bound):
        how = f"point value: interval still straddles the bound after {len(rounds)} rounds"
    elif len(rounds) == 1:
        how = "interval clear of the bound" if pooled.ci_low is not None else "point value (no interval)"
    else:
        how = f"interval clear of the bound after {len(rounds)} rounds"
    return {
        "metric": pooled.metric,
        "bound": bound,
        "op": op,
        "decision": "within" if within else "over",
        "how": how,
        "rounds": len(rounds),
        "values": [r.value for r in rounds],
        "intervals": [[r.ci_low, r.ci_high] for r in rounds],
        "value": pooled.value,
        "ci": [pooled.ci_low, pooled.ci_high],
    }


def decide_near_bounds(
    report: HardwareReport,
    measure_again: Callable[[], HardwareReport],
    constraints: Sequence[Any],
    max_rounds: int = 3,
) -> tuple[HardwareReport, dict[str, Mapping[str, Any]]]:
    """Re-measure a report while any constraint's interval straddles its bound (at most ``max_rounds`` reports).

    ``constraints`` are objects with ``metric``, ``op`` and ``bound`` (``hwtune.space.Constraint``).
    All straddling metrics are pooled from the same rounds. Returns the report with the pooled
    measurements and, per constraint text, its decision record (see :func:`remeasure_until_decided`);
    constraints whose metric the report lacks are left out.
    """
    reports = [report]
    decisions: dict[str, Mapping[str, Any]] = {}
    cons = [c for c in constraints if c.metric in report.measurements and report.measurements[c.metric].available]

    def pooled_of(metric: str) -> Measurement:
        return pool_measurements([r.measurements[metric] for r in reports if metric in r.measurements])

    while len(reports) < max(1, max_rounds) and any(straddles(pooled_of(c.metric), c.bound) for c in cons):
        reports.append(measure_again())
    measurements = dict(report.measurements)
    for c in cons:
        rounds = [r.measurements[c.metric] for r in reports if c.metric in r.measurements]
        measurements[c.metric] = pooled_of(c.metric)
        decisions[str(c)] = _record(rounds, measurements[c.metric], c.bound, c.op)
    warnings = list(report.warnings)
    if len(reports) > 1:
        warnings.append(f"measured {len(reports)} times: an interval straddled a bound ({', '.join(str(c) for c in cons)})")
    return HardwareReport(measurements, report.device, report.batches, warnings), decisions
