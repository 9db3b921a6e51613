"""Candidates of a search space: encoding, enumeration, random draws, mutations, spaces from Optuna trials."""

from __future__ import annotations

import numpy as np

from hwtune.space import SearchSpace
from hwtune.space._candidates import Encoder, enumerate_space, mutate_configs, random_configs, space_from_distributions

SPACE = SearchSpace.from_dict({
    "kind": {"type": "categorical", "choices": ["a", "b"], "role": "architecture"},
    "width": {"type": "int", "low": 8, "high": 64, "log": True, "role": "architecture"},
    "depth": {"type": "int", "low": 1, "high": 3, "role": "architecture", "condition": "kind == 'b'"},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "act": "relu",
})


def test_encoder_random_and_mutations_respect_the_space():
    rng = np.random.default_rng(0)
    cfgs = random_configs(SPACE, 200, rng)
    for c in cfgs:
        assert c["act"] == "relu" and 8 <= c["width"] <= 64 and 1e-4 <= c["lr"] <= 1e-1
        assert ("depth" in c) == (c["kind"] == "b")
    X = Encoder(SPACE).encode(cfgs)
    assert X.shape == (200, 2 + 1 + 1 + 1 + 1) and X.min() >= 0 and X.max() <= 1
    active = X[:, 4]  # depth's "active" column
    assert np.array_equal(active == 1, np.array([c["kind"] == "b" for c in cfgs]))
    kids = mutate_configs(SPACE, cfgs[:5], 50, rng)
    for parent, kid in zip(cfgs[:5] * 10, kids):
        assert kid != parent
        assert ("depth" in kid) == (kid["kind"] == "b")
    hw = Encoder(SPACE, SPACE.hardware_names())
    assert hw.dim == 2 + 1 + 2


def test_enumeration_with_conditions_and_limit():
    small = SearchSpace.from_dict({
        "kind": {"type": "categorical", "choices": ["a", "b"]},
        "depth": {"type": "int", "low": 1, "high": 3, "condition": "kind == 'b'"},
        "x": 1,
    })
    cfgs = enumerate_space(small, 100)
    assert cfgs is not None and len(cfgs) == 1 + 3 and all(c["x"] == 1 for c in cfgs)
    assert enumerate_space(small, 3) is None
    assert enumerate_space(SPACE, 10**6) is None  # a float param: not enumerable


def test_space_inferred_from_plain_optuna_trials_finds_the_condition():
    import optuna.distributions as od

    dists = {"kind": od.CategoricalDistribution(["lin", "rbf"]), "x": od.FloatDistribution(0, 1), "gamma": od.FloatDistribution(1e-3, 1, log=True)}
    seen = [{"kind": "lin", "x": 0.1}, {"kind": "rbf", "x": 0.2, "gamma": 0.1}, {"kind": "rbf", "x": 0.3, "gamma": 0.5}]
    sp = space_from_distributions(dists, seen)
    assert sp["gamma"].condition is not None and sp["gamma"].condition.holds({"kind": "rbf"})
    assert not sp["gamma"].condition.holds({"kind": "lin"})
