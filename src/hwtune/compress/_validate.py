"""Validation of compression params, shared by the compressions: one message per field, naming the fix."""

from __future__ import annotations

import math
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["check_fraction"]


def check_fraction(value: Any, field: str, meaning: str) -> float:
    """``value`` as a float strictly inside (0, 1), else a :class:`ConfigError` naming ``field``.

    Args:
        value: the user's value (a bool, a string, NaN or a bound are refused).
        field: the param's name (``prune_ratio``, ``prune_alpha``, ``sparsity``).
        meaning: what the number means, for the message (e.g. "share of channels removed").
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"{field} must be a number strictly between 0 and 1 ({meaning}); got {value!r} of type {type(value).__name__}.", f"write {field}: 0.5, say.")
    v = float(value)
    if math.isnan(v) or not 0.0 < v < 1.0:
        raise ConfigError(field, f"{field} must be strictly between 0 and 1 ({meaning}); got {value!r}.", f"choose {field} in (0, 1), e.g. 0.25 or 0.5; leave it out for no compression.")
    return v
