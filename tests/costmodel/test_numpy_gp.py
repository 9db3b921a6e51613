"""The NumPy GP (gradients, interpolation, the linear kernel) and the additive-kernel GP cost model."""

from __future__ import annotations

import numpy as np
import pytest

from hwtune.costmodel import AdditiveGPCostModel
from hwtune.costmodel._numpy_gp import GaussianProcess, check_gradient
from hwtune.space import SearchSpace
from hwtune.space._candidates import random_configs


@pytest.mark.parametrize("blocks,linear", [(None, False), ([2, 2], False), ([1, 3], True), (None, True)])
def test_marginal_likelihood_gradient_matches_finite_differences(blocks, linear):
    assert check_gradient(0, blocks, linear) < 1e-4


def test_gp_interpolates_and_is_uncertain_away_from_data():
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    f = lambda A: np.sin(4 * A[:, 0]) + A[:, 1] ** 2  # noqa: E731
    gp = GaussianProcess().fit(X, f(X))
    mu, sd = gp.predict(X)
    assert np.max(np.abs(mu - f(X))) < 0.05
    Xq = rng.random((200, 2))
    mu_q, _ = gp.predict(Xq)
    assert np.sqrt(np.mean((mu_q - f(Xq)) ** 2)) < 0.15
    _, sd_far = gp.predict(np.array([[3.0, 3.0]]))
    assert sd_far[0] > 5 * sd.max()
    # conditioning on fantasies keeps the hyperparameters and shrinks the uncertainty there
    g2 = gp.conditioned(np.array([[3.0, 3.0]]), np.array([1.0]))
    assert g2.hyper is gp.hyper and g2.predict(np.array([[3.0, 3.0]]))[1][0] < 0.2 * sd_far[0]


def test_linear_kernel_extrapolates_additive_costs():
    rng = np.random.default_rng(1)
    w = np.array([0.2, 1.0, 3.0, 0.5, 2.0])
    X = np.eye(5)[rng.integers(0, 5, size=(12, 3))].reshape(12, -1)  # three one-hot slots
    y = X @ np.tile(w, 3)
    Xq = np.eye(5)[rng.integers(0, 5, size=(100, 3))].reshape(100, -1)
    lin = GaussianProcess(linear=True).fit(X, y)
    err = np.abs(lin.predict(Xq)[0] - Xq @ np.tile(w, 3))
    assert np.median(err) < 0.3




def test_measured_cost_model_fits_params_and_gives_probabilities():
    sp = SearchSpace.from_dict({f"e{i}": {"type": "categorical", "choices": ["s", "m", "l"], "role": "architecture"} for i in range(4)})
    cost = {"s": 0.5, "m": 1.0, "l": 2.0}
    rng = np.random.default_rng(0)
    cfgs = random_configs(sp, 40, rng)
    y = np.array([sum(cost[c[f"e{i}"]] for i in range(4)) for c in cfgs])
    m = AdditiveGPCostModel(sp).fit(cfgs[:25], y[:25])
    mu, sd = m.predict(cfgs[25:])
    assert np.max(np.abs(mu - y[25:])) < 0.5
    p = m.prob_below(cfgs[25:], 5.0)
    clear = np.abs(y[25:] - 5.0) > 0.5  # away from the bound the classification is right
    assert clear.sum() >= 5 and np.array_equal((p > 0.5)[clear], (y[25:] < 5.0)[clear])
