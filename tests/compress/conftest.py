"""Fixtures shared by the compression tests: scikit-learn's digits and a small CNN trained on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hwtune.hardware._device import torch_threads
from hwtune.train import get_family, load_digits_dataset


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # two OpenMP threads on a busy 2-CPU machine can stall each other for seconds
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def digits() -> Any:
    return load_digits_dataset()


def train_cnn(digits: Any, params: dict[str, Any], epochs: int = 25, seed: int = 0) -> Any:
    """A built-in ``cnn`` trained on the digits with a plain Adam loop (about a second)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    net = get_family("cnn").build(params, (1, 8, 8), 10)
    x, y = torch.as_tensor(digits.x_train), torch.as_tensor(digits.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="session")
def trained_cnn(digits: Any) -> Any:
    with torch_threads(1):
        return train_cnn(digits, {"conv_layers": 2, "filters_0": 16, "filters_1": 32, "dense_units": 64})
