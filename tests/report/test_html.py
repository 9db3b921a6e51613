"""``hwtune report``: the HTML report of a stored study (issue 18), on real stored studies."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly")

from hwtune.cli import app  # noqa: E402
from hwtune.exceptions import ConfigError  # noqa: E402
from hwtune.report import build_report, write_html, write_png  # noqa: E402
from hwtune.report._data import MARKS, collect  # noqa: E402
from hwtune.report._fig_cost import Calibration  # noqa: E402
from hwtune.report._figures import Missing, log_ticks  # noqa: E402
from hwtune.study import stored_study  # noqa: E402
from tests.report import _studies  # noqa: E402

FIGURES = ["front_latency_ms", "progress", "feasibility", "calibration", "importance_error", "importance_latency_ms", "learning"]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def constrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stored study (minimize error; latency_ms <= 5 and error <= 0.3) holding every status."""
    db = tmp_path_factory.mktemp("report") / "c.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _studies.run(db, name="constrained", n_trials=36)
    return db


@pytest.fixture(scope="module")
def pareto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "p.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _studies.run(db, name="pareto", pareto=True, n_trials=24, constraints=["latency_ms <= 6"])
    return db


@pytest.fixture(scope="module")
def report(constrained: Path):
    return build_report(stored_study("constrained", f"sqlite:///{constrained}"))


def test_the_study_holds_every_status_the_report_draws(report):
    marks = {t.mark for t in report.data.finished}
    assert {"trained", "trained_infeasible", "over_budget", "predicted_over_budget", "pruned", "failed"} <= marks


def test_every_figure_is_drawn_for_a_constrained_study(report):
    assert list(report.figures) == FIGURES
    missing = {k: f.reason for s in report.sections for k, f in s.figures.items() if isinstance(f, Missing)}
    assert missing == {}


def test_front_marks_each_status_apart_with_constraint_line_and_sources_in_hover(report):
    fig = report.figures["front_latency_ms"]
    looks = {}
    for tr in fig.data:
        if tr.mode == "markers":
            looks[tr.legendgroup] = (tr.marker.symbol, tr.marker.color)
    assert {"trained", "trained_infeasible", "over_budget", "predicted_over_budget", "pruned", "failed"} <= set(looks)
    assert len(set(looks.values())) == len(looks)  # no two statuses look alike
    # the latency limit is a vertical line, the error limit a horizontal one
    assert any(s.type == "line" and s.x0 == 5 and s.x1 == 5 for s in fig.layout.shapes)
    assert any(s.type == "line" and s.y0 == 0.3 and s.y1 == 0.3 for s in fig.layout.shapes)
    assert any("latency_ms &lt;= 5" in (a.text or "") for a in fig.layout.annotations)
    # over-budget networks sit on the 'not trained' strip (no error), at their measured latency
    ob = next(tr for tr in fig.data if tr.legendgroup == "over_budget")
    assert ob.yaxis == "y2" and all(x > 5 for x in ob.x)
    # predicted over budget: drawn at the prediction, and the hover says so
    pob = next(tr for tr in fig.data if tr.legendgroup == "predicted_over_budget")
    assert all("predicted:" in t and "never measured" in t for t in pob.text)
    trained = next(tr for tr in fig.data if tr.legendgroup == "trained")
    assert all("measured:test-double" in t and "measured:training" in t and "width=" in t and "lr=" in t for t in trained.text)


def test_pruned_networks_are_drawn_at_their_last_epoch_and_learning_curves_mark_them(report):
    pruned = [t for t in report.data.finished if t.status == "pruned"]
    front = report.figures["front_latency_ms"]
    tr = next(tr for tr in front.data if tr.legendgroup == "pruned")
    assert sorted(tr.y) == sorted(t.curve[max(t.curve)] for t in pruned)
    learning = report.figures["learning"]
    cross = next(tr for tr in learning.data if tr.name == "where a network was pruned")
    assert list(cross.x) == [max(t.curve) for t in pruned] == [2] * len(pruned)


def test_best_feasible_curve_is_the_running_minimum_over_feasible_trained_networks(report):
    fig = report.figures["progress"]
    best = next(tr for tr in fig.data if tr.name == "best feasible error")
    trained = sorted((t for t in report.data.finished if t.status == "trained"), key=lambda t: (t.complete, t.number))
    expected, b = [], None
    for t in trained:
        if t.feasible:
            e = t.stored.metrics["error"]
            b = e if b is None else min(b, e)
        expected.append(b)
    assert list(best.y) == expected
    assert list(best.x) == list(range(1, len(trained) + 1))
    assert len({t.feasible for t in trained}) == 2  # infeasible trained networks never improve the curve


def test_feasibility_map_uses_the_hardware_param_and_every_proposal(report):
    fig = report.figures["feasibility"]
    assert fig.layout.xaxis.title.text == "width"  # the only architecture param (lr is training-only)
    n = sum(len(tr.x) for tr in fig.data)
    assert n == len(report.data.finished)


def test_calibration_counts_every_predicted_and_measured_network():
    cal = Calibration("latency_ms", [], measured=[1.0, 2.0, 3.0, 4.0, 9.0], predicted=[1.2, 1.9, 3.5, 3.8, 5.0],
                      low=[1.0, 1.5, 3.1, 3.0, None], high=[1.5, 2.5, 3.9, 4.5, None], source="predicted:test")
    assert cal.coverage == (3, 4)  # 3.0 lies outside [3.1, 3.9]; the last one has no interval
    assert cal.rank_correlation == pytest.approx(1.0)
    assert Calibration("x", [], [1.0, 2.0], [2.0, 1.0], [None] * 2, [None] * 2, "").rank_correlation is None


def test_calibration_figure_matches_the_stored_predictions(report):
    fig = report.figures["calibration"]
    points = [(x, y) for tr in fig.data if tr.mode == "markers" for x, y in zip(tr.x, tr.y)]
    expected = [(t.value("latency_ms").value, t.prediction("latency_ms").value) for t in report.data.finished
                if t.prediction("latency_ms") is not None and t.value("latency_ms") is not None]
    assert sorted(points) == sorted(expected) and expected
    assert "rank correlation" in fig.layout.annotations[0].text and "interval covers" in fig.layout.annotations[0].text


def test_importance_is_computed_separately_for_error_and_for_latency(report):
    lat = report.figures["importance_latency_ms"]
    bars = dict(zip(lat.data[0].y, lat.data[0].x))
    assert bars == {"width": pytest.approx(1.0)}  # a training param cannot change a latency: not rated for it
    err = report.figures["importance_error"]
    assert set(err.data[0].y) == {"width", "lr"}


def test_html_is_self_contained_and_read_only(constrained: Path, tmp_path: Path):
    before = _sha(constrained)
    out = tmp_path / "sub" / "r.html"
    write_html(stored_study("constrained", f"sqlite:///{constrained}"), out)
    assert _sha(constrained) == before  # the report never writes to the study
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=", text, re.I)  # nothing loaded from anywhere
    assert "@font-face" not in text and "@import" not in text
    assert text.count("Plotly.newPlot") == len(FIGURES)
    for key in FIGURES:
        assert f'data-figure="{key}"' in text
    # the trial table: every trial, 'not measured' where a value is missing, predictions labelled
    table = re.search(r'<table class="trials".*?</table>', text, re.S).group(0)
    assert table.count("<tr>") - 1 == len(optuna.load_study(study_name="constrained", storage=f"sqlite:///{constrained}").trials)
    assert "not measured" in text and "predicted " in text and "measured:test-double" in text


def test_pareto_study_report_has_the_front_of_each_hardware_metric(pareto: Path, tmp_path: Path):
    r = write_html(stored_study("pareto", f"sqlite:///{pareto}"), tmp_path / "p.html")
    assert {"front_latency_ms", "progress", "feasibility", "calibration", "importance_error", "importance_latency_ms"} <= set(r.figures)
    # a multi-objective study reports no per-epoch errors: said in place of the figure
    learning = next(f for s in r.sections for k, f in s.figures.items() if k == "learning")
    assert isinstance(learning, Missing) and "per-epoch" in learning.reason
    assert "Not drawn: no network reported a per-epoch" in (tmp_path / "p.html").read_text()


def test_cli_writes_the_report_and_names_a_missing_storage(constrained: Path, tmp_path: Path):
    out = tmp_path / "cli.html"
    r = CliRunner().invoke(app, ["report", "constrained", "--storage", f"sqlite:///{constrained}", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 1_000_000  # plotly.js is inside
    r = CliRunner().invoke(app, ["report", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(out)])
    assert r.exit_code == 2 and "--storage" in r.output and not (tmp_path / "none.db").exists()


def test_png_without_kaleido_is_a_config_error_naming_png(report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido -> ImportError
    with pytest.raises(ConfigError) as e:
        write_png(report, tmp_path / "png")
    assert e.value.field == "--png" and "kaleido" in e.value.problem and "hwtune[report]" in e.value.fix
    assert not (tmp_path / "png").exists()


def test_log_ticks_are_round_numbers_across_the_values():
    t = log_ticks([0.05, 1.4])
    assert t["tickvals"] == pytest.approx([0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
    assert log_ticks([]) == {}


def test_collect_reads_statuses_like_the_vocabulary(constrained: Path):
    data = collect(stored_study("constrained", f"sqlite:///{constrained}"))
    assert set(MARKS) >= {t.mark for t in data.trials}
    assert data.hardware_metrics == ["latency_ms"] and data.quality_metric == "error"
    assert data.hardware_params() == ["width"]


def test_png_writes_the_figures_as_images(report, tmp_path: Path):
    pytest.importorskip("kaleido")
    import shutil

    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("kaleido needs a Chrome or Chromium (apt-get install chromium)")
    from hwtune.report import Report

    one = Report(report.data, [s for s in report.sections if s.id == "progress"])  # one figure: kaleido takes seconds each
    files = write_png(one, tmp_path / "png")
    assert [f.name for f in files] == ["progress.png"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[0].stat().st_size > 10_000


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_constraint_label_sits_at_its_line(constrained: Path, monkeypatch: pytest.MonkeyPatch, scale: str):
    import math

    from hwtune.report import _figures

    monkeypatch.setattr(_figures, "axis_type", lambda values: scale)
    fig = _figures.front_figure(collect(stored_study("constrained", f"sqlite:///{constrained}")), "latency_ms")
    label = next(a for a in fig.layout.annotations if "latency_ms" in (a.text or ""))
    assert fig.layout.xaxis.type == scale
    assert label.x == pytest.approx(math.log10(5) if scale == "log" else 5)  # plotly places annotations on a log axis by log10
