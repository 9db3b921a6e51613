from __future__ import annotations

import numpy as np
import pytest

from hwtune.costmodel import Featurizer
from hwtune.exceptions import ConfigError

from .conftest import flops


def test_columns_onehot_scaled_log_and_active(space):
    fz = Featurizer(space)
    assert fz.param_names == ["layers", "width", "kernel", "extra_width"]  # fixed and training left out
    assert fz.feature_names == ["layers", "width", "kernel=3", "kernel=5", "extra_width", "extra_width:active"]
    F = fz.transform([
        {"layers": 1, "width": 8, "kernel": 5, "lr": 0.1},
        {"layers": 4, "width": 128, "kernel": 3, "extra_width": 64},
    ])
    assert F.shape == (2, 6)
    np.testing.assert_allclose(F[0], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(F[1], [1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    mid = fz.transform([{"layers": 2, "width": 32, "kernel": 3}])[0]
    assert mid[1] == pytest.approx(0.5)  # 32 is the geometric middle of [8, 128]: log scaling


def test_derived_features_appended_and_log(space):
    fz = Featurizer(space, flops)
    F = fz.transform([{"layers": 2, "width": 64, "kernel": 3}])
    assert fz.feature_names[-1] == "derived:mflops"
    assert F[0, -1] == pytest.approx(2.0)
    fz_log = Featurizer(space, flops, log_derived=True, include_params=False)
    F = fz_log.transform([{"layers": 2, "width": 64, "kernel": 3}])
    assert F.shape == (1, 1)
    assert F[0, 0] == pytest.approx(np.log1p(2.0))


@pytest.mark.parametrize(
    "params, field",
    [
        ({"width": 8, "kernel": 3}, "layers"),
        ({"layers": 1, "width": 8, "kernel": 7}, "kernel"),
        ({"layers": 1, "width": 0, "kernel": 3}, "width"),
        ({"layers": "two", "width": 8, "kernel": 3}, "layers"),
    ],
)
def test_bad_params_name_the_param(space, params, field):
    with pytest.raises(ConfigError) as e:
        Featurizer(space).transform([params])
    assert field in e.value.field


def test_bool_is_not_the_choice_one():
    from hwtune.space import CategoricalParam, SearchSpace

    s = SearchSpace({"a": CategoricalParam(role="architecture", choices=(1, 2))})
    with pytest.raises(ConfigError):
        Featurizer(s).transform([{"a": True}])


def test_derived_keys_must_not_change(space):
    calls = iter([{"a": 1.0}, {"b": 2.0}])
    fz = Featurizer(space, lambda p: next(calls))
    fz.transform([{"layers": 1, "width": 8, "kernel": 3}])
    with pytest.raises(ConfigError, match="changed names"):
        fz.transform([{"layers": 2, "width": 8, "kernel": 3}])


def test_derived_features_are_computed_once_per_architecture(space):
    calls = []
    fz = Featurizer(space, lambda p: calls.append(1) or {"w": float(p["width"])})
    a, b = {"layers": 1, "width": 8, "kernel": 3}, {"layers": 1, "width": 16, "kernel": 3}
    F = fz.transform([a, b, {**a, "lr": 0.1}, a])  # training params do not make another architecture
    assert len(calls) == 2 and F[:, -1].tolist() == [8.0, 16.0, 8.0, 8.0]


def test_failing_derived_is_reported(space):
    def boom(p):
        raise RuntimeError("no FLOPs for you")

    with pytest.raises(ConfigError, match="no FLOPs for you"):
        Featurizer(space, boom).transform([{"layers": 1, "width": 8, "kernel": 3}])


def test_no_params_needs_derived(space):
    with pytest.raises(ConfigError):
        Featurizer(space, include_params=False)
