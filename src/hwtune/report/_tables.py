"""The table of one trial in the summary: hyperparameters, every objective and constraint metric, and
the always-shown measurements, each value with where it came from.

Rows are labelled in words from one table (:data:`LABELS`, one label per metric of the vocabulary), so
that no two rows share a label: the parameter *count* (metric ``params``) is never confused with the
hyperparameters. The metric's own name appears in the goal column beside objectives and constraints,
written as in the study file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator

from rich.markup import escape
from rich.table import Table

from hwtune.space._metrics import METRICS
from hwtune.space._params import FixedParam

if TYPE_CHECKING:
    from hwtune.hardware import Measurement
    from hwtune.space import SearchSpace
    from hwtune.study import StudySummary, TrialRecord

__all__ = ["LABELS", "ALWAYS_SHOWN", "format_params", "metric_label", "models_table", "record_table"]

LABELS: dict[str, str] = {
    "error": "validation error",
    "accuracy": "validation accuracy",
    "test_error": "test error",
    "latency_ms": "latency per batch",
    "throughput_sps": "throughput",
    "power_w": "power while inferring",
    "energy_mj": "energy per inference",
    "peak_mem_mb": "peak memory",
    "params": "parameter count",
    "flops": "FLOPs per sample",
    "size_mb": "serialized model size",
}
"""Row label of each metric (metrics missing here fall back to :attr:`MetricInfo.description`)."""

ALWAYS_SHOWN = ("error", "test_error", "latency_ms", "throughput_sps", "size_mb", "params")
"""Shown after the objective and constraint metrics, when the trial has them."""

TRAINING_SOURCE = "measured:training"
NOT_MEASURED = "not measured"

Row = tuple[str, str, str, str]
"""label, value, source, goal (objective or constraint text)."""


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def metric_label(name: str) -> str:
    """The words a report labels metric ``name`` with."""
    if name in LABELS:
        return LABELS[name]
    return METRICS[name].description if name in METRICS else name


_OUTSIDE = "not in the study's space"
_PARAM_GROUPS = (("searched hyperparameters", "searched"), ("fixed hyperparameters", "fixed"), ("other hyperparameters", _OUTSIDE))
"""label and source of each group of hyperparameters, in the order printed."""


def _split_params(params: dict[str, Any], space: "SearchSpace | None") -> Iterator[Row]:
    """Hyperparameter rows: searched ones, fixed ones (by the study's space), any others."""
    if space is None:
        yield ("hyperparameters", format_params(params) or "none", "searched or fixed (space not known)", "")
        return
    groups: dict[str, dict[str, Any]] = {source: {} for _, source in _PARAM_GROUPS}
    for k, v in params.items():
        source = _OUTSIDE if k not in space else "fixed" if isinstance(space[k], FixedParam) else "searched"
        groups[source][k] = v
    for label, source in _PARAM_GROUPS:
        if groups[source]:
            yield (label, format_params(groups[source]), source, "")
    if not params:
        yield ("hyperparameters", "none", "", "")


def _strip_source(m: "Measurement") -> str:
    """``Measurement.format()`` without its trailing ``(source, n=...)``: the source has its own column."""
    text = m.format()
    suffix = f" ({m.source}" + (f", n={m.repeats}" if m.repeats else "") + ")"
    return text[: -len(suffix)] if text.endswith(suffix) else text


def _hardware_cells(m: "Measurement | None") -> tuple[str, str]:
    if m is None:
        return NOT_MEASURED, "not in the trial's record"
    if not m.available:
        return f"unavailable ({m.note})" if m.note else "unavailable", m.source
    src = m.source + (f", {m.repeats} repeats" if m.repeats else "")
    if "reused_from_trial" in m.extra:
        src += f", reused from trial {m.extra['reused_from_trial']}"
    return _strip_source(m), src


def _quality_cells(value: float | None) -> tuple[str, str]:
    if value is None:
        return NOT_MEASURED, "not in the trial's record"
    if isinstance(value, float) and math.isnan(value):
        return "unavailable (not a number)", TRAINING_SOURCE
    return f"{value:.4f}", TRAINING_SOURCE


def _metric_rows(name: str, rec: "TrialRecord", goal: str) -> Iterator[Row]:
    label = metric_label(name)
    info = METRICS.get(name)
    if info is None or info.kind == "quality":
        yield (label, *_quality_cells(rec.metrics.get(name)), goal)
        return
    first = rec.hardware.get(name)
    yield (label, *_hardware_cells(first), goal)
    final = getattr(rec, "final_hardware", {}).get(name)
    same = first is not None and final is not None and (final.value, final.source) == (first.value, first.source)
    if final is not None and not same:  # compressed or kept: measured untrained (the budget's decision) and again trained
        # (a count equal to the first one, e.g. the parameters of the same network, says nothing new)
        yield (f"  {label}: measured again after training", *_hardware_cells(final), "")
    if name in rec.predicted:
        p = rec.predicted[name]
        yield (f"  {label}: predicted before measuring", _strip_source(p) if p.available else _hardware_cells(p)[0], p.source, "")


def _goals(summary: "StudySummary") -> dict[str, str]:
    """metric -> what the study asks of it, objectives first, then constraints, in the study's order."""
    goals: dict[str, list[str]] = {}
    for o in summary.objectives:
        goals.setdefault(o.metric, []).append(f"objective: {o.direction} {o.metric}")
    for c in summary.constraints:
        goals.setdefault(c.metric, []).append(f"constraint: {c}")
    return {k: "; ".join(v) for k, v in goals.items()}


def record_rows(rec: "TrialRecord", summary: "StudySummary") -> list[Row]:
    """Every row of ``rec``'s table, in a stable order, each metric once."""
    rows = list(_split_params(rec.params, summary.space))
    goals = _goals(summary)
    for name, goal in goals.items():
        rows.extend(_metric_rows(name, rec, goal))
    for name in ALWAYS_SHOWN:
        if name not in goals and (name in rec.metrics or name in rec.hardware):
            rows.extend(_metric_rows(name, rec, ""))
    row = _model_row(rec, summary)
    if row is not None:
        rows.append(row)
    return rows


def _size(n: Any) -> str:
    return f"{n / 1e6:.2f} MB" if isinstance(n, int) and n >= 100_000 else f"{n / 1e3:.1f} kB" if isinstance(n, int) else "size unknown"


def _model_row(rec: "TrialRecord", summary: "StudySummary") -> Row | None:
    """Where the trial's trained weights are, or why none are kept (when the study keeps models)."""
    models = getattr(summary, "models", None)
    if models is None:
        return None
    m = models.records.get(rec.number)
    if m is None or not m.kept:
        return ("trained weights", "no model kept", m.reason if m is not None and m.reason else "not recorded with the trial", "")
    return ("trained weights", m.path or str(m.artifact_id), f"Optuna artifact {m.artifact_id}, {_size(m.bytes)}", "")


def models_table(summary: "StudySummary") -> Table:
    """The kept models: trial, the study's objective values, the weights' file (or artifact id) and size."""
    t = Table(title="Kept trained weights", show_header=True, header_style="bold")
    for col in ("trial", *(f"{o.metric}" for o in summary.objectives), "file", "size"):
        t.add_column(col, overflow="fold")
    values = {r.number: r.values for r in summary.records}
    models = getattr(summary, "models", None)
    for m in models.kept if models is not None else []:
        vals = values.get(m.trial) or ()
        cells = [f"{v:.4g}" for v in vals] + ["-"] * (len(summary.objectives) - len(vals))
        t.add_row(*(escape(c) for c in (str(m.trial), *cells, m.path or f"artifact {m.artifact_id}", _size(m.bytes))))
    return t


def record_table(rec: "TrialRecord", summary: "StudySummary", title: str) -> Table:
    """A Rich table of ``rec``: what, value, source, and the study's objective or constraint on it."""
    t = Table(title=f"{title} (trial {rec.number})", show_header=True, header_style="bold")
    for col in ("what", "value", "source", "objective / constraint"):
        t.add_column(col, overflow="fold")  # a narrow terminal wraps a source, never cuts it to "measured:traini…"
    for row in record_rows(rec, summary):
        t.add_row(*(escape(cell) for cell in row))
    return t
