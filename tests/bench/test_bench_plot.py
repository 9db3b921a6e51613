"""``hwtune bench --plot`` / ``--html`` (issue 18): the axes fit the data (a regret of ~40 points is no
longer drawn on an axis that stops at 5), log scale where regrets span decades."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from hwtune.bench._bench import BenchResult, MethodResult, RunResult
from hwtune.bench._bench_cli import bench_command
from hwtune.bench._plot import regret_svg, value_axis


def _result(curves: dict[str, list[list[float]]], mode: str = "constrained") -> BenchResult:
    res = BenchResult("synthetic", mode, budget=max(len(c[0]) for c in curves.values()), seeds=list(range(len(next(iter(curves.values()))))))
    for name, runs in curves.items():
        res.methods[name] = MethodResult(name, [RunResult(name, s, c, 0, 0, len(c), len(c), 0.0, 0.0) for s, c in enumerate(runs)])
    return res


def _points(svg: str) -> dict[str, list[tuple[float, float]]]:
    """name -> the polyline's points, in the order of the legend."""
    lines = re.findall(r'<polyline [^>]*points="([^"]*)"', svg)
    names = re.findall(r'<text x="[\d.]+" y="[\d.]+" fill="[^"]+">([^<]+)</text>', svg)
    return {n: [tuple(map(float, p.split(","))) for p in pts.split()] for n, pts in zip(names, lines)}


def _plot_area(svg: str) -> tuple[float, float]:
    """(top, bottom) y of the plot area, from the y axis line."""
    m = re.search(r'<line x1="([\d.]+)" y1="([\d.]+)" x2="\1" y2="([\d.]+)" stroke="black"/>', svg)
    assert m, "no y axis"
    return float(m.group(2)), float(m.group(3))


def test_regrets_of_forty_points_fit_the_axis_instead_of_being_clipped(tmp_path):
    # the issue: --budget 20 --seeds 2 left medians at ~40 on an axis that stopped at 5
    res = _result({"random-unaware": [[42.0] * 12 + [3.0] * 8, [40.0] * 12 + [1.5] * 8], "hwtune": [[3.0, 1.8, 1.2] + [1.2] * 17] * 2})
    path = tmp_path / "r.svg"
    regret_svg(res, str(path))
    svg = path.read_text()
    top, bottom = _plot_area(svg)
    pts = _points(svg)
    ys = [y for p in pts.values() for _, y in p]
    assert all(top < y < bottom for y in ys)  # inside the plot area: nothing clipped to an edge
    unaware = [y for _, y in pts["random-unaware"]]
    assert unaware[0] < unaware[-1]  # 41 above 2.25
    assert len({round(y, 1) for y in unaware}) == 2  # the two levels stay apart
    assert "(log scale)" in svg  # 1.2 to 42 spans decades
    # the y tick labels cover the values
    labels = [float(t) for t in re.findall(r'text-anchor="end">([\d.e+-]+)</text>', svg)]
    assert min(labels) <= 1.2 and max(labels) >= 42


def test_axis_is_linear_for_a_narrow_range_and_covers_it():
    ax = value_axis([1.2, 1.5, 2.0, 3.1], "constrained")
    assert not ax.log and ax.lo <= 1.2 and ax.hi >= 3.1
    assert ax.frac(1.2) >= 0 and ax.frac(3.1) <= 1 and ax.frac(1.2) < ax.frac(3.1)


def test_a_zero_regret_sits_on_the_floor_ticked_zero():
    ax = value_axis([0.0, 0.3, 12.0, 40.0], "constrained")
    assert ax.log and ax.lo < 0.3
    assert ax.ticks[0] == (ax.lo, "0") and ax.frac(0.0) == 0.0 and ax.frac(0.3) > 0
    assert ax.frac(40.0) < 1.0


def test_pareto_share_is_linear_and_reaches_its_values():
    ax = value_axis([0.35, 0.6, 0.97], "pareto")
    assert not ax.log and ax.lo <= 0.35 and 0.97 <= ax.hi <= 1.0


def test_bench_html_is_self_contained(tmp_path):
    pytest.importorskip("plotly")
    from hwtune.bench._plot import regret_html

    res = _result({"a": [[40.0, 2.0, 1.0], [30.0, 3.0, 0.0]], "b": [[5.0, 4.0, 4.0], [6.0, 4.0, 3.0]]})
    path = tmp_path / "b.html"
    regret_html(res, str(path))
    text = path.read_text()
    assert "Plotly.newPlot" in text and 'data-figure="bench"' in text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)\s*=", text)


def test_cli_html_and_plot(tmp_path):
    pytest.importorskip("plotly")
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)
    html_path, svg = tmp_path / "b.html", tmp_path / "b.svg"
    r = CliRunner().invoke(app, ["bench", "nb201", "--quantile", "0.10", "--budget", "10", "--seeds", "2",
                                 "--methods", "random-measure-first,random-unaware", "--html", str(html_path), "--plot", str(svg), "-q"])
    assert r.exit_code == 0, r.output
    assert html_path.stat().st_size > 1_000_000 and svg.read_text().startswith("<svg")
