"""What to try next: samplers and pruners. No PyTorch, no study (the bench harness is :mod:`hwtune.bench`)."""

from hwtune.search._samplers import SAMPLERS, make_sampler

__all__ = ["SAMPLERS", "make_sampler"]

# pruners (issue 6)
from hwtune.search._pruners import COST_ATTR, CURVE_ATTR, PRUNERS, CostAwarePruner, make_pruner  # noqa: E402

__all__ += ["PRUNERS", "make_pruner", "CostAwarePruner", "CURVE_ATTR", "COST_ATTR"]

# hwtune's hardware-aware sampler (issue 5); loaded on first use (it imports SciPy's optimizers)
__all__ += ["HwSampler", "PROPOSAL_ATTR"]


def __getattr__(name: str) -> object:
    if name in ("HwSampler", "PROPOSAL_ATTR"):
        from hwtune.search import _hwsampler

        return getattr(_hwsampler, name)
    raise AttributeError(f"module 'hwtune.search' has no attribute {name!r}")
