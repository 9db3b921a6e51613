"""benchmarks/train_pruning_replay.py: pruners replayed over recorded curves, the sampler taken out."""

from __future__ import annotations

import json
import random

import pytest

from tests.benchmarks import load_script


@pytest.fixture(scope="module")
def replay_mod():
    return load_script("train_pruning_replay")


def _curves(n: int, seed: int = 0) -> list[list[float]]:
    """Curves whose first epoch ranks their final errors perfectly (a problem where stopping pays)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        final = rng.uniform(0.02, 0.5)
        out.append([min(0.9, final * (1 + 2.0 / e)) for e in range(1, 10)])
    return out


def test_no_pruner_costs_exactly_the_unpruned_study(replay_mod):
    curves = _curves(40)
    rng = random.Random(1)
    for _ in range(3):
        order = rng.sample(curves, len(curves))
        r = replay_mod.replay(order, "none", 20)
        assert r["ratio"] == 1.0 and r["stopped"] == 0 and not r["target_stopped"]


def test_the_curve_pruner_saves_where_early_errors_rank_the_final_ones(replay_mod):
    curves = _curves(60, seed=2)
    rng = random.Random(3)
    ratios = [replay_mod.replay(rng.sample(curves, len(curves)), "curve", 40)["ratio"] for _ in range(5)]
    assert all(r is not None and r <= 1.0 for r in ratios), ratios  # the target network is never stopped here
    assert sorted(ratios)[2] < 0.8, ratios
    bound = replay_mod.hindsight_bound([rng.sample(curves, len(curves)) for _ in range(5)], curves, 40)
    assert bound["median_ratio"] < 0.5


def test_results_of_different_settings_are_not_pooled(replay_mod, tmp_path):
    def write(name: str, subset: int) -> str:
        p = tmp_path / name
        p.write_text(json.dumps({"train_subset": subset, "val_size": 1000, "epochs": 9,
                                 "raw": [{"pruner": "none", "trials": [{"status": "trained", "curve": c} for c in _curves(3)]}]}))
        return str(p)

    curves, setting = replay_mod.pool_curves([write("a.json", 1500)])
    assert len(curves) == 3 and setting["epochs"] == 9
    with pytest.raises(SystemExit, match="differs"):
        replay_mod.pool_curves([write("b.json", 1500), write("c.json", 6000)])


def test_a_race_between_unpruned_studies_is_not_a_ratio_of_one(replay_mod):
    """Each study walking its own order (as train_pruning.py's studies do): with no pruner at all the
    study that walks second misses the other's best about half the time; the oracle, which stops every
    network that will miss at epoch 1, is far cheaper than no pruner in both designs."""
    curves = _curves(80, seed=4)
    rng = random.Random(5)
    pairs = [(rng.sample(curves, len(curves)), rng.sample(curves, len(curves))) for _ in range(40)]
    none = [replay_mod.replay(o, "none", 20, base_order=b) for b, o in pairs]
    missed = sum(r["ratio"] is None for r in none)
    assert 10 <= missed <= 30, missed
    assert replay_mod._summary(none)["median_ratio"] > 1.0
    oracle = [replay_mod.replay(o, "oracle", 20, base_order=b) for b, o in pairs]
    assert all(r["ratio"] is not None for r in oracle)  # the unpruned study's whole budget buys 9x the networks
    assert replay_mod._summary(oracle)["median_ratio"] < replay_mod._summary(none)["median_ratio"] / 2
    paired = [replay_mod.replay(b, "oracle", 20) for b, _ in pairs]
    assert all(r["ratio"] <= 1.0 and not r["target_stopped"] for r in paired)


def test_the_oracle_with_a_warm_up_pays_for_its_whole_curves(replay_mod):
    """``oracle:N`` trains the first N networks whole and stops every later miss at epoch 1: its cost is
    exactly that, so it is the floor of a pruner that waits for N whole curves (``curve``'s min_complete)."""
    curves = _curves(60, seed=6)
    rng = random.Random(7)
    for _ in range(10):
        order = rng.sample(curves, len(curves))
        finals = [c[-1] for c in order[:20]]
        first = finals.index(min(finals))
        for warm_up in (0, 4):
            r = replay_mod.replay(order, f"oracle:{warm_up}", 20)
            expected = (9 * min(first, warm_up) + max(0, first - warm_up) + 9) / (9 * (first + 1))
            assert r["ratio"] == pytest.approx(expected) and not r["target_stopped"]
        assert replay_mod.replay(order, "oracle", 20)["ratio"] == replay_mod.replay(order, "oracle:0", 20)["ratio"]


def test_the_record_oracle_trains_every_record_whole(replay_mod):
    """``records:N`` stops at epoch 1 every network that will not beat the best so far and trains every
    new record whole: its cost is counted by hand here, and it is never cheaper than ``oracle:N``, which
    also knows the networks still to come."""
    curves = _curves(60, seed=8)
    rng = random.Random(9)
    for _ in range(10):
        order = rng.sample(curves, len(curves))
        finals = [c[-1] for c in order[:20]]
        first = finals.index(min(finals))
        for warm_up in (0, 4):
            best, spent = float("inf"), 0
            for n, f in enumerate(finals[: first + 1]):
                whole = n < warm_up or f < best
                spent += 9 if whole else 1
                best = min(best, f) if whole else best
            r = replay_mod.replay(order, f"records:{warm_up}", 20)
            assert r["ratio"] == pytest.approx(spent / (9 * (first + 1))) and not r["target_stopped"]
            assert r["ratio"] >= replay_mod.replay(order, f"oracle:{warm_up}", 20)["ratio"] - 1e-12


def test_recorded_orders_keep_each_unpruned_study_in_its_own_order(replay_mod, tmp_path):
    """``--recorded`` replays each unpruned study's networks in the order it trained them (skipping the
    rejected and the pruned studies), each order as long as its study."""
    a, b = _curves(6, seed=10), _curves(4, seed=11)
    trials_a = [{"status": "trained", "curve": c} for c in a[:3]] + [{"status": "rejected"}] + [{"status": "trained", "curve": c} for c in a[3:]]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"train_subset": 1500, "val_size": 1000, "epochs": 9, "raw": [
        {"pruner": "none", "trials": trials_a},
        {"pruner": "curve", "trials": [{"status": "trained", "curve": c} for c in b]},
        {"pruner": "none", "trials": [{"status": "trained", "curve": c} for c in b]},
    ]}))
    assert replay_mod.recorded_orders([str(path)]) == [a, b]
    out = tmp_path / "out.json"
    replay_mod.main(["--results", str(path), "--pruner", "none", "records:0", "--length", "4", "--replays", "2", "--recorded", "--out", str(out)])
    recorded = json.loads(out.read_text())["recorded"]
    assert [r["ratio"] for r in recorded["none"]["runs"]] == [1.0, 1.0]
    assert all(r["networks"] <= n for r, n in zip(recorded["records:0"]["runs"], (6, 4)))


def test_a_prior_and_the_forecast_reach_the_records_floor(replay_mod, tmp_path):
    """With curves of earlier studies and the study's budget (in epochs: the unpruned study's), the curve
    pruner decides from the first network and stops records the rest of the study will beat: it spends
    less than the plain rule, less even than any pruner that trains every record whole after 4 networks
    (``records:4``), on curves whose first epoch ranks the final errors."""
    curves, prior = _curves(80, seed=12), _curves(40, seed=13)
    rng = random.Random(14)
    orders = [rng.sample(curves, len(curves)) for _ in range(9)]
    spec = {"name": "curve", "prior_curves": prior, "forecast": True}
    median = {name: replay_mod._summary([replay_mod.replay(o, s, 30) for o in orders])["median_ratio"]
              for name, s in (("curve", "curve"), ("records:4", "records:4"), ("forecast", spec))}
    assert median["forecast"] < median["records:4"] <= median["curve"], median
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"train_subset": 1500, "val_size": 1000, "epochs": 9, "raw": [{"pruner": "none", "trials": [{"status": "trained", "curve": c} for c in curves[:5]]}]}))
    with pytest.raises(SystemExit, match="other studies"):
        replay_mod.main(["--results", str(path), "--prior-results", str(path), "--length", "3", "--replays", "1"])
    with pytest.raises(SystemExit, match="needs --prior-results"):
        replay_mod.main(["--results", str(path), "--pruner", '{"name": "curve", "prior_curves": "prior"}', "--length", "3", "--replays", "1"])
