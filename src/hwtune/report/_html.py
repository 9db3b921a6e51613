"""``hwtune report``: one self-contained HTML file of a stored study, and the same figures as PNG.

The file opens offline: plotly.js is inlined once (no CDN), the fonts are the system's, and nothing
is fetched. It holds, in order: the study's goal and counts; the front (quality against each hardware
metric, constraint lines, every status its own mark); the best feasible value against trained
networks and wall time; the feasibility map over the two most important hardware params; the cost
model's calibration; param importance for the quality and each hardware metric; the learning curves;
the sortable trial table with every number's source; the device. Figures are built in
``_figures.py``, ``_fig_cost.py`` and ``_importance.py``; the table in ``_trial_table.py``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwtune.exceptions import ConfigError
from hwtune.report._data import ReportData, collect
from hwtune.report._figures import Missing

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hwtune.study import Study

__all__ = ["Section", "Report", "build_report", "write_html", "write_png", "check_plotly"]

PLOTLY_FIX = "pip install 'hwtune[report]' (plotly and kaleido)."


def check_plotly(field_name: str = "report") -> None:
    """Raise :class:`ConfigError` naming ``field_name`` when plotly is not installed."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ConfigError(field_name, "the HTML report draws with plotly, which is not installed.", PLOTLY_FIX) from None


@dataclass
class Section:
    """One part of the report: a title, what it shows and how to read it, and its figures."""

    id: str
    title: str
    caption: str
    figures: dict[str, "go.Figure | Missing"] = field(default_factory=dict)
    html: str = ""


@dataclass
class Report:
    data: ReportData
    sections: list[Section]

    @property
    def figures(self) -> dict[str, "go.Figure"]:
        """Every drawn figure by key (``front_latency_ms``, ``progress``...), in the report's order."""
        return {k: f for s in self.sections for k, f in s.figures.items() if not isinstance(f, Missing)}


def build_report(study: "Study | ReportData") -> Report:
    """Every section of the report of ``study`` (a stored study from ``hwtune.study.stored_study``)."""
    check_plotly()
    from hwtune.report._fig_cost import calibration_figure, feasibility_figure, learning_figure
    from hwtune.report._figures import front_figures, progress_figure
    from hwtune.report._importance import hardware_axes, importance_figures
    from hwtune.report._trial_table import device_html, trial_table_html

    data = study if isinstance(study, ReportData) else collect(study)
    q = data.quality_metric
    axes = hardware_axes(data)
    sections = [
        Section("front", "The front", f"{q} against each hardware metric of the study, one point per network. Networks that were "
                "never trained (measured over budget, predicted over budget and skipped, failed) sit on the strip below, at their "
                "measured (or, when skipped, predicted) cost. Dashed lines: the constraints. Dotted: the feasible front. Hover a point "
                "for its params and the source of every number.", front_figures(data)),
        Section("progress", "Best feasible network so far", "The best feasible value of the study's first objective after each "
                "trained network and over wall time (the curves to compare with other tools); faint points: each trained network.",
                {"progress": progress_figure(data)}),
        Section("feasibility", "Where the budget cut the space", "Every proposal by status over the two hardware params that "
                "matter most for the first hardware metric (Optuna's fANOVA over the measured networks).",
                {"feasibility": feasibility_figure(data, axes)}),
        Section("calibration", "Did the cost model's predictions hold?", "For every measured network that the cost model "
                "predicted before it was measured: the prediction with its 95 % interval against the measurement; Spearman's rank "
                "correlation and how many measurements fell inside their interval.", {"calibration": calibration_figure(data)}),
        Section("importance", "Param importance", f"Optuna's fANOVA importance of each searched param for {q} (trained "
                "networks) and, separately, for each hardware metric (every measured network, over budget ones included; over the "
                "architecture and compression params, the only ones that change a hardware cost).",
                importance_figures(data)),
        Section("learning", "Learning curves", "Validation error after each epoch; a pruned network's curve ends in a cross.",
                {"learning": learning_figure(data)}),
        Section("trials", "Every trial", "Click a column's header to sort. Each value's source is under it (and in its tooltip); "
                "a predicted value is labelled so; a value the trial lacks reads 'not measured', never 0.",
                html=trial_table_html(data)),
        Section("device", "Device", "Where the networks were measured, as recorded with the study.", html=device_html(data)),
    ]
    return Report(data, sections)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#222}
h1{font-size:1.6em;margin:24px 0 4px}h2{font-size:1.25em;margin:36px 0 4px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.caption{color:#555;margin:4px 0 10px;max-width:980px}.meta{color:#444}.meta td{padding:1px 12px 1px 0;vertical-align:top}
.missing{border:1px dashed #bbb;padding:14px;color:#666;background:#fafafa;margin:8px 0}
table.trials{border-collapse:collapse;font-size:12.5px;width:100%}table.trials th{position:sticky;top:0;background:#f4f4f4;cursor:pointer;text-align:left;padding:4px 6px;border-bottom:2px solid #ccc;white-space:nowrap}
table.trials td{padding:3px 6px;border-bottom:1px solid #eee;vertical-align:top}table.trials td small{color:#777;display:block}
.scroll{max-height:640px;overflow:auto;border:1px solid #e4e4e4}
.s-trained{color:#1f77b4}.s-over_budget{color:#d62728}.s-predicted_over_budget{color:#ff7f0e}.s-pruned{color:#7f7f7f}.s-failed{color:#222}
nav a{margin-right:14px;color:#1f77b4;text-decoration:none}
"""

_SORT_JS = """
document.querySelectorAll('table.trials').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('data-dir') !== 'asc';
      table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        if (x === null || x === '') return 1; if (y === null || y === '') return -1;
        var fx = parseFloat(x), fy = parseFloat(y);
        var c = (!isNaN(fx) && !isNaN(fy)) ? fx - fy : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _esc(s: Any) -> str:
    return html.escape(str(s))


def _figure_html(key: str, fig: "go.Figure | Missing") -> str:
    if isinstance(fig, Missing):
        return f'<div class="missing" data-figure="{_esc(key)}" data-missing="1">Not drawn: {_esc(fig.reason)}</div>'
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}",
                      config={"displaylogo": False, "responsive": True})
    return f'<div class="figure" data-figure="{_esc(key)}">{div}</div>'


def _header(data: ReportData) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        version = package_version("hwtune")
    except PackageNotFoundError:  # run from a source tree that is not installed
        version = "(not installed)"
    counts: dict[str, int] = {}
    for t in data.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    feasible = sum(t.feasible for t in data.trials)
    rows = [
        ("objective", ", ".join(f"{o.direction} {o.metric}" for o in data.objectives) or "not recorded"),
        ("constraints", "; ".join(str(c) for c in data.constraints) or "none"),
        ("trials", ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])) + f"; {feasible} feasible"),
        ("storage", data.storage),
        ("written", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by hwtune {version} (read-only: the study was not changed)"),
    ]
    cells = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<h1>hwtune study <code>{_esc(data.name)}</code></h1><table class="meta">{cells}</table>'


def render_html(report: Report) -> str:
    """The whole self-contained page (plotly.js inlined once)."""
    from plotly.offline import get_plotlyjs

    nav = "".join(f'<a href="#{s.id}">{_esc(s.title)}</a>' for s in report.sections)
    body = [_header(report.data), f"<nav>{nav}</nav>"]
    for s in report.sections:
        body.append(f'<section id="{s.id}"><h2>{_esc(s.title)}</h2><p class="caption">{_esc(s.caption)}</p>')
        figs = [_figure_html(k, f) for k, f in s.figures.items()]
        body.extend(figs)
        body.append(s.html + "</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>hwtune report: {_esc(report.data.name)}</title>"
        f"<style>{_CSS}</style><script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        + "\n".join(body)
        + f"<script>{_SORT_JS}</script></body></html>\n"
    )


def write_html(study: "Study | ReportData | Report", path: str | Path) -> Report:
    """Write the report of ``study`` to ``path`` (one self-contained HTML file) and return it."""
    report = study if isinstance(study, Report) else build_report(study)
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(report), encoding="utf-8")
    except OSError as e:
        raise ConfigError("--out", f"cannot write {str(out)!r}: {e.strerror or e}.", "give a path in a folder you can write to.") from None
    return report


PNG_FIX = "install the report extra (pip install 'hwtune[report]', which brings kaleido), or leave out --png."


def write_png(report: Report, folder: str | Path, *, field_name: str = "--png", scale: float = 2.0) -> list[Path]:
    """Write every drawn figure of ``report`` as ``<folder>/<key>.png`` (kaleido, which drives a
    Chrome or Chromium of the system). Returns the files written.

    Raises:
        ConfigError: naming ``field_name`` when kaleido or a browser for it is missing, or the folder
            cannot be written.
    """
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise ConfigError(field_name, "writing PNG images needs the kaleido package, which is not installed.", PNG_FIX) from None
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(field_name, f"cannot create the folder {str(out)!r}: {e.strerror or e}.", "give a folder you can write to.") from None
    written: list[Path] = []
    for key, fig in report.figures.items():
        path = out / f"{key}.png"
        width = int(fig.layout.width or 1100)
        height = int(fig.layout.height or 460)
        try:
            fig.write_image(str(path), format="png", width=width, height=height, scale=scale)
        except Exception as e:  # kaleido raises its own types (no Chrome, a crashed browser)
            text = f"{type(e).__name__}: {e}".strip()
            if "chrom" in text.lower() or "browser" in text.lower():
                raise ConfigError(field_name, f"kaleido found no Chrome or Chromium to draw the PNG images with ({text[:300]}).",
                                  "install one (e.g. apt-get install chromium, or run `plotly_get_chrome`), or leave out --png.") from None
            raise ConfigError(field_name, f"kaleido could not write {str(path)!r}: {text[:300]}.", PNG_FIX) from None
        written.append(path)
    return written
