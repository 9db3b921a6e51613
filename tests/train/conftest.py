"""Fixtures shared by the training tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from hwtune.hardware._device import torch_threads
from hwtune.train import load_digits_dataset


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # two OpenMP threads on a busy 2-CPU machine can stall each other for seconds
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()
