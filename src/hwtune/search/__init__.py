"""What to try next: samplers (hwtune's hardware-aware :class:`HwSampler`, Optuna's by name) and pruners.

No PyTorch, no study, no hardware: a sampler sees params, stored measurements and the study's cost
model (:mod:`hwtune.costmodel`). The bench harness that runs whole searches is :mod:`hwtune.bench`.
"""

from hwtune.search._curve_forecast import StudyBudget
from hwtune.search._curves import CurveModel, CurvePrediction, fit_curves
from hwtune.search._pruners import (
    COST_ATTR,
    CURVE_ATTR,
    PRUNERS,
    CostAwarePruner,
    CurvePruner,
    make_pruner,
)
from hwtune.search._samplers import SAMPLERS, make_sampler

__all__ = [
    "SAMPLERS",
    "make_sampler",
    "HwSampler",
    "PROPOSAL_ATTR",
    "publish_proposal",
    "PRUNERS",
    "make_pruner",
    "CostAwarePruner",
    "CurvePruner",
    "StudyBudget",
    "CurveModel",
    "CurvePrediction",
    "fit_curves",
    "CURVE_ATTR",
    "COST_ATTR",
]


def __getattr__(name: str) -> object:
    # hwtune's sampler loads on first use (it imports SciPy's optimizers)
    if name in ("HwSampler", "PROPOSAL_ATTR", "publish_proposal"):
        from hwtune.search import _hwsampler

        return getattr(_hwsampler, name)
    raise AttributeError(f"module 'hwtune.search' has no attribute {name!r}")
