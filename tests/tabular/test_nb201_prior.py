"""Published NB201 errors as a prior of the error on another task."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwtune.tabular import NB201_EDGES, NB201_OPS, load_nb201, nb201_error_prior


def test_the_prior_is_the_published_log_error_of_the_same_cell():
    t = load_nb201()
    prior = nb201_error_prior(exclude="cifar10")
    row = 4321
    params = {e: NB201_OPS[int(c)] for e, c in zip(NB201_EDGES, t.ops[row])}
    f = prior(params)
    assert set(f) == {"published_error_cifar100", "published_error_imagenet16"}  # the target task left out
    assert f["published_error_cifar100"] == pytest.approx(math.log(1 - t.accuracy["cifar100"][row] / 100))
    assert prior.source.startswith("published:NATS-Bench")


def test_the_prior_ranks_the_target_task_well_but_not_perfectly():
    from scipy.stats import spearmanr

    t = load_nb201()
    prior = nb201_error_prior(exclude="cifar10")
    rows = np.random.default_rng(0).choice(len(t.ops), 400, replace=False)
    got = [prior({e: NB201_OPS[int(c)] for e, c in zip(NB201_EDGES, t.ops[r])})["published_error_cifar100"] for r in rows]
    rho = spearmanr(got, -t.accuracy["cifar10"][rows]).statistic
    assert 0.9 < rho < 1.0


def test_unknown_tasks_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        nb201_error_prior(["mnist"])
    with pytest.raises(ValueError):
        nb201_error_prior(["cifar10"], exclude="cifar10")


def test_the_prior_pickles_for_worker_processes():
    import pickle

    prior = nb201_error_prior()
    params = {e: "nor_conv_3x3" for e in NB201_EDGES}
    before = prior(params)
    again = pickle.loads(pickle.dumps(prior))
    assert again(params) == before
