"""Study-file specs with a few values changed or deleted (the bad-input tables start from good files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

DELETE = object()
"""As a new value: delete the key."""


def changed(base: Mapping[str, Any], changes: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """A deep copy of ``base`` with each ``path`` (keys joined by ``sep``) set to its value, or deleted."""
    spec = yaml.safe_load(yaml.safe_dump(dict(base)))
    for path, value in changes.items():
        node = spec
        keys = path.split(sep)
        for k in keys[:-1]:
            node = node[k]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return spec
