"""Benchmark: are the latency intervals honest? Coverage of repeated measurements (issue 12).

A fixed set of NAS-Bench-201 networks is profiled ``--reps`` times each, round-robin (so that the
machine's drifts fall between the repeats of every network), in two modes:

- ``alone``: this process pinned to one CPU;
- ``competing``: the same, with a second process spinning on that very CPU the whole time.

For each network the reference value is the median of all its measurements in that mode; the
coverage is the share of reported 95 % intervals that contain it (goal: >= 90 %), for the latency a
study reports (``latency_ms`` at the reference speed measured once at the start of the mode), the
wall-clock latency, and the latency relative to the reference network (``rel_to_ref``).

    python benchmarks/hardware_calibration.py --nets 6 --reps 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np


def _spin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    x = 0
    while True:
        x += 1


def run_mode(args: argparse.Namespace, competing: bool) -> dict:
    import torch

    from hwtune.hardware import CPUDevice, profile
    from hwtune.tabular import load_nb201
    from hwtune.train._nb201 import build_nb201

    table = load_nb201()
    rows = np.random.default_rng(args.seed).choice(len(table.arch), size=args.nets, replace=False)
    nets = [build_nb201(str(table.arch[r])).eval() for r in rows]
    x = torch.randn(1, 3, 32, 32)
    device = CPUDevice(1)
    spinner = None
    if competing:
        spinner = mp.get_context("spawn").Process(target=_spin, args=(args.cpu,), daemon=True)
        spinner.start()
        time.sleep(0.5)
    ref_ms = None
    if args.at_reference:  # as a study: the machine's speed once at the start, every latency at it
        from hwtune.hardware import measure_reference_speed

        ref_ms = measure_reference_speed(device)["ms"]
    recs: list[list[dict]] = [[] for _ in nets]
    try:
        for _ in range(args.reps):
            for i, net in enumerate(nets):
                t0 = time.perf_counter()
                m = profile(net, x, device, ["latency_ms"], target_rel_ci=args.target_ci, max_time_s=args.max_time, reference_ms=ref_ms)["latency_ms"]
                recs[i].append({"v": m.value, "ci": [m.ci_low, m.ci_high], "rel": m.extra.get("rel_to_ref"), "rel_ci": m.extra.get("rel_to_ref_ci"),
                                "flagged": m.extra["disturbed_attempts"], "wall": m.extra.get("wall_ms", m.value), "wall_ci": m.extra.get("wall_ci_ms", [m.ci_low, m.ci_high]), "s": time.perf_counter() - t0, "converged": m.extra["converged"]})
    finally:
        if spinner is not None:
            spinner.terminate()  # the process this benchmark started, by its handle
            spinner.join()
    cov_abs, cov_rel, cov_wall, spread, widths = [], [], [], [], []
    for rs in recs:
        mw = float(np.median([r["wall"] for r in rs]))
        cov_wall += [r["wall_ci"][0] <= mw <= r["wall_ci"][1] for r in rs]
        med = float(np.median([r["v"] for r in rs]))
        cov_abs += [r["ci"][0] <= med <= r["ci"][1] for r in rs]
        spread.append(float(np.percentile([r["v"] for r in rs], 90) / np.percentile([r["v"] for r in rs], 10) - 1))
        widths += [(r["ci"][1] - r["ci"][0]) / 2 / r["v"] for r in rs]
        if all(r["rel"] is not None for r in rs):
            mr = float(np.median([r["rel"] for r in rs]))
            cov_rel += [r["rel_ci"][0] <= mr <= r["rel_ci"][1] for r in rs]
    return {
        "mode": "competing" if competing else "alone",
        "nets": args.nets, "reps": args.reps,
        "at_reference_ms": ref_ms,
        "coverage_latency": float(np.mean(cov_abs)),
        "coverage_wall_clock": float(np.mean(cov_wall)),
        "coverage_rel_to_ref": float(np.mean(cov_rel)) if cov_rel else None,
        "median_rel_half_width": float(np.median(widths)),
        "p90_over_p10_spread_median": float(np.median(spread)),
        "flagged_share": float(np.mean([r["flagged"] > 0 for rs in recs for r in rs])),
        "converged_share": float(np.mean([r["converged"] for rs in recs for r in rs])),
        "profile_s_median": float(np.median([r["s"] for rs in recs for r in rs])),
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", type=int, default=6)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--cpu", type=int, default=0, help="the CPU this process (and the competitor) is pinned to")
    p.add_argument("--target-ci", type=float, default=0.05)
    p.add_argument("--max-time", type=float, default=3.0)
    p.add_argument("--modes", default="alone,competing")
    p.add_argument("--no-at-reference", dest="at_reference", action="store_false",
                   help="wall-clock latencies (default: at the reference speed measured once per mode, as a study does)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "hardware_calibration.json")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    os.sched_setaffinity(0, {args.cpu})
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "loadavg_start": os.getloadavg(), "results": []}
    for mode in args.modes.split(","):
        out["results"].append(run_mode(args, mode == "competing"))
        print(json.dumps(out["results"][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
