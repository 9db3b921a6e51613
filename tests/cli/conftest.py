"""Fixtures shared by the CLI tests: the cost-model tests' space; torch's thread count restored after
each test (the CLI sets it from --threads)."""

from collections.abc import Iterator

import pytest
import torch

from tests.costmodel.conftest import space  # noqa: F401  (the search space of the cost-model tests, a fixture)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
