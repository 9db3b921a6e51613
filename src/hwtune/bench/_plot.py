"""Pictures of a bench: each method's median curve against trained networks, with the spread over
seeds, as a standalone SVG (``hwtune bench --plot``, no dependency) or an HTML page with the report's
look (``hwtune bench --html``, plotly inlined: opens offline).

The axes fit the data: the value axis spans every curve (the median and the seeds' range), and turns
logarithmic where the values span a factor of 20 or more; a regret of exactly 0 (the optimum found)
is drawn on the axis' floor, ticked "0".
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hwtune.bench._bench import BenchResult

__all__ = ["ValueAxis", "value_axis", "curves", "regret_svg", "regret_figure", "regret_html", "check_plotly"]

COLORS = ["#d62728", "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
YLABEL = {"constrained": "regret (accuracy points)", "cheapest": "latency regret (ms)", "pareto": "hypervolume share"}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
"""The report's fonts (``hwtune.report``): the system's, none fetched."""


@dataclass(frozen=True)
class ValueAxis:
    """The value axis: ``lo``..``hi`` on a linear or log scale; on a log scale values at or below
    ``floor`` (a regret of 0) are drawn at ``floor``."""

    lo: float
    hi: float
    log: bool
    ticks: list[tuple[float, str]]

    def clamp(self, v: float) -> float:
        return max(v, self.lo) if self.log else v

    def frac(self, v: float) -> float:
        """Where ``v`` lies from the bottom (0) to the top (1)."""
        v = min(max(self.clamp(v), self.lo), self.hi)
        if self.log:
            return (math.log10(v) - math.log10(self.lo)) / max(1e-12, math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / max(1e-12, self.hi - self.lo)


def _nice_linear(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo if hi > lo else abs(hi) or 1.0
    raw = span / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


def value_axis(values: list[float], mode: str) -> ValueAxis:
    """The axis that shows every one of ``values`` (finite ones; NaN skipped)."""
    vs = [v for v in values if v is not None and math.isfinite(v)]
    if not vs:
        return ValueAxis(0.0, 1.0, False, [(0.0, "0"), (1.0, "1")])
    lo, hi = min(vs), max(vs)
    positive = [v for v in vs if v > 0]
    if mode != "pareto" and positive and lo >= 0 and max(positive) / min(positive) >= 20:
        floor = 10 ** math.floor(math.log10(min(positive)))
        has_zero = any(v <= 0 for v in vs)
        if has_zero:
            floor /= 10  # a decade below the smallest regret: 0 sits apart from it
        top = 10 ** math.ceil(math.log10(hi))
        ticks = [(m * 10.0 ** e, f"{m * 10.0 ** e:.3g}") for e in range(round(math.log10(floor)), round(math.log10(top)) + 1) for m in (1, 2, 5)]
        ticks = [t for t in ticks if floor < t[0] <= top * 1.0001 and t[0] <= hi * 2.5]
        hi_axis = max(hi * 1.15, ticks[-1][0] if ticks else hi)
        return ValueAxis(floor, hi_axis, True, [(floor, "0" if has_zero else f"{floor:.3g}")] + ticks)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 0.01)
    lo_axis = 0.0 if mode != "pareto" and lo >= 0 else lo - pad
    hi_axis = hi + pad
    if mode == "pareto":
        hi_axis = min(1.0, hi_axis) if hi <= 1.0 else hi_axis
    ticks = [t for t in _nice_linear(lo_axis, hi_axis) if lo_axis - 1e-12 <= t <= hi_axis + 1e-12]
    return ValueAxis(lo_axis, hi_axis, False, [(t, f"{t:.3g}") for t in ticks])


def curves(res: "BenchResult") -> dict[str, dict[str, list[float]]]:
    """method -> {median, low, high}: the median over seeds and the seeds' range, per trained network."""
    out = {}
    for name, m in res.methods.items():
        n = min((len(r.curve) for r in m.runs), default=0)
        a = np.array([r.curve[:n] for r in m.runs], dtype=float) if n else np.zeros((0, 0))
        out[name] = {
            "median": [float(v) for v in np.median(a, axis=0)] if n else [],
            "low": [float(v) for v in a.min(axis=0)] if n else [],
            "high": [float(v) for v in a.max(axis=0)] if n else [],
        }
    return out


def check_plotly(field_name: str) -> None:
    """Raise :class:`~hwtune.exceptions.ConfigError` naming ``field_name`` when plotly is missing."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        from hwtune.exceptions import ConfigError

        raise ConfigError(field_name, "the HTML page draws with plotly, which is not installed.", "pip install 'hwtune[report]'.") from None


def _title(res: "BenchResult") -> str:
    return f"{res.problem}: median of {len(res.seeds)} seed{'s' if len(res.seeds) != 1 else ''} (band: range over seeds)"


def regret_svg(res: "BenchResult", path: str, *, width: int = 760, height: int = 440) -> None:
    """Each method's median curve (and the seeds' range, shaded) against trained networks, as an SVG."""
    cs = curves(res)
    axis = value_axis([v for c in cs.values() for k in ("median", "low", "high") for v in c[k]], res.mode)
    n = max((len(c["median"]) for c in cs.values()), default=1)
    L, R, T, B = 64, 190, 34, 48
    pw, ph = width - L - R, height - T - B

    def sx(i: float) -> float:
        return L + pw * (i - 1) / max(1, n - 1)

    def sy(v: float) -> float:
        return T + ph * (1 - axis.frac(v))

    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="{esc(FONT)}" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{L}" y="20" font-size="13">{esc(_title(res))}</text>']
    for v, label in axis.ticks:
        y = sy(v)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    xt = sorted({1, n, *[c for c in res.checkpoints if c <= n]})
    for cp in xt:
        out.append(f'<line x1="{sx(cp):.1f}" y1="{T}" x2="{sx(cp):.1f}" y2="{T + ph}" stroke="#f3f3f3"/>')
        out.append(f'<text x="{sx(cp):.1f}" y="{T + ph + 16}" text-anchor="middle">{cp}</text>')
    out += [f'<line x1="{L}" y1="{T + ph}" x2="{L + pw}" y2="{T + ph}" stroke="black"/>',
            f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + ph}" stroke="black"/>',
            f'<text x="{L + pw / 2}" y="{height - 10}" text-anchor="middle">trained networks</text>',
            f'<text x="16" y="{T + ph / 2}" transform="rotate(-90 16 {T + ph / 2})" text-anchor="middle">'
            f'{esc(YLABEL[res.mode])}{" (log scale)" if axis.log else ""}</text>']
    for j, (name, c) in enumerate(cs.items()):
        col = COLORS[j % len(COLORS)]
        if len(res.seeds) > 1 and c["median"]:
            upper = [f"{sx(i + 1):.1f},{sy(v):.1f}" for i, v in enumerate(c["high"])]
            lower = [f"{sx(i + 1):.1f},{sy(v):.1f}" for i, v in reversed(list(enumerate(c["low"])))]
            out.append(f'<polygon fill="{col}" fill-opacity="0.10" stroke="none" points="{" ".join(upper + lower)}"/>')
        pts = " ".join(f"{sx(i + 1):.1f},{sy(v):.1f}" for i, v in enumerate(c["median"]) if math.isfinite(v))
        out.append(f'<polyline fill="none" stroke="{col}" stroke-width="{2.5 if name.startswith("hwtune") else 1.5}" points="{pts}"/>')
        out.append(f'<text x="{L + pw + 10}" y="{T + 14 + 16 * j}" fill="{col}">{esc(name)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def regret_figure(res: "BenchResult") -> "go.Figure":
    """The same curves as a plotly figure, with the report's look (hover: each value and its range)."""
    import plotly.graph_objects as go

    cs = curves(res)
    axis = value_axis([v for c in cs.values() for k in ("median", "low", "high") for v in c[k]], res.mode)
    fig = go.Figure()
    for j, (name, c) in enumerate(cs.items()):
        col = COLORS[j % len(COLORS)]
        x = list(range(1, len(c["median"]) + 1))
        if len(res.seeds) > 1 and x:
            fig.add_trace(go.Scatter(x=x + x[::-1], y=[axis.clamp(v) for v in c["high"]] + [axis.clamp(v) for v in c["low"][::-1]],
                                     fill="toself", fillcolor=col, opacity=0.12, line=dict(width=0), hoverinfo="skip",
                                     legendgroup=name, showlegend=False, name=f"{name} range"))
        fig.add_trace(go.Scatter(
            x=x, y=[axis.clamp(v) for v in c["median"]], mode="lines", name=name, legendgroup=name,
            line=dict(color=col, width=2.8 if name.startswith("hwtune") else 1.6),
            customdata=list(zip(c["median"], c["low"], c["high"])),
            hovertemplate=f"{html.escape(name)} after %{{x}} trained: median %{{customdata[0]:.4g}} (seeds %{{customdata[1]:.4g}} to %{{customdata[2]:.4g}})<extra></extra>",
        ))
    yaxis: dict[str, Any] = dict(title_text=YLABEL[res.mode] + (" (log scale)" if axis.log else ""),
                                 tickvals=[t for t, _ in axis.ticks], ticktext=[s for _, s in axis.ticks])
    if axis.log:
        yaxis.update(type="log", range=[math.log10(axis.lo) - 0.02, math.log10(axis.hi)])
    else:
        yaxis.update(type="linear", range=[axis.lo, axis.hi])
    fig.update_yaxes(**yaxis)
    fig.update_xaxes(title_text="trained networks")
    fig.update_layout(template="plotly_white", font=dict(family=FONT, size=13), height=520, margin=dict(l=70, r=20, t=60, b=55),
                      title=dict(text=html.escape(_title(res)), x=0.01), legend=dict(orientation="v", x=1.01, y=1))
    return fig


def _cell(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.3f}"  # NaN: some seed trained fewer networks


def regret_html(res: "BenchResult", path: str) -> None:
    """A self-contained HTML page of :func:`regret_figure` and the summary table (plotly inlined)."""
    from plotly.offline import get_plotlyjs

    fig = regret_figure(res).to_html(full_html=False, include_plotlyjs=False, div_id="fig-bench", config={"displaylogo": False, "responsive": True})
    rows = []
    cps = res.checkpoints
    for m in res.methods.values():
        s = m.summary(cps)
        cells = "".join(f"<td>{_cell(s[f'at_{n}'])}</td>" for n in cps)
        rows.append(f"<tr><td>{html.escape(m.method)}</td>{cells}<td>{s['wasted']:.0f}</td><td>{s['measurements']:.0f}</td></tr>")
    head = "".join(f"<th>N={n}</th>" for n in cps)
    exact = ", ".join(f"{k} = {v:.6g}" for k, v in res.exact.items() if isinstance(v, (int, float)))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hwtune bench</title>"
        f"<style>body{{font-family:{FONT};margin:0 auto;max-width:1200px;padding:0 24px 40px;color:#222}}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<h1>hwtune bench</h1><p>{html.escape(YLABEL[res.mode])} after N trained networks, median over {len(res.seeds)} seeds. Exact: {html.escape(exact)}.</p>"
        f'<div class="figure" data-figure="bench">{fig}</div>'
        f"<table><thead><tr><th>method</th>{head}<th>wasted</th><th>measured</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
