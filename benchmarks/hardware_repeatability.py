"""Benchmark: repeatability of ``profile()`` latency.

The same NAS-Bench-201 network is profiled ``--repeats`` times in one process (goal: every median
within ±3 % of the mean of medians), and the same again in a second, fresh process (goal: the two
processes' median latencies within ±5 % of each other).

    python benchmarks/hardware_repeatability.py --threads 1 --batch-size 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


def run_in_process(args: argparse.Namespace) -> dict:
    import torch

    from hwtune.hardware import CPUDevice, profile
    from hwtune.train._nb201 import build_nb201

    torch.manual_seed(0)
    net = build_nb201(args.arch)
    x = torch.randn(args.batch_size, 3, 32, 32)
    device = CPUDevice(args.threads)
    medians, halfwidths, disturbed, seconds, cpu = [], [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = profile(net, x, device, ["latency_ms"], target_rel_ci=args.target_ci, max_time_s=args.max_time, max_retries=args.retries)
        seconds.append(time.perf_counter() - t0)
        m = r["latency_ms"]
        medians.append(m.value)
        halfwidths.append(m.extra["rel_half_width"])
        disturbed.append(m.extra["disturbed_attempts"])
        cpu.append(m.extra["process_cpu_ms_per_call"])
    med = np.asarray(medians)
    center = float(np.mean(med))
    mid = float(np.median(med))
    return {
        "medians_ms": [round(v, 4) for v in medians],
        "mean_of_medians_ms": center,
        "median_of_medians_ms": mid,
        "max_abs_dev_pct": float(np.max(np.abs(med / center - 1)) * 100),
        "share_within_3pct_of_median": float(np.mean(np.abs(med / mid - 1) <= 0.03)),
        "spread_pct": float((med.max() - med.min()) / center * 100),
        "rel_half_width_median": float(np.median(halfwidths)),
        "disturbed_windows": int(sum(disturbed)),
        "process_cpu_ms_per_call": [round(v, 4) for v in cpu],
        "process_cpu_max_abs_dev_pct": float(np.max(np.abs(np.asarray(cpu) / np.median(cpu) - 1)) * 100),
        "profile_s_median": float(np.median(seconds)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default=ARCH)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--target-ci", type=float, default=0.03)
    p.add_argument("--max-time", type=float, default=5.0)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    first = run_in_process(args)
    if args.child:
        print(json.dumps(first))
        return
    child_argv = [sys.executable, __file__, "--child", "--arch", args.arch, "--batch-size", str(args.batch_size),
                  "--threads", str(args.threads), "--repeats", str(args.repeats), "--target-ci", str(args.target_ci),
                  "--max-time", str(args.max_time), "--retries", str(args.retries)]
    second = json.loads(subprocess.run(child_argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    a, b = first["median_of_medians_ms"], second["median_of_medians_ms"]
    out = {
        "arch": args.arch, "batch_size": args.batch_size, "threads": args.threads, "target_ci": args.target_ci,
        "process_1": first, "process_2": second,
        "between_processes_pct": abs(a - b) / ((a + b) / 2) * 100,  # of the median of each process's medians
        "between_processes_cpu_time_pct": abs(float(np.median(first["process_cpu_ms_per_call"])) - float(np.median(second["process_cpu_ms_per_call"]))) / ((float(np.median(first["process_cpu_ms_per_call"])) + float(np.median(second["process_cpu_ms_per_call"]))) / 2) * 100,
        "between_processes_mean_pct": abs(first["mean_of_medians_ms"] - second["mean_of_medians_ms"]) / ((first["mean_of_medians_ms"] + second["mean_of_medians_ms"]) / 2) * 100,
        "goal_within_process_pct": 3.0, "goal_between_processes_pct": 5.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
