"""Small real studies for the report and dashboard tests: the real loop and storage, with a meter and a
trainer that are pure functions of the params (tests/study/_doubles), so that one study of 40 trials
takes a few seconds and holds every status: trained (within and outside an error constraint), over
budget, predicted over budget, pruned during training, failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from hwtune import Study
from tests.study import _doubles as d


def train(model: dict[str, Any], params: dict[str, Any], ctx: Any) -> dict[str, float]:
    """The doubles' trainer, reporting three epochs; pruned by its own code for a high rate, failing for
    width 1 with a low rate."""
    out = d.train(model, params, ctx)
    if model["width"] == 1 and params["lr"] < 0.03:
        raise RuntimeError("diverged (a test double's failure)")
    for epoch in (1, 2, 3):
        ctx.report(epoch, min(1.0, out["error"] + 0.1 * (3 - epoch)))
        if epoch == 2 and params["lr"] > 0.7:
            raise optuna.TrialPruned()
    return out


def run(db: Path, *, name: str = "doubles", pareto: bool = False, n_trials: int = 40, **kw: Any) -> Study:
    """A finished study stored in SQLite at ``db``."""
    objectives = {"minimize": ["error", "latency_ms"]} if pareto else "minimize: error"
    kw.setdefault("constraints", ["latency_ms <= 5", "error <= 0.3"])
    s = Study(name, d.SPACE, objectives=objectives, storage=f"sqlite:///{db}", sampler="random", seed=0, **kw)
    s.optimize(d.build, train, measure=d.measure, n_trials=n_trials)
    return s
