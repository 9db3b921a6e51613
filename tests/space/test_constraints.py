from __future__ import annotations

import math

import pytest

from hwtune.exceptions import ConfigError
from hwtune.space import Objective, parse_constraint, parse_constraints, parse_objectives


def test_parse_and_violation_sign_convention():
    c = parse_constraint("latency_ms <= 5")
    assert (c.metric, c.op, c.bound) == ("latency_ms", "<=", 5.0)
    assert c.is_hardware
    assert c.satisfied(5.0) and not c.satisfied(5.1)
    assert c.violation(4.0) == pytest.approx(-0.2)
    assert c.violation(6.0) == pytest.approx(0.2)
    assert not c.satisfied(math.nan)


def test_strict_and_lower_bounds():
    assert parse_constraint("energy_mj < 20").violation(20.0) > 0
    lo = parse_constraint("accuracy >= 0.9")
    assert not lo.is_hardware
    assert lo.violation(0.95) < 0 < lo.violation(0.8)


@pytest.mark.parametrize(
    "text, words",
    [
        ("latency <= 5", "unknown metric"),
        ("latency_ms =< 5", "cannot parse"),
        ("latency_ms <= five", "cannot parse"),
        ("", "cannot parse"),
    ],
)
def test_bad_constraint_text(text, words):
    with pytest.raises(ConfigError) as e:
        parse_constraints([text])
    assert e.value.field == "constraints[0]"
    assert words in str(e.value)


def test_duplicate_constraint_rejected():
    with pytest.raises(ConfigError, match="given twice"):
        parse_constraints(["latency_ms <= 5", "latency_ms <= 3"])


def test_objective_forms():
    assert parse_objectives("minimize: error") == [Objective("error", "minimize")]
    assert parse_objectives({"minimize": ["error", "latency_ms"]}) == [Objective("error", "minimize"), Objective("latency_ms", "minimize")]
    assert parse_objectives("minimize: [error, energy_mj]")[1] == Objective("energy_mj", "minimize")
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_objectives({"minimize": "eror"})
    with pytest.raises(ConfigError, match="direction"):
        parse_objectives({"lower": "error"})
