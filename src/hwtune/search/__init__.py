"""What to try next: samplers (and, later, pruners and the benchmark harness). No PyTorch here."""

from hwtune.search._samplers import SAMPLERS, make_sampler

__all__ = ["SAMPLERS", "make_sampler"]
