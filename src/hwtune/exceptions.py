"""Exceptions raised by hwtune.

Every error a user can cause names the offending field and says what would fix it.
"""

from __future__ import annotations

__all__ = ["HwtuneError", "ConfigError", "TrialFailure", "NonFiniteLossError"]


class HwtuneError(Exception):
    """Base class of hwtune's own errors."""


class ConfigError(HwtuneError, ValueError):
    """A study file, a search space or an argument is invalid.

    Args:
        field: dotted path of the offending field, e.g. ``space.filters_0.low``.
        problem: what is wrong with it.
        fix: what the user should do instead.
    """

    def __init__(self, field: str, problem: str, fix: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        message = f"{field}: {problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)


class TrialFailure(HwtuneError):
    """A single trial could not be completed; the study records it and goes on."""


class NonFiniteLossError(TrialFailure):
    """Training produced a NaN or infinite loss."""
