from __future__ import annotations

import optuna
import pytest

from hwtune.exceptions import ConfigError
from hwtune.space import CategoricalParam, FixedParam, IntParam, SearchSpace


def _space() -> SearchSpace:
    return SearchSpace.from_dict(
        {
            "layers": {"type": "int", "low": 1, "high": 3, "role": "architecture"},
            "width_0": {"type": "int", "low": 4, "high": 64, "log": True, "role": "architecture"},
            "width_1": {"type": "int", "low": 4, "high": 64, "log": True, "role": "architecture", "condition": "layers >= 2"},
            "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
            "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
            "epochs": 3,
        }
    )


def test_from_dict_types_roles_and_fixed_values():
    s = _space()
    assert isinstance(s["layers"], IntParam) and s["layers"].role == "architecture"
    assert isinstance(s["opt"], CategoricalParam) and s["opt"].role == "training"
    assert isinstance(s["epochs"], FixedParam) and s["epochs"].value == 3
    assert s.hardware_names() == ["layers", "width_0", "width_1"]


def test_conditional_params_are_suggested_only_when_active():
    s = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_inactive = seen_active = False
    for _ in range(30):
        t = study.ask()
        p = s.suggest(t)
        assert p["epochs"] == 3
        if p["layers"] >= 2:
            assert "width_1" in p
            seen_active = True
        else:
            assert "width_1" not in p
            seen_inactive = True
        study.tell(t, 0.0)
    assert seen_active and seen_inactive


def test_hardware_key_ignores_training_params():
    s = _space()
    a = {"layers": 1, "width_0": 8, "lr": 0.1, "opt": "sgd", "epochs": 3}
    b = {**a, "lr": 0.5, "opt": "adam"}
    c = {**a, "width_0": 9}
    assert s.hardware_key(a) == s.hardware_key(b)
    assert s.hardware_key(a) != s.hardware_key(c)


def test_to_dict_round_trips():
    s = _space()
    again = SearchSpace.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()


@pytest.mark.parametrize(
    "spec, field, words",
    [
        ({"a": {"type": "int", "low": 5, "high": 1}}, "space.a", "inverted"),
        ({"a": {"type": "float", "low": 1.0, "high": 1.0}}, "space.a", "empty range"),
        ({"a": {"type": "categorical", "choices": []}}, "space.a.choices", "empty"),
        ({"a": {"type": "int", "low": 0, "high": 4, "log": True}}, "space.a.low", "log"),
        ({"a": {"type": "int", "low": 1, "high": 4, "stepp": 2}}, "space.a.stepp", "unknown key"),
        ({"a": {"type": "integer", "low": 1, "high": 4}}, "space.a.type", "unknown"),
        ({"a": {"type": "int", "low": "one", "high": 4}}, "space.a.low", "number"),
        ({"a": {"type": "int", "low": 1.5, "high": 4}}, "space.a.low", "integer"),
        ({"a": {"type": "int", "high": 4}}, "space.a.low", "missing"),
        ({"a": {"type": "int", "low": 1, "high": 4, "condition": "b >= 2"}}, "space.a.condition", "not a param listed before"),
        ({"a": {"type": "int", "low": 1, "high": 4, "condition": "b >>= 2"}}, "space.a.condition", "cannot parse"),
        ({"a": {"type": "int", "low": 1, "high": 4, "role": "arch"}}, "space.a.role", "unknown role"),
        ({"a": [1, 2]}, "space.a", "ambiguous"),
    ],
)
def test_bad_space_entries_name_the_field_and_fix(spec, field, words):
    with pytest.raises(ConfigError) as e:
        SearchSpace.from_dict(spec)
    assert e.value.field == field
    assert words in str(e.value)


def test_condition_holds_and_tests_a_value():
    from hwtune.space import Condition

    c = Condition.parse("conv_layers >= 2", "filters_1.condition")
    assert c.test(2) and c.test(3) and not c.test(1)
    assert not c.test("two")  # incomparable types: false, not an error
    assert c.holds({"conv_layers": 3}) and not c.holds({"conv_layers": 1})
    assert not c.holds({})  # the param is absent (itself inactive): false
