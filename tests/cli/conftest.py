"""Fixtures shared with the cost-model tests."""

from tests.costmodel.conftest import space  # noqa: F401  (the search space of the cost-model tests, a fixture)
