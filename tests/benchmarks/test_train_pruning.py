"""benchmarks/train_pruning.py: the paired check and the unpaired design's noise floor."""

from __future__ import annotations

import json
import math

import pytest

from tests.benchmarks import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("train_pruning")


def _study(seed: int, errors: list[float], pruner: str = "none", params: list[dict] | None = None) -> dict:
    trials = [{"number": i, "status": "trained", "seconds": 10.0, "error": e, "epochs": 9, "curve": [e] * 9,
               "params": (params or [{}] * len(errors))[i]} for i, e in enumerate(errors)]
    return {"pruner": pruner, "sampler": "random", "seed": seed, "trials": trials}


def test_same_networks_counts_the_leading_trials_with_equal_params(bench):
    a = [{"params": {"x": 1}}, {"params": {"x": 2}}, {"params": {"x": 3}}]
    b = [{"params": {"x": 1}}, {"params": {"x": 2}}, {"params": {"x": 4}}]
    assert bench.same_networks(a, a) == 3
    assert bench.same_networks(a, b) == 2
    assert bench.same_networks([{"params": {}}], [{"params": {}}]) == 0  # params not stored: no claim


def test_the_race_between_unpruned_studies_reaches_the_other_best_in_half_the_pairs(bench):
    # three studies of the same method: in each pair only the one with the better best reaches the other's
    results = [_study(0, [0.30, 0.10, 0.20]), _study(1, [0.15, 0.12, 0.40]), _study(2, [0.50, 0.25, 0.05])]
    c = bench.race_control(results, "random")
    assert c["pairs"] == 6 and c["reached"] == 3
    assert math.isinf(c["median_ratio"])  # half the pairs never reach: the median is not a finite ratio
    # a pair with the same best both ways reaches both ways, at the same epochs
    c2 = bench.race_control([_study(0, [0.3, 0.1]), _study(1, [0.3, 0.1])], "random")
    assert c2["reached"] == 2 and c2["median_ratio"] == 1.0


def test_summarize_reports_the_paired_networks_and_the_race_control(bench):
    params = [{"x": i} for i in range(3)]
    results = [_study(0, [0.3, 0.1, 0.2], params=params), _study(0, [0.3, 0.1, 0.2], "curve", params=params),
               _study(1, [0.2, 0.4, 0.3], params=params), _study(1, [0.2, 0.4, 0.3], "curve", params=params)]
    out = bench.summarize(results, ["random"], ["curve"], [0, 1], {})
    rows = out["pruners"]["random/curve"]["rows"]
    assert [r["same_networks"] for r in rows] == [3, 3] and [r["ratio"] for r in rows] == [1.0, 1.0]
    assert out["race_control"]["random"]["pairs"] == 2


def test_prior_results_feed_the_curve_pruner_and_must_share_the_setting(bench, tmp_path):
    """``--prior-results``: the unpruned studies' whole curves of earlier runs replace "prior" in a
    curve spec; a run of another setting is refused, and "prior" without them too."""
    whole, cut = [0.5] * 9, [0.5] * 3
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"train_subset": 6000, "val_size": 2000, "epochs": 9, "raw": [
        {"pruner": "none", "trials": [{"status": "trained", "curve": whole}, {"status": "over_budget", "curve": []}]},
        {"pruner": "curve", "trials": [{"status": "trained", "curve": whole}, {"status": "pruned", "curve": cut}]},
    ]}))
    setting = {"train_subset": 6000, "val_size": 2000, "epochs": 9}
    prior = bench.prior_curves([str(path)], setting)
    assert prior == [whole]
    spec = bench._pruner_spec('{"name": "curve", "prior_curves": "prior", "forecast": true}', prior)
    assert spec == {"name": "curve", "prior_curves": [whole], "forecast": True}
    assert bench._pruner_spec("curve", prior) == "curve"
    with pytest.raises(SystemExit, match="needs --prior-results"):
        bench._pruner_spec('{"name": "curve", "prior_curves": "prior"}', [])
    with pytest.raises(SystemExit, match="differs"):
        bench.prior_curves([str(path)], {**setting, "train_subset": 1500})
