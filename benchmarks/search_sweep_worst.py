"""hwtune variants on chosen problems of issue 19's sweep: worst and median regret of 10 seeds at 10
trained (and at ``--budget``), against the cached sweep results of hwtune and random measure-first.

Used to choose the prior focus before re-running the whole sweep (docs/benchmarks.md, "Search
robustness across problems"); the default problems are the five whose worst seed lost before it:

    .venv/bin/python benchmarks/search_sweep_worst.py --options '{"prior_focus": 0}' --budget 25
    .venv/bin/python benchmarks/search_sweep_worst.py --options '{"prior_focus_share": 0.25}'
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CACHE = Path(__file__).resolve().parent / "results" / "sweep19"
LOST_BEFORE = ("cifar10-samsung_s7-q0.05", "cifar100-1080ti_32-q0.05", "cifar100-titan_rtx_32-q0.2",
               "imagenet16-essential_ph_1-q0.05", "imagenet16-silver_4114-q0.05")
SEEDS = 10


def _parse(key: str) -> tuple[str, str, float]:
    task, rest = key.split("-", 1)
    device, q = rest.rsplit("-q", 1)
    return task, device, float(q)


def _work(args: tuple[str, int, dict[str, Any], int]) -> tuple[str, int, list[float]]:
    key, seed, options, budget = args
    import torch

    torch.set_num_threads(1)
    from hwtune.bench import _bench
    from hwtune.bench._nb201_problem import NB201Problem

    _bench.HWTUNE_OPTIONS.clear()
    _bench.HWTUNE_OPTIONS.update(options)
    task, device, q = _parse(key)
    return key, seed, _bench.run_method(NB201Problem(task, device, quantile=q), "hwtune", seed, budget).curve


def _cached(key: str, method: str) -> list[list[float]]:
    return [r["curve"] for r in json.loads((CACHE / f"{key}__{method}.json").read_text())["runs"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", default="{}", help="HwSampler options as JSON (the defaults when empty)")
    ap.add_argument("--problems", default=",".join(LOST_BEFORE), help="comma-separated sweep problem keys")
    ap.add_argument("--budget", type=int, default=10, help="trained networks per run (>= 10)")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    options, keys, budget = json.loads(a.options), a.problems.split(","), max(10, a.budget)
    t0 = time.time()
    curves: dict[str, dict[int, list[float]]] = {}
    with multiprocessing.get_context("spawn").Pool(a.jobs) as pool:
        for key, seed, curve in pool.imap_unordered(_work, [(k, s, options, budget) for k in keys for s in range(SEEDS)]):
            curves.setdefault(key, {})[seed] = curve
    print(f"hwtune {options or 'defaults'}, {SEEDS} seeds, {budget} trained, regret in accuracy points "
          f"(cached: benchmarks/results/sweep19, as last run by search_sweep.py)")
    for key in keys:
        at10 = [curves[key][s][9] for s in range(SEEDS)]
        hw, rnd = _cached(key, "hwtune"), _cached(key, "random-measure-first")
        line = (f"{key:34s} worst at 10 {max(at10):5.2f} (cached hwtune {max(c[9] for c in hw):5.2f}, random-mf "
                f"{max(c[9] for c in rnd):5.2f}); median at 10 {np.median(at10):5.2f} (cached {np.median([c[9] for c in hw]):5.2f})")
        if budget > 10:
            line += (f"; median at {budget} {np.median([curves[key][s][budget - 1] for s in range(SEEDS)]):5.2f}"
                     f" (cached {np.median([c[budget - 1] for c in hw]):5.2f})")
        print(line)
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
