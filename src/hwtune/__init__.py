"""hwtune: find the most accurate neural network that fits a hardware budget on its device.

The public surface is small; heavy modules (torch, optuna) load on first use, so ``import hwtune``
is fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Study",
    "TrialContext",
    "SearchSpace",
    "ConfigError",
    "profile",
    "load_study_file",
    "study_from_file",
    "load_model",
    "export",
    "__version__",
]

_LAZY = {
    "Study": "hwtune.study",
    "TrialContext": "hwtune.study",
    "load_study_file": "hwtune.study",
    "study_from_file": "hwtune.study",
    "load_model": "hwtune.study",
    "export": "hwtune.deploy",
    "SearchSpace": "hwtune.space",
    "ConfigError": "hwtune.exceptions",
    "profile": "hwtune.hardware",
}

if TYPE_CHECKING:
    from hwtune.deploy import export
    from hwtune.exceptions import ConfigError
    from hwtune.hardware import profile
    from hwtune.space import SearchSpace
    from hwtune.study import Study, TrialContext, load_model, load_study_file, study_from_file


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwtune' has no attribute {name!r}")
