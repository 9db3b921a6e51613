"""The trust region of the best network: which candidates it holds, and that on a space with numeric
params every other proposal after the start-up is picked inside it (issue 19: on real MNIST the GP,
with a dozen trained networks, proposed the edges of the learning-rate range on the best network)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from hwtune.exceptions import ConfigError
from hwtune.search import HwSampler
from hwtune.search._pool import trust_region
from hwtune.space import SearchSpace

SPACE = {
    "layers": {"type": "int", "low": 1, "high": 3},
    "units": {"type": "int", "low": 16, "high": 512, "log": True},
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "condition": "optimizer == 'sgd'"},
    "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
}
CENTRE = {"layers": 2, "units": 64, "optimizer": "sgd", "momentum": 0.5, "lr": 0.01, "batch_size": 64}


def test_trust_region_bounds_numbers_in_their_log_range_and_allows_one_categorical_change() -> None:
    space = SearchSpace.from_dict(SPACE)
    lr_span = math.log(0.3 / 1e-4)
    near_lr = 0.01 * math.exp(0.19 * lr_span)  # 0.19 of the log range away: inside a radius of 0.2
    far_lr = 0.01 * math.exp(0.21 * lr_span)
    configs = [
        dict(CENTRE),
        {**CENTRE, "lr": near_lr},
        {**CENTRE, "lr": far_lr},
        {**CENTRE, "batch_size": 128},  # one categorical change
        {**CENTRE, "batch_size": 128, "lr": near_lr},
        {**CENTRE, "layers": 3},  # an int step of half its range
        {k: v for k, v in CENTRE.items() if k != "momentum"} | {"optimizer": "adam"},  # adam, momentum gone: two changes
        {**CENTRE, "batch_size": 32, "optimizer": "adam"},
    ]
    assert trust_region(space, configs, CENTRE, 0.2).tolist() == [True, True, False, True, True, False, False, False]
    assert trust_region(space, configs, CENTRE, 0.6).tolist()[5]  # a wider region holds the next layer count
    assert trust_region(space, configs[6:7], CENTRE, 0.2, max_changes=2).tolist() == [True]


def _objective(p: dict) -> float:
    """An error surface with its best learning rate in the middle of the range and chance-level
    errors at both ends (as real training has it)."""
    x = (math.log10(p["lr"]) + 2.0) ** 2  # best at lr = 0.01
    err = 0.03 + 0.02 * x + 0.01 * abs(math.log2(p["units"] / 128)) + 0.005 * p["layers"]
    if p["lr"] > 0.1 or p["lr"] < 3e-4:
        err = 0.9
    return min(err, 0.9)


def _run(trust_region_every: int, n: int = 18) -> tuple[list[dict], list[dict | None]]:
    """A plain Optuna study driven by the sampler: each trial's params and the best before it."""
    space = SearchSpace.from_dict(SPACE)
    sampler = HwSampler(space, seed=3, trust_region_every=trust_region_every, n_startup=4)  # a plain study: its values are the error
    study = optuna.create_study(sampler=sampler)
    params, best_before = [], []
    for _ in range(n):
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best_before.append(dict(min(done, key=lambda t: t.value).params) if done else None)
        trial = study.ask()
        p = space.suggest(trial)
        study.tell(trial, _objective(p))
        params.append(p)
    return params, best_before


def test_every_other_proposal_after_the_start_up_lies_in_the_trust_region_of_the_best() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_dict(SPACE)
    params, best = _run(trust_region_every=2)
    # the start-up takes 4 networks; then proposal k (k = 0, 1, ...) is local when k is even
    local = [trust_region(space, [params[i]], best[i], 0.2)[0] for i in range(4, len(params)) if (i - 4) % 2 == 0]
    assert all(local) and len(local) >= 7
    off, best_off = _run(trust_region_every=0)
    outside = [not trust_region(space, [off[i]], best_off[i], 0.2)[0] for i in range(4, len(off))]
    assert any(outside)  # without it the acquisition does leave the region (the check above can fail)


@pytest.mark.parametrize("kwargs, field", [({"trust_region_every": -1}, "sampler.trust_region_every"), ({"trust_region_radius": 0.0}, "sampler.trust_region_radius")])
def test_bad_trust_region_options_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        HwSampler(SearchSpace.from_dict(SPACE), "minimize: error", **kwargs)
    assert field in str(e.value)


def test_objectives_on_a_plain_optuna_study_that_records_no_metrics_warn_once() -> None:
    """Found writing the test above: ``objectives="minimize: error"`` on a plain Optuna study (values
    only) left the sampler in its start-up for ever, silently."""
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_dict(SPACE)

    def run(sampler: HwSampler) -> list[warnings.WarningMessage]:
        study = optuna.create_study(sampler=sampler)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(5):
                trial = study.ask()
                study.tell(trial, _objective(space.suggest(trial)))
        return [w for w in caught if "sampler.objectives" in str(w.message)]

    named = run(HwSampler(space, "minimize: error", seed=0, n_startup=2))
    assert len(named) == 1 and "leave objectives" in str(named[0].message)
    assert run(HwSampler(space, seed=0, n_startup=2)) == []  # the plain form: no warning
