"""Benchmark: the cost of measuring — wall time of one ``profile()`` call for small models.

NAS-Bench-201 networks under ``--max-mflops`` (torch.utils.flop_counter FLOPs per sample, i.e.
2 per multiply-add) are profiled at ``--target-ci`` (goal: <= 2 s per call at ±3 %), once with
latency only and once with every metric (latency, throughput, power/energy, memory, params, FLOPs,
size). The first ``profile`` call of a process pays one-time imports and is reported apart.

    python benchmarks/hardware_cost.py --n 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-mflops", type=float, default=50.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--target-ci", type=float, default=0.03)
    p.add_argument("--max-time", type=float, default=3.0)
    p.add_argument("--retries", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from hwtune.hardware import CPUDevice, count_flops, profile
    from hwtune.tabular import load_nb201
    from hwtune.train._nb201 import build_nb201

    torch.set_num_threads(args.threads)
    table = load_nb201()
    rng = np.random.default_rng(args.seed)
    device = CPUDevice(args.threads)
    x = torch.randn(args.batch_size, 3, 32, 32)
    t0 = time.perf_counter()
    first = profile(build_nb201(str(table.arch[0])), x, device, target_rel_ci=args.target_ci, max_time_s=args.max_time)
    first_s = time.perf_counter() - t0
    picked: list[tuple[str, float]] = []
    for i in rng.permutation(len(table.arch)):
        arch = str(table.arch[i])
        net = build_nb201(arch)
        fl = count_flops(net.eval(), (torch.zeros(1, 3, 32, 32),)) / 1e6
        if fl < args.max_mflops:
            picked.append((arch, fl))
        if len(picked) == args.n:
            break
    rows = []
    for arch, fl in picked:
        net = build_nb201(arch)
        t0 = time.perf_counter()
        r1 = profile(net, x, device, ["latency_ms"], target_rel_ci=args.target_ci, max_time_s=args.max_time, max_retries=args.retries)
        lat_only = time.perf_counter() - t0
        net = build_nb201(arch)
        t0 = time.perf_counter()
        r2 = profile(net, x, device, target_rel_ci=args.target_ci, max_time_s=args.max_time, max_retries=args.retries)
        all_metrics = time.perf_counter() - t0
        rows.append({
            "mflops": round(fl, 2), "latency_ms": r1["latency_ms"].value, "n": r1["latency_ms"].repeats,
            "converged": r1["latency_ms"].extra["converged"], "disturbed": r1["latency_ms"].extra["disturbed_attempts"],
            "latency_only_s": round(lat_only, 3), "all_metrics_s": round(all_metrics, 3),
            "all_converged": r2["latency_ms"].extra["converged"],
        })
    lo = np.array([r["latency_only_s"] for r in rows])
    al = np.array([r["all_metrics_s"] for r in rows])
    out = {
        "threads": args.threads, "batch_size": args.batch_size, "target_ci": args.target_ci, "max_time_s": args.max_time,
        "models": len(rows), "mflops_range": [min(r["mflops"] for r in rows), max(r["mflops"] for r in rows)],
        "first_call_s": round(first_s, 3), "first_call_energy_source": first["energy_mj"].source,
        "latency_only_s": {"median": float(np.median(lo)), "p90": float(np.percentile(lo, 90)), "max": float(lo.max())},
        "all_metrics_s": {"median": float(np.median(al)), "p90": float(np.percentile(al, 90)), "max": float(al.max())},
        "share_within_2s_all_metrics": float(np.mean(al <= 2.0)),
        "converged_share": float(np.mean([r["converged"] for r in rows])),
        "disturbed_share": float(np.mean([r["disturbed"] > 0 for r in rows])),
        "rows": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
