"""The study's retest interval: where a later measurement of a kept network falls (``study._retest``)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from hwtune.hardware import Measurement
from hwtune.report import print_summary
from hwtune.study import parse_study_file, study_from_file
from hwtune.study._closing import OTHER_NETWORKS, _spread, closing_hardware
from hwtune.study._retest import retest_interval, retest_pairs
from tests._tiny_digits import tiny_digits_spec


def _m(value: float, rel_half: float) -> Measurement:
    return Measurement("latency_ms", value, "ms", "measured:test-double", value * math.exp(-rel_half), value * math.exp(rel_half), 10)


def _rec(before: Measurement | None, after: Measurement | None = None, status: str = "trained", number: int = 0) -> Any:
    return SimpleNamespace(number=number, status=status, hardware={"latency_ms": before} if before else {}, final_hardware={"latency_ms": after} if after else {})


def _drifting_study(rng: np.random.Generator, n: int, se: float, drift: float) -> tuple[list[Any], list[float], np.ndarray]:
    """``n`` kept networks, each measured twice at different times on a machine whose speed moves by
    ``drift`` (log sd) between times, each measurement with its own log sd ``se`` and an honest 95 %
    interval of it; returns the records, their true latencies and a third measurement of each."""
    true = np.exp(rng.uniform(-1, 2, n))
    def measure(t: float) -> Measurement:
        return _m(float(t * math.exp(rng.normal(0, drift) + rng.normal(0, se))), 1.96 * se)
    recs = [_rec(measure(t), measure(t)) for t in true]
    later = np.array([t * math.exp(rng.normal(0, drift) + rng.normal(0, se)) for t in true])
    return recs, list(true), later


@pytest.mark.parametrize("drift", [0.0, 0.03, 0.10])
def test_a_later_measurement_falls_inside_the_retest_interval_95_percent_of_the_time(drift: float) -> None:
    rng = np.random.default_rng(13)
    inside_retest, inside_own = [], []
    for _ in range(60):  # 60 studies of 12 kept networks
        recs, _, later = _drifting_study(rng, 12, se=0.02, drift=drift)
        for r, x in zip(recs, later):
            iv = retest_interval(r, recs)
            assert iv is not None and iv.pairs == 12
            inside_retest.append(iv.contains(float(x)))
            own = r.hardware["latency_ms"]
            inside_own.append(own.ci_low <= x <= own.ci_high)
    assert 0.93 <= np.mean(inside_retest) <= 0.995  # honest, and not absurdly wide
    if drift >= 0.03:  # the median's own interval is not where a later measurement falls
        assert np.mean(inside_own) < 0.8


def test_the_between_time_spread_is_estimated_from_the_pairs() -> None:
    rng = np.random.default_rng(0)
    recs, _, _ = _drifting_study(rng, 400, se=0.02, drift=0.08)
    iv = retest_interval(recs[0], recs)
    assert iv is not None and iv.between_rel_sd == pytest.approx(0.08, rel=0.15)
    assert "400 before/after training pairs" in iv.how


def test_the_closing_retest_shows_a_drift_that_pairs_a_training_apart_cannot() -> None:
    """The machine's speed moves over minutes but not over seconds: a network's measurement after
    training shares its first measurement's speed, the closing retest and a later export do not."""
    rng = np.random.default_rng(7)
    se, drift = 0.02, 0.10
    inside_closing, inside_after = [], []
    for _ in range(60):
        true = np.exp(rng.uniform(-1, 2, 12))
        speed = np.exp(rng.normal(0, drift, 12))  # the machine at each trial's time
        def measure(t: float, s: float) -> Measurement:
            return _m(float(t * s * math.exp(rng.normal(0, se))), 1.96 * se)
        recs = [_rec(measure(t, s), measure(t, s), number=i) for i, (t, s) in enumerate(zip(true, speed))]
        at_end = math.exp(rng.normal(0, drift))
        closing = {i: {"latency_ms": measure(t, at_end)} for i, t in enumerate(true)}
        later = math.exp(rng.normal(0, drift))  # the export, later still
        for r, t in zip(recs, true):
            x = float(t * later * math.exp(rng.normal(0, se)))
            with_closing, without = retest_interval(r, recs, closing=closing), retest_interval(r, recs)
            assert with_closing is not None and without is not None
            inside_closing.append(with_closing.contains(x))
            inside_after.append(without.contains(x))
    assert 0.9 <= np.mean(inside_closing) <= 0.995
    assert np.mean(inside_after) < 0.5  # the pairs a training apart saw no drift
    assert "closing retest" in with_closing.how and "before/after training" in without.how


def test_without_a_closing_pair_of_the_metric_the_pairs_after_training_stand() -> None:
    recs = [_rec(_m(v, 0.02), _m(v * 1.05, 0.02), number=i) for i, v in enumerate((1.0, 2.0, 3.0))]
    other_metric = {0: {"energy_mj": _m(1.0, 0.02)}}
    iv = retest_interval(recs[0], recs, closing=other_metric)
    assert iv is not None and iv.pairs == 3 and "before/after training" in iv.how
    only_one = {2: {"latency_ms": _m(3.3, 0.02)}}  # a closing pair: it alone is used, the others measured once
    iv = retest_interval(recs[0], recs, closing=only_one)
    assert iv is not None and iv.pairs == 1 and iv.value == pytest.approx(1.0)


def test_a_trial_whose_measurement_was_reused_takes_the_closing_retest_of_its_source() -> None:
    source = _rec(_m(1.0, 0.02), number=3)
    reused_first = Measurement("latency_ms", 1.0, "ms", "measured:test-double", math.exp(-0.02), math.exp(0.02), 10, extra={"reused_from_trial": 3})
    reused = _rec(reused_first, number=7)  # the same network, trained with other training params
    closing = {3: {"latency_ms": _m(1.2, 0.02)}}
    iv = retest_interval(reused, [source, reused], closing=closing)
    assert iv is not None and iv.value == pytest.approx(math.sqrt(1.2))  # centred between its two measurements
    assert iv.pairs == 1  # the pair is counted once, as the source's


def test_no_pair_or_no_interval_gives_no_retest_interval() -> None:
    one = _rec(_m(1.0, 0.05))  # measured once: no pair in the study
    assert retest_pairs([one]) == [] and retest_interval(one, [one]) is None
    no_ci = _rec(Measurement("latency_ms", 1.0, "ms", "measured:test-double"), _m(1.0, 0.05))
    assert retest_interval(no_ci, [no_ci]) is None
    pruned = _rec(_m(1.0, 0.05), _m(1.1, 0.05), status="pruned")
    assert retest_pairs([pruned]) == []  # only trained trials count


def test_few_pairs_give_a_wide_interval_and_a_trial_measured_once_gets_one_too() -> None:
    pairs = [_rec(_m(v, 0.02), _m(v * 1.05, 0.02)) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)]
    once = _rec(_m(2.0, 0.02))
    wide, narrow = retest_interval(once, pairs[:2] + [once]), retest_interval(once, pairs + [once])
    assert wide is not None and narrow is not None
    assert wide.low < narrow.low < 2.0 < narrow.high < wide.high
    assert wide.value == pytest.approx(2.0)  # measured once: centred on its one value


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real study per keep mode, shared by the tests below (each reads it; one re-runs the
    closing retest, which leaves every assertion of the others true)."""
    pytest.importorskip("onnxruntime")
    tmp = tmp_path_factory.mktemp("retest")
    return {keep: _kept_study(tmp, keep) for keep in ("all", "none")}


def _kept_study(tmp: Path, keep: str) -> Any:
    spec = tiny_digits_spec(tmp / f"{keep}.db", f"retest-{keep}", trials=3, keep_models=keep, runtime="onnxruntime")
    study, build, train = study_from_file(parse_study_file(spec))
    study.optimize(build, train, n_trials=3)
    return study


def test_a_kept_network_is_measured_again_after_training_and_others_are_not(studies: dict[str, Any]) -> None:
    pytest.importorskip("onnxruntime")
    kept = studies["all"]
    trained = [r for r in kept.records() if r.status == "trained"]
    assert trained and all("latency_ms" in r.final_hardware for r in trained)
    for r in trained:  # a second, independent measurement of the same network, in the study's runtime
        a, b = r.hardware["latency_ms"], r.final_hardware["latency_ms"]
        assert b.value != a.value and b.source == a.source and b.source.endswith("[onnxruntime]")
    assert len(retest_pairs(kept.records())) == len(trained)
    none = studies["none"]
    assert all(not r.final_hardware for r in none.records())  # nothing kept: measured once


def _first_measured(study: Any) -> dict[int, Any]:
    """Trials with a latency measurement of their own (not reused from a trial of the same network)."""
    return {r.number: r for r in study.records() if "latency_ms" in r.hardware and "reused_from_trial" not in r.hardware["latency_ms"].extra}


def test_the_run_ends_with_the_kept_networks_and_a_few_others_measured_once_more_by_the_study_s_meter(studies: dict[str, Any]) -> None:
    pytest.importorskip("onnxruntime")
    kept = studies["all"]
    closing = closing_hardware(kept.optuna_study.user_attrs)
    measured = _first_measured(kept)
    trained = {n for n, r in measured.items() if r.status == "trained"}
    assert trained and trained <= set(closing) <= set(measured)
    for n, c in closing.items():  # the study's meter, at its reference speed, after every trial ended
        lat, first = c["latency_ms"], measured[n].hardware["latency_ms"]
        assert lat.source == first.source and lat.value != first.value
        assert lat.extra["measured_at"] > max(r.hardware["latency_ms"].extra["measured_at"] for r in measured.values())
    iv = retest_interval(measured[min(trained)], kept.records(), closing=closing)
    assert iv is not None and iv.pairs == len(closing) and iv.pair_kind == "closing_retest"
    check = kept.summary().closing_check  # the summary says how far the closing retest moved
    assert check is not None and check["n"] == len(closing) and check["between_rel_sd"] is not None
    out = io.StringIO()
    print_summary(kept.summary(), Console(file=out, width=200))
    assert f"Measured again when the run ended (the closing retest), {len(closing)} networks" in out.getvalue()
    assert len(set(closing) - trained) <= OTHER_NETWORKS
    none = studies["none"]  # nothing kept, nothing to export: no closing retest
    assert closing_hardware(none.optuna_study.user_attrs) == {}


def test_the_others_are_spread_over_the_run() -> None:
    assert _spread(list(range(20)), 8) == [0, 3, 5, 8, 11, 14, 16, 19]
    assert _spread([4, 9], 8) == [4, 9] and _spread([4, 9, 12], 1) == [4]


def test_a_network_the_closing_retest_cannot_measure_keeps_its_values_and_the_rest_are_measured(studies: dict[str, Any]) -> None:
    pytest.importorskip("onnxruntime")
    kept = studies["all"]
    meter, calls = kept.default_measure(), []

    def flaky(model: Any, params: dict[str, Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the device went away")
        return meter(model, params)

    before = closing_hardware(kept.optuna_study.user_attrs)
    first, *rest = sorted(before)
    assert rest and kept.closing_retest(flaky) == rest
    after = closing_hardware(kept.optuna_study.user_attrs)
    assert after[first]["latency_ms"].value == before[first]["latency_ms"].value  # left as it was
    assert all(after[n]["latency_ms"].value != before[n]["latency_ms"].value for n in rest)


def test_a_meter_of_the_user_s_own_is_not_called_after_the_trials(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    spec = tiny_digits_spec(tmp_path / "own.db", "retest-own", trials=3, keep_models="all", runtime="onnxruntime")
    study, build, train = study_from_file(parse_study_file(spec))
    meter, calls = study.default_measure(), []

    def mine(model: Any, params: dict[str, Any]) -> Any:
        calls.append(params)
        return meter(model, params)

    study.optimize(build, train, measure=mine, n_trials=3)
    trained = sum(r.status == "trained" for r in study.records())
    assert len(calls) <= 3 + trained  # before training, and after training for a kept one: nothing at the close
    assert closing_hardware(study.optuna_study.user_attrs) == {}
    assert study.closing_retest(mine) and len(calls) > 3 + trained  # asked for: it runs with that meter


def test_a_kept_network_whose_measurement_was_reused_is_measured_again_as_its_source() -> None:
    """The default study keeps its best network, often trained with the training params of a network
    measured earlier (the same architecture): its source trial is measured at the close."""
    import optuna

    from hwtune.study._closing import measure_again
    from hwtune.vocabulary import HARDWARE_ATTR, PARAMS_ATTR, STATUS_ATTR

    lat = {"metric": "latency_ms", "value": 1.0, "unit": "ms", "source": "measured:timer", "ci_low": 0.9, "ci_high": 1.1, "repeats": 10}
    ost = optuna.create_study()
    dist = {"w": optuna.distributions.IntDistribution(1, 100)}
    for n, (w, attrs) in enumerate([
        (1, {}), (2, {}),  # measured, not kept
        (3, {}),  # the network measured first
        (3, {"extra": {"reused_from_trial": 2}}),  # the same network, other training params: kept
    ]):
        ua = {STATUS_ATTR: "trained", PARAMS_ATTR: {"w": w}, HARDWARE_ATTR: {"latency_ms": {**lat, **attrs}}}
        ost.add_trial(optuna.trial.create_trial(params={"w": w}, distributions=dist, value=0.1, user_attrs=ua))
    study = SimpleNamespace(
        optuna_study=ost, input_shape=(1, 8, 8),
        model_keeper=SimpleNamespace(summary=lambda st: SimpleNamespace(records={3: SimpleNamespace(kept=True)})),
    )
    measured: list[int] = []

    def meter(model: Any, params: dict[str, Any]) -> Any:
        measured.append(model)
        return SimpleNamespace(measurements={"latency_ms": _m(1.1, 0.05)})

    assert measure_again(study, meter, build=lambda params: params["w"], others=1) == [0, 2]
    assert measured == [1, 3]  # the kept network's source (trial 2, w=3), and one other
    closing = closing_hardware(ost.user_attrs)
    rec = {r.number: r for r in (SimpleNamespace(number=t.number, status="trained",
           hardware={"latency_ms": Measurement.from_dict(t.user_attrs[HARDWARE_ATTR]["latency_ms"])}, final_hardware={}) for t in ost.trials)}
    iv = retest_interval(rec[3], rec.values(), closing=closing)
    assert iv is not None and iv.pairs == 2 and iv.value == pytest.approx(math.sqrt(1.1))  # trial 3 takes trial 2's closing retest
