"""The report's figures of the search itself: the error-vs-hardware front and the best feasible error
over trained networks and wall time.

Each builder takes a :class:`~hwtune.report._data.ReportData` and returns a plotly ``Figure`` (or
``None`` when the study holds nothing to draw, with the reason in :class:`Missing`). Statuses are drawn
with one look everywhere (:data:`~hwtune.report._data.MARKS`), and every point's hover shows its
params and the source of each of its numbers. plotly is imported here only (the ``report`` extra).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from hwtune.report._data import MARKS, ReportData, ReportTrial, Value
from hwtune.report._tables import metric_label
from hwtune.space._metrics import METRICS

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["Missing", "front_figures", "progress_figure", "hover_text", "axis_type", "axis", "log_ticks", "scatter", "FONT", "LAYOUT"]

FONT = dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif", size=13)
"""Fonts installed with the system: the report loads none from the network."""
LAYOUT: dict[str, Any] = dict(template="plotly_white", font=FONT, margin=dict(l=70, r=20, t=60, b=55, autoexpand=True), height=460,
                              legend=dict(orientation="h", yanchor="top", y=-0.15, x=0.01))
NOT_TRAINED = "not trained"


@dataclass(frozen=True)
class Missing:
    """Why a figure is not drawn (shown in the report in its place)."""

    reason: str


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=False)


def _fmt_param(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def hover_text(t: ReportTrial, data: ReportData, extra: str = "") -> str:
    """Hover of one trial: status, every study metric with its source, the params (HTML-escaped)."""
    lines = [f"<b>trial {t.number}</b>: {_esc(MARKS[t.mark][0])}"]
    if extra:
        lines.append(_esc(extra))
    for m in [data.quality_metric, *[x for x in data.hardware_metrics if x != data.quality_metric]]:
        v = t.value(m)
        if v is not None:
            lines.append(f"{_esc(m)} = {_esc(v.text())}")
        p = t.prediction(m)
        if p is not None:
            lines.append(f"{_esc(m)} predicted before measuring = {_esc(p.text())}")
        if v is None and p is None:
            lines.append(f"{_esc(m)}: not measured")
    if t.stored.failure:
        lines.append(_esc(t.stored.failure[:160]))
    params = t.stored.params
    shown = list(params.items())[:14]
    lines.append("params: " + ", ".join(f"{_esc(k)}={_esc(_fmt_param(v))}" for k, v in shown[:4]))
    for i in range(4, len(shown), 4):
        lines.append("&nbsp;&nbsp;" + ", ".join(f"{_esc(k)}={_esc(_fmt_param(v))}" for k, v in shown[i:i + 4]))
    if len(params) > len(shown):
        lines.append(f"... and {len(params) - len(shown)} more params")
    return "<br>".join(lines)


def axis_type(values: Iterable[float]) -> str:
    """``log`` when positive values span a factor of 20 or more, else ``linear``."""
    vs = [v for v in values if v is not None and math.isfinite(v)]
    if len(vs) >= 2 and min(vs) > 0 and max(vs) / min(vs) >= 20:
        return "log"
    return "linear"


def log_ticks(values: Iterable[float]) -> dict[str, Any]:
    """Ticks at 1, 2 and 5 times a power of ten across ``values`` (readable labels on a log axis)."""
    vs = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not vs:
        return {}
    lo, hi = min(vs), max(vs)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo / 1.6 <= t <= hi * 1.6]
    return dict(tickvals=ticks, ticktext=[f"{t:.3g}" for t in ticks]) if len(ticks) >= 2 else {}


def axis(values: Iterable[float]) -> dict[str, Any]:
    """Axis settings for ``values``: log (with 1-2-5 ticks) when they span decades, else linear."""
    vs = list(values)
    kind = axis_type(vs)
    return dict(type=kind, **log_ticks(vs)) if kind == "log" else dict(type=kind)


def scatter(mark: str, xs: list[Any], ys: list[Any], texts: list[str], *, name: str | None = None, size: int = 9,
            legendgroup: str | None = None, showlegend: bool = True, **kw: Any) -> "go.Scatter":
    """Markers of one status, drawn as in every figure."""
    import plotly.graph_objects as go

    label, symbol, color = MARKS[mark]
    line_width = 0 if symbol in ("circle",) else 1.6
    return go.Scatter(
        x=xs, y=ys, mode="markers", name=name or f"{label} ({len(xs)})", text=texts, hovertemplate="%{text}<extra></extra>",
        marker=dict(symbol=symbol, color=color, size=size, line=dict(width=line_width, color=color)),
        legendgroup=legendgroup or mark, showlegend=showlegend, **kw,
    )


def _unit(metric: str) -> str:
    u = METRICS[metric].unit if metric in METRICS else ""
    return f" ({u})" if u else ""


def _quality_limits(data: ReportData, quality: str) -> list[tuple[float, str]]:
    """Constraints on the quality metric, as limits on the plotted one (accuracy >= a is error <= 1 - a)."""
    out = []
    for c in data.constraints:
        if c.limit is None or c.metric not in ("error", "accuracy"):
            continue
        limit = c.limit if c.metric == quality else 1.0 - c.limit
        out.append((limit, str(c)))
    return out


def _front_line(points: list[tuple[float, float]], x_lower: bool, y_lower: bool) -> tuple[list[float], list[float]]:
    """The non-dominated points of ``points`` as a step line, sorted by x."""
    pts = sorted(points, key=lambda p: (p[0] if x_lower else -p[0], p[1] if y_lower else -p[1]))
    xs, ys, best = [], [], None
    for x, y in pts:
        if best is None or (y < best if y_lower else y > best):
            best = y
            xs.append(x)
            ys.append(y)
    return xs, ys


def front_figure(data: ReportData, metric: str) -> "go.Figure | Missing":
    """Quality against hardware ``metric`` for every network: trained and pruned ones above, the ones
    never trained (over budget, predicted over budget, failed) on a strip below; constraint lines;
    the feasible front as a step line."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    quality = data.quality_metric
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.04)
    xs_all: list[float] = []
    feasible_pts: list[tuple[float, float]] = []
    by_mark: dict[str, tuple[list[Any], list[Any], list[str]]] = {}
    strip: dict[str, tuple[list[Any], list[Any], list[str]]] = {}
    for t in data.finished:
        v = t.value(metric, predictions=True)
        if v is None:
            continue
        q = t.value(quality)
        extra = ""
        if q is None and t.status == "pruned" and t.last_error() is not None:
            epoch, err = t.last_error()  # type: ignore[misc]
            q = Value(err if quality == "error" else 1.0 - err, f"validation at epoch {epoch}, when pruned")
            extra = f"pruned after epoch {epoch}"
        if v.predicted:
            extra = (extra + "; " if extra else "") + f"{metric} is the prediction (never measured)"
        target = by_mark if q is not None else strip
        xs, ys, texts = target.setdefault(t.mark, ([], [], []))
        xs.append(v.value)
        ys.append(q.value if q is not None else MARKS[t.mark][0].split(" (")[0])
        texts.append(hover_text(t, data, extra))
        xs_all.append(v.value)
        if t.feasible and q is not None:
            feasible_pts.append((v.value, q.value))
    if not xs_all:
        return Missing(f"no network of the study has a {metric} value.")
    x_lower = METRICS[metric].better == "lower" if metric in METRICS else True
    y_lower = METRICS[quality].better == "lower" if quality in METRICS else True
    if len(feasible_pts) >= 2:
        fx, fy = _front_line(feasible_pts, x_lower, y_lower)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(shape="hv" if x_lower else "vh", color="#1f77b4", width=1.5, dash="dot"),
                                 name="feasible front", hoverinfo="skip"), row=1, col=1)
    for mark in MARKS:
        if mark in by_mark:
            fig.add_trace(scatter(mark, *by_mark[mark]), row=1, col=1)
        if mark in strip:
            fig.add_trace(scatter(mark, *strip[mark], showlegend=mark not in by_mark), row=2, col=1)
    xaxis = axis(xs_all)
    for c in data.constraints:
        if c.metric == metric and c.limit is not None:
            fig.add_vline(x=c.limit, line=dict(color="#d62728", dash="dash", width=1.5), row="all", col=1)
            at = math.log10(c.limit) if xaxis["type"] == "log" and c.limit > 0 else c.limit  # annotations on a log axis take log10
            fig.add_annotation(x=at, y=1.0, yref="paper", xref="x", text=_esc(str(c)), showarrow=False, yanchor="bottom",
                               font=dict(color="#d62728", size=12), xanchor="left" if x_lower else "right")
    for limit, text in _quality_limits(data, quality):
        fig.add_hline(y=limit, line=dict(color="#9467bd", dash="dash", width=1.5), row=1, col=1)
        fig.add_annotation(x=1.0, xref="paper", y=limit, yref="y", text=_esc(text), showarrow=False, xanchor="right", yanchor="bottom",
                           font=dict(color="#9467bd", size=12))
    fig.update_xaxes(**xaxis, row=1, col=1)
    fig.update_xaxes(**xaxis, title_text=f"{metric_label(metric)}: {metric}{_unit(metric)}", row=2, col=1)
    fig.update_yaxes(title_text=f"{quality}{_unit(quality)}", row=1, col=1)
    fig.update_yaxes(type="category", title_text=NOT_TRAINED, row=2, col=1)
    fig.update_layout(**{**LAYOUT, "height": 540}, title=dict(text=f"{_esc(quality)} against {_esc(metric)}: every network of the study", x=0.01))
    return fig


def front_figures(data: ReportData) -> dict[str, "go.Figure | Missing"]:
    """One front per hardware metric of the study, keyed ``front_<metric>``."""
    metrics = data.hardware_metrics
    if not metrics:
        return {"front": Missing("the study has no hardware objective or constraint, and no latency was measured.")}
    return {f"front_{m}": front_figure(data, m) for m in metrics}


def _running_best(values: list[float | None], lower: bool) -> list[float | None]:
    out, best = [], None
    for v in values:
        if v is not None and (best is None or (v < best if lower else v > best)):
            best = v
        out.append(best)
    return out


def progress_figure(data: ReportData) -> "go.Figure | Missing":
    """The best feasible value of the study's first objective against trained networks and against
    wall time since the study's first trial started: the curves compared with other tools."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    obj = data.objectives[0] if data.objectives else None
    metric = obj.metric if obj is not None else "error"
    lower = obj is None or obj.direction == "minimize"
    trained = sorted((t for t in data.finished if t.status == "trained"), key=lambda t: (t.complete or t.start or datetime.min, t.number))
    if not trained:
        return Missing("no network was trained yet.")
    starts = [t.start for t in data.trials if t.start is not None]
    t0 = min(starts) if starts else None
    vals = [t.value(metric) for t in trained]
    best = _running_best([v.value if v is not None and t.feasible else None for t, v in zip(trained, vals)], lower)
    n = list(range(1, len(trained) + 1))
    minutes = [((t.complete - t0).total_seconds() / 60.0) if t.complete is not None and t0 is not None else None for t in trained]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("against trained networks", "against wall time since the first trial started"))
    for col, xs in ((1, n), (2, minutes)):
        fig.add_trace(go.Scatter(x=xs, y=best, mode="lines", line=dict(shape="hv", color="#1f77b4", width=2.5),
                                 name=f"best feasible {metric}", legendgroup="best", showlegend=col == 1,
                                 hovertemplate=f"best feasible {metric} %{{y:.4g}}<extra></extra>"), row=1, col=col)
        for mark in ("trained", "trained_infeasible"):
            idx = [i for i, t in enumerate(trained) if t.mark == mark and vals[i] is not None]
            if idx:
                fig.add_trace(scatter(mark, [xs[i] for i in idx], [vals[i].value for i in idx],  # type: ignore[union-attr]
                                      [hover_text(trained[i], data) for i in idx], size=6, showlegend=col == 1, opacity=0.55), row=1, col=col)
    ys = [v.value for v in vals if v is not None]
    fig.update_yaxes(title_text=f"{metric}{_unit(metric)}", **axis(ys), row=1, col=1)
    fig.update_yaxes(**axis(ys), row=1, col=2)
    fig.update_xaxes(title_text="trained networks", row=1, col=1)
    fig.update_xaxes(title_text="minutes", row=1, col=2)
    fig.update_layout(**LAYOUT, title=dict(text=f"Best feasible {_esc(metric)} so far", x=0.01))
    return fig
