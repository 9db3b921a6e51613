"""``hwtune bench``: whole searches through the real study loop on the NB201 table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from hwtune.exceptions import ConfigError
from hwtune.bench._bench import _hypervolume_2d, run_bench, run_method
from hwtune.bench._bench_cli import bench_command
from hwtune.bench._nb201_problem import NB201Problem, SimulatedNB201, nb201_cell_features


@pytest.fixture(scope="module")
def pixel3() -> NB201Problem:
    return NB201Problem("cifar10", "pixel3", quantile=0.10)


def test_problem_exact_answers(pixel3: NB201Problem):
    assert pixel3.limit == pytest.approx(3.274, abs=1e-3)
    assert pixel3.feasible.sum() == 1563
    assert pixel3.best_feasible_accuracy == pytest.approx(90.83, abs=1e-2)
    p = pixel3.params_of(123)
    assert pixel3.row(p) == 123
    f = nb201_cell_features(p)
    assert set(f) >= {"connected", "depth", "n_nor_conv_3x3", "alive_skip_connect"}
    cheap = NB201Problem("cifar10", "fpga", error_quantile=0.05)
    assert cheap.cheapest_feasible_latency <= np.quantile(cheap.lat, 0.5)
    with pytest.raises(ConfigError, match="device"):
        NB201Problem("cifar10", "toaster", quantile=0.1)
    with pytest.raises(ConfigError, match="limit"):
        NB201Problem("cifar10", "pixel3", quantile=0.1, limit_ms=3.0)


def test_simulated_backend_labels_and_counts(pixel3: NB201Problem):
    sim = SimulatedNB201(pixel3)
    row = sim.build_model(pixel3.params_of(7))
    rep = sim.measure(row, {})
    m = rep["latency_ms"]
    assert m.source == "measured:pixel3 (HELP)" and m.value == pytest.approx(pixel3.lat[7])
    assert sim.train_and_evaluate(row, {}, None) == {"error": pytest.approx(1 - pixel3.acc[7] / 100)}
    assert sim.n_measurements == 1 and sim.trained_rows == [7]
    after = SimulatedNB201(pixel3, measure_first=False)
    assert after.measure(row, {}).measurements == {}
    out = after.train_and_evaluate(row, {}, None)
    assert out["latency_ms"] == pytest.approx(pixel3.lat[7]) and after.n_measurements == 1


def test_baselines_through_the_study_loop(pixel3: NB201Problem):
    budget = 12
    unaware = run_method(pixel3, "random-unaware", 0, budget)
    first = run_method(pixel3, "random-measure-first", 0, budget)
    tpe = run_method(pixel3, "tpe-measure-first", 0, budget)
    for r in (unaware, first, tpe):
        assert r.trained == budget and len(r.curve) == budget
        assert all(a >= b - 1e-12 for a, b in zip(r.curve, r.curve[1:]))  # regret never grows
    assert unaware.wasted > 0 and unaware.measurements == unaware.trials == budget
    assert first.wasted == 0 and tpe.wasted == 0
    assert first.measurements > budget  # over-budget networks are measured, never trained
    assert first.trials >= first.measurements


def test_hwtune_in_the_bench_wastes_nothing_and_measures_little(pixel3: NB201Problem):
    r = run_method(pixel3, "hwtune", 0, 25)  # the first checkpoint: 25 trained
    assert r.wasted == 0 and r.trained == 25
    assert r.measurements <= 3 * r.trained
    assert r.curve[-1] < 2.0


def test_cheapest_and_pareto_modes_score_runs():
    cheap = NB201Problem("cifar10", "fpga", error_quantile=0.05)
    r = run_method(cheap, "random", 0, 10, mode="cheapest")
    assert len(r.curve) == 10 and min(r.curve) >= 0
    front = NB201Problem("cifar10", "fpga")
    r = run_method(front, "random", 0, 10, mode="pareto")
    assert 0 <= r.curve[0] <= r.curve[-1] <= 1.0


def test_hypervolume_2d():
    ref = np.array([1.0, 1.0])
    assert _hypervolume_2d(np.array([[0.5, 0.5]]), ref) == pytest.approx(0.25)
    assert _hypervolume_2d(np.array([[0.5, 0.5], [0.25, 0.75], [0.6, 0.6]]), ref) == pytest.approx(0.25 + 0.25 * 0.25)
    assert _hypervolume_2d(np.array([[1.5, 0.1]]), ref) == 0.0


def test_run_bench_summary_json_and_plot(tmp_path, pixel3: NB201Problem):
    res = run_bench({"task": "cifar10", "device": "pixel3", "quantile": 0.10}, ["random-measure-first", "random-unaware"], seeds=[0, 1], budget=10)
    d = res.to_dict()
    assert d["exact"]["best_feasible_accuracy"] == pytest.approx(pixel3.best_feasible_accuracy)
    rows = {s["method"]: s for s in d["summary"]}
    assert set(rows) == {"random-measure-first", "random-unaware"} and rows["random-measure-first"]["wasted"] == 0
    assert "at_10" in rows["random-unaware"] and "at_25" not in rows["random-unaware"]
    json.dumps(d)
    from hwtune.bench._bench import regret_svg

    regret_svg(res, str(tmp_path / "r.svg"))
    assert (tmp_path / "r.svg").read_text().startswith("<svg")


def test_cli(tmp_path):
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)  # a second command keeps "bench" a sub-command
    out = tmp_path / "b.json"
    svg = tmp_path / "b.svg"
    r = CliRunner().invoke(app, ["bench", "nb201", "--task", "cifar10", "--device", "pixel3", "--quantile", "0.10", "--budget", "10",
                                 "--seeds", "2", "--methods", "random-measure-first,random-unaware", "--json", str(out), "--plot", str(svg), "-q"])
    assert r.exit_code == 0, r.output
    assert "random-measure-first" in r.output and "N=10" in r.output
    d = json.loads(out.read_text())
    assert d["budget"] == 10 and len(d["runs"]["random-unaware"]) == 2
    assert svg.exists()
    bad = CliRunner().invoke(app, ["bench", "nb201", "--device", "pixel3", "--budget", "5"])
    assert bad.exit_code == 2 and "limit" in bad.output
    bad = CliRunner().invoke(app, ["bench", "nb201", "--quantile", "0.1", "--methods", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_worst_decile_is_the_bad_seed_not_the_median():
    from hwtune.bench._bench import MethodResult, RunResult

    def run(seed: int, at10: float) -> RunResult:
        return RunResult("m", seed, [at10] * 10, 0, 10, 10, 10, 1.0, 1.0)

    ten = MethodResult("m", [run(s, v) for s, v in enumerate([0.1] * 9 + [40.0])])
    assert ten.at(10) == pytest.approx(0.1)
    assert ten.worst_decile(10) == pytest.approx(40.0)  # of 10 seeds: the worst one
    twenty = MethodResult("m", [run(s, float(s)) for s in range(20)])
    assert twenty.worst_decile(10) == pytest.approx(18.0)  # of 20: the second worst
    hv = MethodResult("m", [run(s, v) for s, v in enumerate([0.9] * 9 + [0.2])], higher_is_better=True)
    assert hv.worst_decile(10) == pytest.approx(0.2)  # a hypervolume share: the lowest is the worst
    short = MethodResult("m", [run(0, 1.0), RunResult("m", 1, [1.0] * 5, 0, 5, 5, 5, 1.0, 1.0)])
    assert np.isnan(short.worst_decile(10))
    assert "worst_decile_10" in ten.summary([10])
