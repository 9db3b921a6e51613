"""Shared fixtures: small spaces and synthetic cost data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from hwtune.space import CategoricalParam, Condition, FixedParam, FloatParam, IntParam, SearchSpace


@pytest.fixture
def space() -> SearchSpace:
    """Architecture params (int, log-int, categorical, conditional), a fixed one and a training one."""
    return SearchSpace({
        "layers": IntParam(role="architecture", low=1, high=4),
        "width": IntParam(role="architecture", low=8, high=128, log=True),
        "kernel": CategoricalParam(role="architecture", choices=(3, 5)),
        "extra_width": IntParam(role="architecture", low=8, high=64, condition=Condition("layers", ">=", 3)),
        "input_size": FixedParam(role="architecture", value=32),
        "lr": FloatParam(role="training", low=1e-4, high=1e-1, log=True),
    })


def cost_of(p: dict) -> float:
    """A made-up latency that adds up over layers: each layer costs width^2 * kernel^2."""
    c = 0.5 + p["layers"] * (p["width"] / 64.0) ** 2 * (p["kernel"] / 3.0) ** 2
    if "extra_width" in p:
        c += (p["extra_width"] / 64.0) ** 2
    return c


def flops(p: dict) -> dict[str, float]:
    """Derived feature of the made-up family: the cost-driving term itself."""
    f = p["layers"] * (p["width"] / 64.0) ** 2 * (p["kernel"] / 3.0) ** 2
    return {"mflops": f + ((p["extra_width"] / 64.0) ** 2 if "extra_width" in p else 0.0)}


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = {"layers": int(rng.integers(1, 5)), "width": int(np.exp(rng.uniform(np.log(8), np.log(128)))),
             "kernel": int(rng.choice([3, 5])), "input_size": 32, "lr": 1e-3}
        if p["layers"] >= 3:
            p["extra_width"] = int(rng.integers(8, 65))
        out.append(p)
    return out


@pytest.fixture
def data(space: SearchSpace) -> tuple[list[dict], np.ndarray, list[dict], np.ndarray]:
    """60 training and 400 test candidates with 3 % multiplicative noise on the made-up latency."""
    rng = np.random.default_rng(1)
    X = sample(space, 460, seed=2)
    y = np.array([cost_of(p) for p in X]) * np.exp(rng.normal(0, 0.03, len(X)))
    return X[:60], y[:60], X[60:], y[60:]
