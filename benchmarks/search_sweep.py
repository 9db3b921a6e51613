"""Issue 19's sweep: hwtune against its peers on many NB201 problems nobody tuned on.

The problems are drawn once, with a fixed seed, from the three tasks x the 23 devices other than
``samsung_a50``, ``gold_6240``, ``eyeriss`` and ``titan_rtx_256`` x the latency quantiles
0.05 / 0.2 / 0.5 (the list is printed and stored: it never changes between runs). Every method runs
10 seeds of 50 trained networks per problem through the real study loop (``hwtune.bench``).

Runs are cached per (problem, method) under ``--out``: the peers do not change when hwtune does, so
``--methods hwtune --force`` re-runs hwtune alone and the report compares it with the stored peers.

Report, per checkpoint (10 / 25 / 50 trained):

- win / tie / loss of hwtune's 10-seed median regret against each peer and against the best peer of
  each problem; *tie* = the difference lies inside the noise band of two 10-seed medians
  (``2 x sqrt(se_a^2 + se_b^2)``, each ``se`` the bootstrap standard error of that method's median
  over its 10 seeds, 2,000 resamples);
- the share of problems where hwtune is the lowest or within the band of the lowest (goal >= 95 % at
  25 and 50);
- the median over problems of hwtune / best peer at 50 (regrets floored at 0.01 points, so that two
  zero regrets give 1; goal <= 0.5);
- at 10 trained, hwtune's worst-decile seed (the worst of 10) against random measure-first's, per
  problem (goal: no worse on every problem).

    .venv/bin/python benchmarks/search_sweep.py --methods random-measure-first,tpe-measure-first,tpe-learned --jobs 2
    .venv/bin/python benchmarks/search_sweep.py --methods hwtune --force --jobs 2
    .venv/bin/python benchmarks/search_sweep.py --report            # markdown tables from the cache
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

TASKS = ("cifar10", "cifar100", "imagenet16")
EXCLUDED_DEVICES = ("samsung_a50", "gold_6240", "eyeriss", "titan_rtx_256")
QUANTILES = (0.05, 0.2, 0.5)
N_PROBLEMS = 42
DRAW_SEED = 19
SEEDS = 10
BUDGET = 50
CHECKPOINTS = (10, 25, 50)
PEERS = ("random-measure-first", "tpe-measure-first", "tpe-learned")
FLOOR = 0.01
"""Regret floor (accuracy points) of the ratio hwtune / best peer."""


def problems() -> list[tuple[str, str, float]]:
    """The fixed sweep: ``N_PROBLEMS`` distinct (task, device, quantile) triples drawn with ``DRAW_SEED``."""
    from hwtune.tabular import load_nb201

    devices = sorted(d for d in load_nb201().devices if d not in EXCLUDED_DEVICES)
    assert len(devices) == 23, devices
    grid = [(t, d, q) for t in TASKS for d in devices for q in QUANTILES]
    rng = np.random.default_rng(DRAW_SEED)
    pick = sorted(rng.choice(len(grid), size=N_PROBLEMS, replace=False))
    return [grid[i] for i in pick]


def _key(p: tuple[str, str, float]) -> str:
    return f"{p[0]}-{p[1]}-q{p[2]:g}"


def run(methods: list[str], out: Path, jobs: int, force: bool, only: int | None) -> None:
    """Run what is not cached yet, all (problem, method, seed) tasks in one pool of ``jobs`` processes."""
    import multiprocessing

    from hwtune.bench._bench import MethodResult, _worker
    from hwtune.bench._nb201_problem import NB201Problem

    out.mkdir(parents=True, exist_ok=True)
    probs = problems()[:only] if only else problems()
    todo = [(p, m) for p in probs for m in methods if force or not (out / f"{_key(p)}__{m}.json").exists()]
    print(f"{len(todo)} (problem, method) pairs to run, {SEEDS} seeds each, {BUDGET} trained", flush=True)
    tasks = [({"task": p[0], "device": p[1], "quantile": p[2]}, m, s, BUDGET, "constrained") for p, m in todo for s in range(SEEDS)]
    by_pair: dict[tuple[str, str], list[Any]] = {}
    t0 = time.time()
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for (p, m), r in zip(((p, m) for p, m in todo for _ in range(SEEDS)), pool.imap(_worker, tasks, chunksize=1)):
            runs = by_pair.setdefault((_key(p), m), [])
            runs.append(r)
            if len(runs) == SEEDS:
                P = NB201Problem(p[0], p[1], quantile=p[2])
                mr = MethodResult(m, runs)
                doc = {
                    "problem": _key(p), "task": p[0], "device": p[1], "quantile": p[2], "method": m,
                    "limit_ms": P.limit, "best_feasible_accuracy": P.best_feasible_accuracy,
                    "summary": mr.summary(CHECKPOINTS), "runs": [r.__dict__ for r in runs],
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                }
                (out / f"{_key(p)}__{m}.json").write_text(json.dumps(doc))
                print(f"{time.time() - t0:7.0f} s  {_key(p):32s} {m:22s} median at 10/25/50: "
                      + " / ".join(f"{mr.at(n):.2f}" for n in CHECKPOINTS), flush=True)


def _load(out: Path, p: tuple[str, str, float], m: str) -> np.ndarray | None:
    """Regret ``(seeds, len(CHECKPOINTS))`` of a cached (problem, method), or None."""
    f = out / f"{_key(p)}__{m}.json"
    if not f.exists():
        return None
    runs = json.loads(f.read_text())["runs"]
    return np.array([[r["curve"][n - 1] if len(r["curve"]) >= n else np.nan for n in CHECKPOINTS] for r in runs], dtype=float)


def _boot_se(x: np.ndarray, rng: np.random.Generator, n: int = 2000) -> float:
    """Bootstrap standard error of the median of ``x``."""
    idx = rng.integers(0, len(x), size=(n, len(x)))
    return float(np.std(np.median(x[idx], axis=1)))


def report(out: Path, method: str = "hwtune") -> dict[str, Any]:
    """Markdown tables of the cached runs (printed) and the numbers against the goals (returned)."""
    rng = np.random.default_rng(0)
    probs = problems()
    rows, per_problem = [], []
    for p in probs:
        h = _load(out, p, method)
        peers = {m: r for m in PEERS if (r := _load(out, p, m)) is not None}
        if h is None or not peers:
            continue
        entry: dict[str, Any] = {"problem": _key(p)}
        for j, n in enumerate(CHECKPOINTS):
            med = {m: float(np.median(r[:, j])) for m, r in {method: h, **peers}.items()}
            se = {m: _boot_se(r[:, j], rng) for m, r in {method: h, **peers}.items()}
            best_peer = min(peers, key=lambda m: med[m])
            res = {}
            for m in list(peers) + ["best"]:
                q = best_peer if m == "best" else m
                diff = med[method] - med[q]
                band = 2.0 * math.sqrt(se[method] ** 2 + se[q] ** 2)
                res[m] = "tie" if abs(diff) <= band else ("win" if diff < 0 else "loss")
            entry[n] = {"median": med, "se": se, "best_peer": best_peer, "result": res,
                        "ratio": (med[method] + FLOOR) / (med[best_peer] + FLOOR)}
        worst = {m: float(np.max(r[:, 0])) for m, r in {method: h, **peers}.items()}
        entry["worst10"] = worst
        per_problem.append(entry)
        rows.append(entry)
    n_prob = len(per_problem)
    print(f"\n{n_prob} problems with {method} and peers {', '.join(PEERS)} ({SEEDS} seeds, {BUDGET} trained)\n")
    print("| problem | " + " | ".join(f"{method} / best peer at {n}" for n in CHECKPOINTS) + " | worst seed at 10: hwtune / random-mf |")
    print("|---|" + "---|" * (len(CHECKPOINTS) + 1))
    for e in per_problem:
        cells = []
        for n in CHECKPOINTS:
            d = e[n]
            cells.append(f"{d['median'][method]:.2f} / {d['median'][d['best_peer']]:.2f} ({d['best_peer'].replace('-measure-first', '-mf')}) {d['result']['best']}")
        w = e["worst10"]
        cells.append(f"{w[method]:.2f} / {w.get('random-measure-first', float('nan')):.2f}")
        print(f"| {e['problem']} | " + " | ".join(cells) + " |")
    summary: dict[str, Any] = {"problems": n_prob}
    print("\n| against | at | win | tie | loss | lowest or within the band |")
    print("|---|---|---|---|---|---|")
    for m in list(PEERS) + ["best"]:
        for n in CHECKPOINTS:
            res = [e[n]["result"][m] for e in per_problem]
            w, t, l_ = res.count("win"), res.count("tie"), res.count("loss")
            share = (w + t) / max(1, len(res))
            summary[f"{m}@{n}"] = {"win": w, "tie": t, "loss": l_, "share_ok": share}
            print(f"| {m} | {n} | {w} | {t} | {l_} | {share:.0%} |")
    ratios = [e[50]["ratio"] for e in per_problem]
    summary["median_ratio_at_50"] = float(np.median(ratios)) if ratios else None
    worse = [e["problem"] for e in per_problem if e["worst10"][method] > e["worst10"].get("random-measure-first", np.inf) + 1e-9]
    summary["worst_seed_at_10_worse_than_random_mf"] = worse
    print(f"\nmedian over problems of {method} / best peer at 50 trained (floor {FLOOR} points): {summary['median_ratio_at_50']:.2f} (goal <= 0.5)")
    print(f"problems where {method}'s worst seed at 10 trained is worse than random measure-first's: {len(worse)} of {n_prob}"
          + (f" ({', '.join(worse)})" if worse else ""))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="", help="comma-separated methods to run (default: none, report only)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep19"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="re-run cached (problem, method) pairs of --methods")
    ap.add_argument("--only", type=int, default=None, help="the first N problems only (a dry run)")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--report-method", default="hwtune")
    ap.add_argument("--list", action="store_true", help="print the problems and exit")
    a = ap.parse_args()
    if a.list:
        for p in problems():
            print(_key(p))
        return
    methods = [m for m in a.methods.split(",") if m]
    if methods:
        run(methods, a.out, a.jobs, a.force, a.only)
    if a.report or not methods:
        s = report(a.out, a.report_method)
        (a.out / f"summary_{a.report_method}.json").write_text(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
