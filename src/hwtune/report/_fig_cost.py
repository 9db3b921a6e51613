"""The report's figures of the hardware budget: where it cut the space (feasibility map) and whether
the cost model's predictions held (calibration), and the per-epoch learning curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwtune.report._data import MARKS, ReportData, ReportTrial
from hwtune.report._figures import LAYOUT, Missing, _esc, _unit, axis, hover_text, log_ticks, scatter

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["feasibility_figure", "Calibration", "calibration", "calibration_figure", "learning_figure"]


def _param_axis(data: ReportData, name: str, values: list[Any]) -> dict[str, Any]:
    p = data.space[name] if data.space is not None and name in data.space else None
    if any(isinstance(v, str) for v in values) or type(p).__name__ == "CategoricalParam":
        return dict(type="category", categoryorder="array", categoryarray=[str(c) for c in getattr(p, "choices", sorted({str(v) for v in values}))])
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    if getattr(p, "log", False):
        return dict(type="log", **log_ticks(nums))
    if type(p).__name__ == "IntParam" and nums and max(nums) - min(nums) <= 12:
        return dict(type="linear", dtick=1)  # an int param: no ticks between its values
    return dict(type="linear")


def feasibility_figure(data: ReportData, axes: list[str]) -> "go.Figure | Missing":
    """Every proposal by status over the two hardware params ``axes`` (the most important ones), with
    the hardware constraints' verdicts: where the budget cut the space."""
    import plotly.graph_objects as go

    if not axes:
        return Missing("the study's space has no searched architecture or compression param.")
    px, py = axes[0], axes[1] if len(axes) > 1 else None
    fig = go.Figure()
    left_out = 0
    all_x: list[Any] = []
    all_y: list[Any] = []
    for mark in MARKS:
        xs, ys, texts = [], [], []
        for t in data.finished:
            if t.mark != mark:
                continue
            if px not in t.stored.params or (py is not None and py not in t.stored.params):
                left_out += 1
                continue
            x = t.stored.params[px]
            y = t.stored.params[py] if py is not None else MARKS[mark][0].split(" (")[0]
            xs.append(str(x) if isinstance(x, str) else x)
            ys.append(str(y) if isinstance(y, str) else y)
            texts.append(hover_text(t, data))
        if xs:
            fig.add_trace(scatter(mark, xs, ys, texts, size=10))
            all_x += xs
            all_y += ys
    if not all_x:
        return Missing(f"no proposal has {px}" + (f" and {py}" if py else "") + ".")
    fig.update_xaxes(title_text=px, **_param_axis(data, px, all_x))
    if py is not None:
        fig.update_yaxes(title_text=py, **_param_axis(data, py, all_y))
    else:
        fig.update_yaxes(type="category", title_text="status")
    note = f" ({left_out} proposal(s) without {px}{' or ' + py if py else ''} not drawn)" if left_out else ""
    fig.update_layout(**LAYOUT, title=dict(text=f"Proposals by status over {_esc(px)}" + (f" and {_esc(py)}" if py else "") + _esc(note), x=0.01))
    return fig


@dataclass(frozen=True)
class Calibration:
    """The cost model's predictions of one metric against the measurements of the same networks."""

    metric: str
    trials: list[ReportTrial]
    measured: list[float]
    predicted: list[float]
    low: list[float | None]
    high: list[float | None]
    source: str

    @property
    def rank_correlation(self) -> float | None:
        """Spearman's rank correlation of predicted and measured (``None`` under 3 networks or no spread)."""
        if len(self.measured) < 3:
            return None
        from scipy.stats import spearmanr

        r = spearmanr(self.measured, self.predicted).statistic
        return float(r) if r is not None and math.isfinite(float(r)) else None

    @property
    def coverage(self) -> tuple[int, int]:
        """(measurements inside their predictive interval, networks with an interval)."""
        inside = total = 0
        for m, lo, hi in zip(self.measured, self.low, self.high):
            if lo is None or hi is None:
                continue
            total += 1
            inside += lo <= m <= hi
        return inside, total


def calibration(data: ReportData, metric: str) -> Calibration:
    """Every network measured for ``metric`` (its own measurement, not a reused one) that had a prediction."""
    rows = []
    for t in data.finished:
        p, m = t.prediction(metric), t.value(metric)
        if p is None or m is None or m.predicted:
            continue
        rows.append((t, m.value, p))
    sources = sorted({p.source for _, _, p in rows})
    return Calibration(metric, [r[0] for r in rows], [r[1] for r in rows], [r[2].value for r in rows],
                       [r[2].low for r in rows], [r[2].high for r in rows], ", ".join(sources) or "no predictions")


def calibration_figure(data: ReportData) -> "go.Figure | Missing":
    """Predicted (with its interval) against measured, one panel per hardware metric that was
    predicted, each titled with the rank correlation and the interval's coverage."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cals = [c for c in (calibration(data, m) for m in data.hardware_metrics) if c.measured]
    if not cals:
        skipped = sum(1 for t in data.finished if t.status == "predicted_over_budget")
        why = "the study ran without a cost model (cost_model: none), or no network was both predicted and measured"
        return Missing(why + (f"; {skipped} network(s) were predicted over budget and never measured." if skipped else "."))
    titles = []
    for c in cals:
        rho = c.rank_correlation
        inside, total = c.coverage
        cov = f"interval covers {inside}/{total} ({100 * inside / total:.0f} %)" if total else "no intervals"
        titles.append(f"{c.metric}: rank correlation {rho:.2f}, {cov}" if rho is not None else f"{c.metric}: {len(c.measured)} network(s), {cov}")
    fig = make_subplots(rows=1, cols=len(cals), subplot_titles=[_esc(t) for t in titles], horizontal_spacing=0.12)
    for i, c in enumerate(cals, start=1):
        plus = [(h - p) if h is not None else 0.0 for p, h in zip(c.predicted, c.high)]
        minus = [(p - lo) if lo is not None else 0.0 for p, lo in zip(c.predicted, c.low)]
        inside = ["inside" if lo is not None and hi is not None and lo <= m <= hi else "outside" for m, lo, hi in zip(c.measured, c.low, c.high)]
        for verdict, color in (("inside", "#1f77b4"), ("outside", "#d62728")):
            idx = [k for k, v in enumerate(inside) if v == verdict]
            if not idx:
                continue
            fig.add_trace(go.Scatter(
                x=[c.measured[k] for k in idx], y=[c.predicted[k] for k in idx], mode="markers",
                marker=dict(color=color, size=8), name=f"measurement {verdict} the predictive interval",
                legendgroup=verdict, showlegend=i == 1,
                error_y=dict(type="data", symmetric=False, array=[plus[k] for k in idx], arrayminus=[minus[k] for k in idx], color=color, thickness=1, width=3),
                text=[hover_text(c.trials[k], data, f"predicted by {c.source}") for k in idx], hovertemplate="%{text}<extra></extra>",
            ), row=1, col=i)
        lo_all = [v for v in c.measured + c.predicted if v > 0] or [min(c.measured + c.predicted)]
        lo, hi = min(lo_all), max(c.measured + c.predicted)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="#888", dash="dot", width=1),
                                 name="predicted = measured", legendgroup="diag", showlegend=i == 1, hoverinfo="skip"), row=1, col=i)
        for con in data.constraints:
            if con.metric == c.metric and con.limit is not None:
                fig.add_vline(x=con.limit, line=dict(color="#d62728", dash="dash", width=1), row=1, col=i)
                fig.add_hline(y=con.limit, line=dict(color="#d62728", dash="dash", width=1), row=1, col=i)
        kind = axis(c.measured + c.predicted)
        fig.update_xaxes(**kind, title_text=f"measured {c.metric}{_unit(c.metric)}", row=1, col=i)
        fig.update_yaxes(**kind, title_text=f"predicted {c.metric}{_unit(c.metric)}", row=1, col=i)
    fig.update_layout(**LAYOUT, title=dict(text="Cost model: predicted before measuring against measured", x=0.01, y=0.98))
    fig.update_annotations(font_size=12)
    return fig


def learning_figure(data: ReportData) -> "go.Figure | Missing":
    """Validation error per epoch of every trained and pruned network; pruned ones end in a cross."""
    import plotly.graph_objects as go

    curves = [t for t in data.finished if t.curve and t.status in ("trained", "pruned")]
    if not curves:
        return Missing("no network reported a per-epoch validation error.")
    fig = go.Figure()
    shown = set()
    for t in curves:
        mark = "pruned" if t.status == "pruned" else t.mark
        _, _, color = MARKS[mark]
        epochs = sorted(t.curve)
        text = hover_text(t, data)
        fig.add_trace(go.Scatter(
            x=epochs, y=[t.curve[e] for e in epochs], mode="lines", line=dict(color=color, width=1.2 if mark == "pruned" else 1.6),
            opacity=0.6 if mark == "pruned" else 0.8, name=MARKS[mark][0], legendgroup=mark, showlegend=mark not in shown,
            text=[text] * len(epochs), hovertemplate="epoch %{x}: validation error %{y:.4g}<br>%{text}<extra></extra>",
        ))
        shown.add(mark)
    pruned = [t for t in curves if t.status == "pruned"]
    if pruned:
        ends = [t.last_error() for t in pruned]
        fig.add_trace(go.Scatter(
            x=[e[0] for e in ends if e], y=[e[1] for e in ends if e], mode="markers", name="where a network was pruned",
            marker=dict(symbol="x", size=10, color="#333"), text=[hover_text(t, data, "pruned here") for t in pruned],
            hovertemplate="%{text}<extra></extra>",
        ))
    ys = [v for t in curves for v in t.curve.values()]
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="validation error", **axis(ys))
    fig.update_layout(**LAYOUT, title=dict(text=f"Learning curves ({len(curves)} networks, {len(pruned)} pruned)", x=0.01))
    return fig
