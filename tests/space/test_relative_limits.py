"""Limits relative to the device (``latency_ms <= q30``): parsing, refusal, unresolved evaluation."""

from __future__ import annotations

import pickle

import pytest

from hwtune.exceptions import ConfigError
from hwtune.space import parse_constraint, parse_constraints
from hwtune.space._constraints import UnresolvedLimitError


@pytest.mark.parametrize(
    "text, op, q",
    [("latency_ms <= q30", "<=", 0.30), ("latency_ms<q5", "<", 0.05), ("throughput_sps >= q60", ">=", 0.60),
     ("energy_mj <= q12.5", "<=", 0.125), ("size_mb <= Q99", "<=", 0.99)],
)
def test_parse_relative_limit(text, op, q):
    c = parse_constraint(text)
    assert c.op == op and c.quantile == pytest.approx(q)
    assert c.is_relative and not c.is_resolved and c.limit is None
    assert c.is_hardware


def test_text_is_as_written_and_stable_through_resolution():
    c = parse_constraint("latency_ms <= q40")
    assert c.text == "latency_ms <= q40"
    r = c.resolve(1.25)
    assert r.text == "latency_ms <= q40"  # what a study's definition stores and a resume compares
    assert r.bound == 1.25 and r.is_resolved and r.is_relative
    assert "1.25" in str(r) and "q40" in str(r)  # what reports print
    assert parse_constraint("latency_ms <= 1.5").text == "latency_ms <= 1.5"


def test_unresolved_relative_limit_refuses_to_evaluate():
    c = parse_constraint("latency_ms <= q30")
    for call in (lambda: c.violation(1.0), lambda: c.satisfied(1.0), lambda: c.bound):
        with pytest.raises(UnresolvedLimitError) as e:
            call()
        assert isinstance(e.value, ConfigError)
        assert "latency_ms <= q30" in str(e.value) and "calibrat" in str(e.value)
    assert getattr(c, "bound", None) is None  # checks that skip unresolved limits can ask politely


def test_resolved_relative_limit_evaluates_like_an_absolute_one():
    r = parse_constraint("latency_ms <= q30").resolve(2.0)
    a = parse_constraint("latency_ms <= 2")
    for v in (1.0, 2.0, 3.0):
        assert r.violation(v) == a.violation(v) and r.satisfied(v) == a.satisfied(v)
    assert pickle.loads(pickle.dumps(r)) == r  # travels to worker processes


@pytest.mark.parametrize("metric", ["error", "accuracy"])
def test_quality_metric_with_relative_limit_is_a_config_error(metric):
    with pytest.raises(ConfigError) as e:
        parse_constraints([f"{metric} <= q30"])
    assert e.value.field == "constraints[0]"
    assert metric in e.value.problem and "quality" in e.value.problem
    assert e.value.fix and "absolute" in e.value.fix


@pytest.mark.parametrize("text", ["latency_ms <= q0", "latency_ms <= q100", "latency_ms <= q", "latency_ms <= q-5", "latency_ms <= qx"])
def test_bad_quantile_names_field_and_fix(text):
    with pytest.raises(ConfigError) as e:
        parse_constraints([text])
    assert e.value.field == "constraints[0]"
    assert e.value.fix and "0 < NN < 100" in e.value.fix or "cannot parse" in e.value.problem


def test_resolving_an_absolute_limit_is_an_error():
    with pytest.raises(ValueError):
        parse_constraint("latency_ms <= 2").resolve(3.0)
    with pytest.raises(ValueError):
        parse_constraint("latency_ms <= q20").resolve(float("nan"))


def test_same_metric_and_direction_twice_is_refused_for_relative_limits_too():
    with pytest.raises(ConfigError):
        parse_constraints(["latency_ms <= q30", "latency_ms <= 2"])
