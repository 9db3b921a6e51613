"""What the HTML report reads from a stored study, gathered once, read-only.

Every figure of :mod:`hwtune.report._html` draws from one :class:`ReportData`: the stored trials as the
trial vocabulary reads them (:func:`hwtune.vocabulary.read_trial`), with what Optuna keeps beside them
(per-epoch errors, start and end times, distributions). Each value is looked up with its source
(:meth:`ReportTrial.value`): measured by what, counted, or predicted by which model; a missing value is
``None``, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from hwtune.space._metrics import METRICS
from hwtune.vocabulary import CURVE_ATTR, DEVICE_ATTR, StoredTrial, read_trial

if TYPE_CHECKING:
    from hwtune.space import Constraint, Objective, SearchSpace
    from hwtune.study import Study

__all__ = ["Value", "ReportTrial", "ReportData", "collect", "MARKS", "mark_of"]

TRAINING_SOURCE = "measured:training"


@dataclass(frozen=True)
class Value:
    """One number with where it came from (``low``/``high``: its interval, when it has one)."""

    value: float
    source: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    predicted: bool = False

    def text(self) -> str:
        """``0.187 ms [0.183, 0.192] (measured:timer)``: value, unit, interval, source."""
        v = f"{self.value:.4g}" + (f" {self.unit}" if self.unit else "")
        if self.low is not None and self.high is not None:
            v += f" [{self.low:.4g}, {self.high:.4g}]"
        return f"{v} ({self.source})"


MARKS: dict[str, tuple[str, str, str]] = {
    "trained": ("trained, within every constraint", "circle", "#1f77b4"),
    "trained_infeasible": ("trained, violates a constraint", "circle-open", "#9467bd"),
    "pruned": ("pruned during training", "diamond-open", "#7f7f7f"),
    "over_budget": ("over budget (measured, not trained)", "x", "#d62728"),
    "predicted_over_budget": ("predicted over budget (skipped: not measured)", "triangle-up-open", "#ff7f0e"),
    "failed": ("failed", "square-open", "#222222"),
    "interrupted": ("interrupted (proposed again)", "star-open", "#8c564b"),
}
"""mark -> (legend label, plotly marker symbol, colour): one look for a status in every figure."""


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class ReportTrial:
    """One stored trial with what the report draws from it.

    Attributes:
        stored: the trial as the vocabulary reads it (status, params, measurements, predictions...).
        searched: Optuna's own params (the searched ones) and their distributions.
        curve: epoch -> validation error, as reported during training.
        start, complete: wall-clock start and end (``None`` when not recorded).
        feasible: trained and within every constraint.
    """

    stored: StoredTrial
    searched: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict, repr=False)
    curve: dict[int, float] = field(default_factory=dict)
    start: datetime | None = None
    complete: datetime | None = None
    feasible: bool = False

    @property
    def number(self) -> int:
        return self.stored.number

    @property
    def status(self) -> str:
        return self.stored.status

    @property
    def mark(self) -> str:
        return mark_of(self)

    def value(self, metric: str, *, predictions: bool = False) -> Value | None:
        """``metric``'s value with its source: the measurement, else (``predictions``) the cost model's
        prediction made before measuring; ``None`` when the trial has neither."""
        s = self.stored
        m = s.hardware.get(metric)
        if isinstance(m, Mapping) and _finite(m.get("value")) is not None:
            src = str(m.get("source") or "source not recorded")
            reused = (m.get("extra") or {}).get("reused_from_trial") if isinstance(m.get("extra"), Mapping) else None
            if reused is not None:
                src += f", reused from trial {reused}"
            return Value(float(m["value"]), src, str(m.get("unit") or ""), _finite(m.get("ci_low")), _finite(m.get("ci_high")),
                         predicted=str(m.get("source", "")).startswith("predicted:"))
        q = _finite(s.metrics.get(metric))
        if q is not None:
            return Value(q, TRAINING_SOURCE, METRICS[metric].unit if metric in METRICS else "")
        if predictions:
            return self.prediction(metric)
        return None

    def prediction(self, metric: str) -> Value | None:
        """The cost model's prediction of ``metric`` made before measuring (``predicted:<model>``)."""
        p = self.stored.predicted.get(metric)
        if not isinstance(p, Mapping) or _finite(p.get("value")) is None:
            return None
        return Value(float(p["value"]), str(p.get("source") or "predicted"), str(p.get("unit") or ""),
                     _finite(p.get("ci_low")), _finite(p.get("ci_high")), predicted=True)

    def last_error(self) -> tuple[int, float] | None:
        """(epoch, validation error) of the last reported epoch (where a pruned trial stopped)."""
        if not self.curve:
            return None
        epoch = max(self.curve)
        return epoch, self.curve[epoch]


def mark_of(t: ReportTrial) -> str:
    """The mark a trial is drawn with (:data:`MARKS`): its status, trained split by feasibility."""
    if t.status == "trained":
        return "trained" if t.feasible else "trained_infeasible"
    return t.status if t.status in MARKS else "failed"


def _curve(frozen: Any) -> dict[int, float]:
    iv = {int(k): float(v) for k, v in (getattr(frozen, "intermediate_values", None) or {}).items() if _finite(v) is not None}
    if iv:
        return iv
    raw = frozen.user_attrs.get(CURVE_ATTR)  # the cost-aware pruner's own record (Pareto studies)
    if isinstance(raw, Mapping):
        return {int(k): float(v) for k, v in raw.items() if _finite(v) is not None}
    if isinstance(raw, list):
        out: dict[int, float] = {}
        for i, v in enumerate(raw):
            if isinstance(v, (list, tuple)) and len(v) == 2 and _finite(v[1]) is not None:
                out[int(v[0])] = float(v[1])
            elif _finite(v) is not None:
                out[i + 1] = float(v)
        return out
    return {}


@dataclass
class ReportData:
    """A stored study as the report reads it."""

    name: str
    storage: str
    objectives: list["Objective"]
    constraints: list["Constraint"]
    space: "SearchSpace | None"
    trials: list[ReportTrial]
    config: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    machine_speed: dict[str, Any] | None = None

    @property
    def finished(self) -> list[ReportTrial]:
        return [t for t in self.trials if t.status not in ("running", "waiting")]

    @property
    def hardware_metrics(self) -> list[str]:
        """The study's hardware metrics: its hardware objectives and constraints, in that order; else
        the latency, when measured."""
        out: list[str] = []
        for m in [o.metric for o in self.objectives] + [c.metric for c in self.constraints]:
            if m in METRICS and METRICS[m].kind == "hardware" and m not in out:
                out.append(m)
        if not out and any(t.value("latency_ms") for t in self.trials):
            out.append("latency_ms")
        return out

    @property
    def quality_metric(self) -> str:
        """The quality metric drawn against the hardware (the study's first quality objective, else ``error``)."""
        for o in self.objectives:
            if METRICS.get(o.metric) is not None and METRICS[o.metric].kind == "quality":
                return o.metric
        return "error"

    def hardware_params(self) -> list[str]:
        """Searched params that shape the network (role architecture or compression)."""
        if self.space is None:
            return []
        from hwtune.space._params import FixedParam

        return [n for n in self.space if not isinstance(self.space[n], FixedParam) and self.space[n].role in ("architecture", "compression")]


def collect(study: "Study") -> ReportData:
    """Read everything the report shows from ``study`` (an opened or stored study); writes nothing."""
    ost = study.optuna_study
    frozen = ost.get_trials(deepcopy=False)
    constraints = list(study.constraints)
    trials: list[ReportTrial] = []
    device: dict[str, Any] = {}
    for f in frozen:
        s = read_trial(f)
        feasible = s.status == "trained" and all(v <= 0 for v in s.constraints.values())
        trials.append(ReportTrial(s, dict(f.params), dict(f.distributions), _curve(f), f.datetime_start, f.datetime_complete, feasible))
        d = f.user_attrs.get(DEVICE_ATTR)
        if not device and isinstance(d, Mapping):
            device = dict(d)
    cfg = ost.user_attrs.get("hwtune:config")
    summary = study.summary()  # its storage URL is the one printed (a password is never shown)
    return ReportData(
        name=study.name, storage=summary.storage, objectives=list(study.objectives), constraints=constraints,
        space=study.space, trials=trials, config=dict(cfg) if isinstance(cfg, Mapping) else {}, device=device,
        machine_speed=getattr(summary, "machine_speed", None),
    )
