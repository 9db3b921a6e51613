"""The summary table of ``hwtune run``: every objective and constraint metric, with its source."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from hwtune.hardware import Measurement
from hwtune.report import print_summary
from hwtune.report._tables import LABELS, metric_label, record_rows
from hwtune.space import METRICS, SearchSpace, parse_constraints, parse_objectives
from hwtune.study import StudySummary, TrialRecord

SPACE = SearchSpace.from_dict(
    {
        "filters_0": {"type": "int", "low": 4, "high": 32, "role": "architecture"},
        "lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "epochs": 8,
    }
)
PARAMS = {"filters_0": 16, "lr": 0.05, "epochs": 8}


def _always() -> dict[str, Measurement]:
    return {
        "latency_ms": Measurement("latency_ms", 0.412, "ms", "measured:timer", 0.405, 0.42, repeats=120),
        "throughput_sps": Measurement("throughput_sps", 2427.0, "samples/s", "measured:timer", repeats=120),
        "params": Measurement("params", 12698.0, "", "counted"),
        "size_mb": Measurement("size_mb", 0.0536, "MB", "measured:serialized"),
    }


def _record(hardware: dict[str, Measurement] | None = None, **kw) -> TrialRecord:
    hw = {**_always(), **(hardware or {})}
    kw.setdefault("metrics", {"error": 0.0312, "accuracy": 0.9688, "test_error": 0.0401})
    return TrialRecord(number=kw.pop("number", 7), status="trained", params=dict(PARAMS), hardware=hw, **kw)


def _summary(recs: list[TrialRecord], objectives="minimize: [error, power_w]", constraints=("energy_mj <= 5", "peak_mem_mb <= 100"), space=SPACE) -> StudySummary:
    return StudySummary(
        name="s", storage="in-memory", counts={"trained": len(recs)}, best=recs,
        objectives=parse_objectives(objectives), constraints=parse_constraints(list(constraints)), records=recs, space=space,
    )


def _printed(summary: StudySummary) -> str:
    console = Console(record=True, width=200)
    print_summary(summary, console)
    return console.export_text()


def _rows(text: str) -> dict[str, list[str]]:
    """label -> cells of the table rows printed in ``text`` (continuation lines joined)."""
    rows: dict[str, list[str]] = {}
    last: list[str] | None = None
    labels: list[str] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            labels.append(cells[0])
            last = rows[cells[0]] = cells
        elif last is not None:
            last[:] = [f"{a} {b}".strip() for a, b in zip(last, cells)]
    assert len(labels) == len(set(labels)), f"two rows share a label: {labels}"
    return rows


HW = {
    "power_w": Measurement("power_w", 35.0, "W", "estimated:tdp", note="TDP share, no power sensor"),
    "energy_mj": Measurement("energy_mj", 3.2, "mJ", "estimated:tdp"),
    "peak_mem_mb": Measurement("peak_mem_mb", 41.5, "MB", "measured:rss", repeats=3),
}


def test_every_objective_and_constraint_metric_is_shown_with_its_source():
    rows = _rows(_printed(_summary([_record(HW)])))
    assert rows["validation error"][1:3] == ["0.0312", "measured:training"]
    assert "objective: minimize error" in rows["validation error"][3]
    power = rows["power while inferring"]
    assert power[1].startswith("~35") and power[2] == "estimated:tdp" and "measured" not in power[2]
    assert "objective: minimize power_w" in power[3]
    energy = rows["energy per inference"]
    assert energy[1].startswith("~3.2") and energy[2] == "estimated:tdp" and energy[3] == "constraint: energy_mj <= 5"
    mem = rows["peak memory"]
    assert mem[1] == "41.5 MB" and mem[2] == "measured:rss, 3 repeats" and mem[3] == "constraint: peak_mem_mb <= 100"


def test_objectives_and_constraints_come_first_then_the_always_shown_ones_in_a_stable_order():
    labels = [r[0] for r in record_rows(_record(HW), _summary([]))]
    assert labels == [
        "searched hyperparameters", "fixed hyperparameters",
        "validation error", "power while inferring", "energy per inference", "peak memory",
        "test error", "latency per batch", "throughput", "serialized model size", "parameter count",
    ]


def test_missing_constraint_metric_prints_not_measured_never_zero_or_blank():
    hw = {k: v for k, v in HW.items() if k != "peak_mem_mb"}
    mem = _rows(_printed(_summary([_record(hw)])))["peak memory"]
    assert mem[1] == "not measured" and mem[2] and "0" not in mem[1]


def test_unavailable_measurement_shows_its_note():
    hw = {**HW, "power_w": Measurement("power_w", None, "W", "unavailable", note="no power sensor on this CPU")}
    power = _rows(_printed(_summary([_record(hw)])))["power while inferring"]
    assert power[1] == "unavailable (no power sensor on this CPU)" and power[2] == "unavailable"


def test_missing_quality_objective_prints_not_measured():
    rows = _rows(_printed(_summary([_record(HW, metrics={})])))
    assert rows["validation error"][1] == "not measured"
    assert "test error" not in rows


def test_parameter_count_label_differs_from_the_hyperparameters():
    rows = _rows(_printed(_summary([_record(HW)], objectives="minimize: [error, params]")))
    assert rows["parameter count"][1:3] == ["12,698", "counted"]
    assert "objective: minimize params" in rows["parameter count"][3]
    hyper = [label for label in rows if "hyperparameters" in label]
    assert hyper and "parameter count" not in hyper
    assert not any("hyperparameter" in label for label in rows if label not in hyper)
    assert "params" not in rows


def test_fixed_and_searched_params_are_labelled_as_such():
    rows = _rows(_printed(_summary([_record(HW)])))
    searched, fixed = rows["searched hyperparameters"], rows["fixed hyperparameters"]
    assert "filters_0=16" in searched[1] and "lr=0.05" in searched[1] and searched[2] == "searched"
    assert fixed[1] == "epochs=8" and fixed[2] == "fixed"
    assert "epochs" not in searched[1]


def test_without_the_space_params_are_not_claimed_searched():
    rows = _rows(_printed(_summary([_record(HW)], space=None)))
    assert "epochs=8" in rows["hyperparameters"][1]
    assert "not known" in rows["hyperparameters"][2]


def test_prediction_before_measuring_and_reuse_are_shown_each_with_a_label_of_its_own():
    hw = {**HW, "latency_ms": Measurement("latency_ms", 0.41, "ms", "measured:timer", repeats=50, extra={"reused_from_trial": 3})}
    predicted = {
        m: Measurement(m, 0.5, METRICS[m].unit, "predicted:additive_gp", 0.3, 0.7) for m in ("latency_ms", "energy_mj", "peak_mem_mb")
    }
    rows = _rows(_printed(_summary([_record(hw, predicted=predicted)], constraints=("latency_ms <= 1", "energy_mj <= 5", "peak_mem_mb <= 100"))))
    assert rows["latency per batch"][2] == "measured:timer, 50 repeats, reused from trial 3"
    pred = rows["latency per batch: predicted before measuring"]
    assert pred[1] == "0.5 ms [0.3, 0.7]" and pred[2] == "predicted:additive_gp"
    assert rows["energy per inference: predicted before measuring"][2] == "predicted:additive_gp"


def test_a_second_measurement_after_training_is_shown_only_when_it_says_something_new():
    final = {**_always(), "latency_ms": Measurement("latency_ms", 0.451, "ms", "measured:timer", 0.44, 0.46, repeats=90)}
    rows = _rows(_printed(_summary([_record(final_hardware=final)], constraints=("latency_ms <= 1",))))
    again = rows["latency per batch: measured again after training"]
    assert again[1].startswith("0.451 ms") and again[2].startswith("measured:timer")
    # the same count of the same network twice (parameters, file size): no second row
    assert not any(k.endswith("measured again after training") and not k.startswith("latency") for k in rows), sorted(rows)


def test_pareto_front_prints_one_table_per_network_and_keeps_the_other_lines():
    text = _printed(_summary([_record(HW, number=1), _record(HW, number=4)]))
    assert "Pareto-optimal network 1 (trial 1)" in text and "Pareto-optimal network 2 (trial 4)" in text
    assert "Objective: minimize error, minimize power_w; constraints: energy_mj <= 5, peak_mem_mb <= 100" in text
    assert "Not stored: the study ran in memory." in text


def test_one_label_per_metric_of_the_vocabulary():
    labels = [metric_label(m) for m in METRICS] + [LABELS["test_error"]]
    assert len(labels) == len(set(labels))
    assert not any("hyperparameter" in label for label in labels)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_any_metric_can_be_a_constraint_and_is_shown_once(metric):
    rec = _record({**HW, "flops": Measurement("flops", 1e6, "", "counted:flop_counter")})
    c = "accuracy >= 0.5" if metric == "accuracy" else f"{metric} <= 1e9"
    text = _printed(_summary([rec], objectives="minimize: error", constraints=(c,)))
    rows = _rows(text)
    assert rows[metric_label(metric)][3].endswith(f"constraint: {c.replace('1e9', '1e+09')}")


def test_study_summary_carries_the_space():
    from hwtune.study import Study

    study = Study("t", SPACE, sampler="random", cost_model=None)
    assert study.summary().space is study.space


def test_a_param_outside_the_space_is_not_claimed_searched_or_fixed():
    rec = TrialRecord(number=2, status="trained", params={**PARAMS, "legacy": 3}, hardware=_always(), metrics={"error": 0.1})
    rows = _rows(_printed(_summary([rec], objectives="minimize: error", constraints=())))
    assert rows["other hyperparameters"][1:3] == ["legacy=3", "not in the study's space"]
    assert "legacy" not in rows["searched hyperparameters"][1]


@pytest.mark.parametrize("spread, said", [(0.0, "no spread beyond their own intervals"), (0.07, "±7.0% per measurement beyond their own intervals (estimated from the pairs)")])
def test_the_closing_retest_line_says_a_zero_spread_in_words_and_an_estimate_as_one(spread: float, said: str) -> None:
    import io

    from hwtune.report._console import _print_closing_check

    out = io.StringIO()
    summary = SimpleNamespace(closing_check={"n": 9, "median_rel_diff": -0.022, "max_abs_rel_diff": 0.152, "worst_trial": 8, "between_rel_sd": spread})
    _print_closing_check(summary, Console(file=out, width=300))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "the closing retest), 9 networks: latency_ms median -2.2% (worst 15.2%, trial 8)" in text and said in text
    assert "±0.0%" not in text
