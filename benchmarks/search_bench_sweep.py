"""The tables of ``docs/benchmarks.md`` (section "Hardware-aware search"): ``hwtune bench`` over many problems.

Each problem runs every method over seeds 0..N-1 through the real study loop and prints one markdown
row per method (median regret after 10/25/50/100 trained networks, trainings wasted, measurements
made, proposal time), plus the goal check "hwtune <= half the best peer at 25 and 50".

    # the four problems of issue 5, all peers (Optuna's GP with 5 seeds and 50 trained: it is slow)
    .venv/bin/python benchmarks/search_bench_sweep.py --set issue --jobs 2
    # the wider sweep: other devices, CIFAR-100, ImageNet16-120, other quantiles
    .venv/bin/python benchmarks/search_bench_sweep.py --set wide --jobs 2
    # cheapest latency under an error bound, and the error-latency Pareto front
    .venv/bin/python benchmarks/search_bench_sweep.py --set modes --jobs 2

Results go to stdout (markdown) and, with --out DIR, one JSON file per problem.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ISSUE = [
    ("cifar10", "pixel3", 0.10),
    ("cifar10", "fpga", 0.25),
    ("cifar10", "raspi4", 0.25),
    ("cifar10", "titanxp_1", 0.10),
]
WIDE = [
    ("cifar10", "eyeriss", 0.05),
    ("cifar10", "samsung_a50", 0.50),
    ("cifar10", "gold_6226", 0.25),
    ("cifar100", "2080ti_1", 0.10),
    ("cifar100", "pixel2", 0.25),
    ("cifar100", "fpga", 0.05),
    ("imagenet16", "raspi4", 0.10),
    ("imagenet16", "titan_rtx_32", 0.25),
    ("imagenet16", "silver_4114", 0.50),
]
MODES = [
    ("cheapest", "cifar10", "fpga", 0.05),
    ("cheapest", "cifar100", "pixel3", 0.10),
    ("pareto", "cifar10", "fpga", None),
    ("pareto", "imagenet16", "raspi4", None),
]


def _fmt(v: float, nd: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def constrained(problems: list[tuple[str, str, float]], methods: list[str], seeds: int, budget: int, jobs: int,
                gp: bool, out: Path | None) -> None:
    from hwtune.bench import run_bench

    print("| problem (limit) | method | N=10 | N=25 | N=50 | N=100 | wasted | measured (trials) per run | proposal ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, device, q in problems:
        kw = {"task": task, "device": device, "quantile": q}
        t0 = time.time()
        res = run_bench(kw, methods, seeds=list(range(seeds)), budget=budget, jobs=jobs)
        summaries = [m.summary(res.checkpoints) for m in res.methods.values()]
        if gp:
            gres = run_bench(kw, ["gp-measure-first", "gp-learned"], seeds=list(range(min(seeds, 5))), budget=min(budget, 50), jobs=jobs)
            summaries += [{**m.summary(gres.checkpoints), "method": m.method + " (5 seeds)"} for m in gres.methods.values()]
            res.methods.update({k + "@50x5": v for k, v in gres.methods.items()})
        label = f"{task}/{device} {q:.0%} ({res.exact['limit_ms']:.3g} ms)"
        for s in summaries:
            cells = [_fmt(s.get(f"at_{n}", float("nan"))) for n in (10, 25, 50, 100)]
            print(f"| {label} | {s['method']} | " + " | ".join(cells) +
                  f" | {s['wasted']:.0f} | {s['measurements']:.0f} ({s['trials']:.0f}) | {s['proposal_ms']:.0f} |", flush=True)
        hw = next(s for s in summaries if s["method"] == "hwtune")
        for n in (25, 50):
            peers = [s.get(f"at_{n}", float("nan")) for s in summaries if not s["method"].startswith("hwtune")]
            peers = [p for p in peers if not math.isnan(p)]
            if not peers:
                continue
            best = min(peers) if peers else float("nan")
            ok = hw[f"at_{n}"] <= best / 2 + 1e-12
            print(f"<!-- {label} N={n}: hwtune {hw[f'at_{n}']:.2f} vs best peer {best:.2f} -> goal (<= half) {'met' if ok else 'missed'} -->", flush=True)
        print(f"<!-- {label}: {time.time() - t0:.0f} s -->", file=sys.stderr, flush=True)
        if out:
            (out / f"constrained_{task}_{device}_{q}.json").write_text(json.dumps(res.to_dict(), default=float))


def modes(seeds: int, budget: int, jobs: int, out: Path | None, pick: Any = list) -> None:
    from hwtune.bench import CHEAPEST_METHODS, PARETO_METHODS, run_bench

    print("| mode | problem | method | N=10 | N=25 | N=50 | proposal ms |")
    print("|---|---|---|---|---|---|---|")
    for mode, task, device, q in MODES:
        kw: dict = {"task": task, "device": device}
        if mode == "cheapest":
            kw["error_quantile"] = q
        methods = pick(list(CHEAPEST_METHODS if mode == "cheapest" else PARETO_METHODS))
        res = run_bench(kw, methods, seeds=list(range(seeds)), budget=budget, mode=mode, jobs=jobs)
        label = res.problem
        for m in res.methods.values():
            s = m.summary(res.checkpoints)
            cells = [_fmt(s.get(f"at_{n}", float("nan")), 3) for n in (10, 25, 50)]
            print(f"| {mode} | {label} | {m.method} | " + " | ".join(cells) + f" | {s['proposal_ms']:.0f} |", flush=True)
        if out:
            (out / f"{mode}_{task}_{device}.json").write_text(json.dumps(res.to_dict(), default=float))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=("issue", "wide", "modes"), default="issue")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-gp", action="store_true", help="leave Optuna's GPSampler out (slow)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--methods", default=None, help="comma-separated subset of the set's methods (e.g. hwtune,hwtune-plain after a change to hwtune's sampler: the peers do not change)")
    args = ap.parse_args()
    only = set(args.methods.split(",")) if args.methods else None

    def pick(ms: list[str]) -> list[str]:
        # "hwtune@<cost model>" (e.g. hwtune@additive): hwtune with another of the library's cost models
        variants = [m for m in (args.methods or "").split(",") if m.startswith("hwtune@")]
        return [m for m in ms if only is None or m in only] + variants

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    if args.set == "issue":
        methods = ["hwtune", "hwtune-plain", "random-unaware", "random-measure-first", "tpe-learned", "tpe-measure-first"]
        constrained(ISSUE, pick(methods), args.seeds, args.budget or 100, args.jobs, not args.no_gp and only is None, args.out)
    elif args.set == "wide":
        methods = ["hwtune", "random-measure-first", "tpe-learned", "tpe-measure-first"]
        constrained(WIDE, pick(methods), args.seeds, args.budget or 50, args.jobs, False, args.out)
    else:
        modes(args.seeds, args.budget or 50, args.jobs, args.out, pick)


if __name__ == "__main__":
    main()
