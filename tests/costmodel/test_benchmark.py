from __future__ import annotations

import numpy as np
import pytest

from hwtune.costmodel._benchmark import check_goals, format_markdown, format_table, run_nb201_benchmark
from hwtune.tabular import NB201Table, load_nb201


@pytest.fixture(scope="module")
def small_table() -> NB201Table:
    """A 2,500-row random subset of the real table (keeps the test fast)."""
    t = load_nb201()
    rows = np.random.default_rng(0).choice(len(t.arch), 2500, replace=False)
    return NB201Table(t.index[rows], t.arch[rows], t.ops[rows], {k: v[rows] for k, v in t.accuracy.items()},
                      {k: v[rows] for k, v in t.latency.items()})


def test_benchmark_on_real_measurements(small_table):
    res = run_nb201_benchmark(ks=(20,), repetitions=2, configs=["linear-onehot", "additive", "transfer"],
                              devices=["titanxp_1", "raspi4", "gold_6226"], table=small_table)
    s = res["summary"]
    # derived features and transfer must beat the one-hot baseline clearly on real devices
    assert s["additive"]["20"]["spearman_median"] > 0.93
    assert s["transfer"]["20"]["spearman_median"] > 0.93
    assert s["linear-onehot"]["20"]["spearman_median"] < s["additive"]["20"]["spearman_median"] - 0.05
    assert 0.7 < s["additive"]["20"]["coverage_median"] <= 1.0
    assert len(res["runs"]) == 3 * 3 * 2
    assert all(0 <= v <= 1 for r in res["runs"] for v in r["feas_wrong"])
    goals = {g["goal"]: g for g in res["goals"]}
    assert goals["single device, k=20: median Spearman >= 0.90"]["met"] is True
    assert goals["single device, k=50: median Spearman >= 0.97"]["met"] is None  # k=50 not run
    md = format_markdown(res)
    assert md.count("\n| ") >= 3 and "additive" in md
    assert "MET" in format_table(res)


def test_benchmark_rejects_unknown_names(small_table):
    with pytest.raises(ValueError, match="config"):
        run_nb201_benchmark(configs=["forest"], table=small_table)
    with pytest.raises(ValueError, match="device"):
        run_nb201_benchmark(devices=["abacus"], table=small_table)


def test_goal_check_logic():
    summary = {"additive": {"20": {"spearman_median": 0.89, "coverage_median": 0.9}}}
    g = {x["goal"]: x for x in check_goals(summary)}
    assert g["single device, k=20: median Spearman >= 0.90"]["met"] is False
