"""The trial vocabulary's reader of stored trials (duck-typed: no Optuna needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hwtune.vocabulary import HARDWARE_ATTR, METRICS_ATTR, PARAMS_ATTR, STATUS_ATTR, read_trial, trial_status


def _trial(state: str, **attrs: object) -> SimpleNamespace:
    return SimpleNamespace(number=3, state=SimpleNamespace(name=state), params={"a": 1}, user_attrs=attrs,
                           system_attrs={}, values=None, constraints={})


@pytest.mark.parametrize("state,status,expected", [
    ("RUNNING", "trained", "running"), ("WAITING", None, "waiting"), ("FAIL", "running", "interrupted"),
    ("PRUNED", "running", "pruned"), ("FAIL", "trained", "failed"), ("COMPLETE", None, "trained"),
    ("PRUNED", "over_budget", "over_budget"),
])
def test_status_from_state_and_stored_status(state, status, expected):
    attrs = {STATUS_ATTR: status} if status else {}
    assert trial_status(_trial(state, **attrs)) == expected


def test_reader_completes_quality_and_leaves_predictions_out_of_measured_values():
    t = _trial("COMPLETE", **{STATUS_ATTR: "trained", PARAMS_ATTR: {"a": 1, "b": 2}, METRICS_ATTR: {"error": 0.25},
                              HARDWARE_ATTR: {"latency_ms": {"value": 2.0, "source": "measured:timer"},
                                              "size_mb": {"value": 1.0, "source": "predicted:additive"}}})
    s = read_trial(t)
    assert s.params == {"a": 1, "b": 2} and s.metrics == {"error": 0.25, "accuracy": 0.75}
    assert s.measured() == {"latency_ms": 2.0, "error": 0.25, "accuracy": 0.75}
