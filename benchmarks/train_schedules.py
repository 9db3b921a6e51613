"""Benchmark: learning-rate schedules and adaptive rates on real MNIST — final test error, time to target.

One HyperPower-style CNN, SGD with momentum 0.9, batch 128, ``--epochs`` epochs on an MNIST subset
(validation: ``--val-size`` held-out training images; test: the 10,000 t10k images). Every method
starts from the same seeded weights. ``time to target`` is the training time (seconds, from the start
of the call: the range test included) at the end of the first epoch whose validation error is at
most ``--target``; "-" when never reached.

The adaptive methods are measured against cosine annealing at the same initial rate, and again from
a rate 10x too small (``--bad-lr``), where an adaptive method has something to adapt (the range
test replaces the initial rate, so its rows hold for any initial rate):

    python benchmarks/train_schedules.py --mnist ../shared/data/mnist --seeds 0 1 --jobs 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

ARCH = {"conv_layers": 2, "filters_0": 8, "kernel_0": 3, "filters_1": 16, "kernel_1": 3, "dense_units": 64}


def methods(lr: float, bad_lr: float) -> dict[str, dict[str, Any]]:
    m: dict[str, dict[str, Any]] = {
        "constant": {"lr": lr},
        "step": {"lr": lr, "schedule": "step", "step_epochs": 2, "step_gamma": 0.3},
        "exponential": {"lr": lr, "schedule": "exponential", "exp_gamma": 0.7},
        "cosine": {"lr": lr, "schedule": "cosine"},
        "cosine + warm-up 1 epoch": {"lr": lr, "schedule": "cosine", "warmup_epochs": 1},
        "cosine_restarts": {"lr": lr, "schedule": "cosine_restarts", "restart_epochs": 1, "restart_mult": 2},
        "plateau": {"lr": lr, "schedule": "plateau", "plateau_factor": 0.3, "plateau_patience": 0},
        "onecycle": {"lr": lr * 2, "schedule": "onecycle"},  # peak at twice the base rate
        "hypergradient": {"lr": lr, "schedule": "hypergradient"},
        "bold_driver": {"lr": lr, "schedule": "bold_driver"},
        "range test + cosine": {"lr": lr, "lr_find": True, "schedule": "cosine"},
        "range test (steepest rule) + cosine": {"lr": lr, "lr_find": True, "lr_find_rule": "steepest", "schedule": "cosine"},
        "range test + hypergradient": {"lr": lr, "lr_find": True, "schedule": "hypergradient"},
        # from a rate 10x too small
        f"cosine @ lr {bad_lr:g}": {"lr": bad_lr, "schedule": "cosine"},
        f"hypergradient @ lr {bad_lr:g}": {"lr": bad_lr, "schedule": "hypergradient"},
        f"bold_driver @ lr {bad_lr:g}": {"lr": bad_lr, "schedule": "bold_driver"},
    }
    return m


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from hwtune.train import get_family, load_mnist, train_classifier

    torch.set_num_threads(1)
    data = load_mnist(job["mnist"], val_size=job["val_size"], train_subset=job["train_subset"])
    model = get_family("cnn").build(ARCH, data.input_shape, 10)
    curve: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()
    params = {"epochs": job["epochs"], "batch_size": 128, "momentum": 0.9, **job["params"]}
    res = train_classifier(model, data, params, seed=job["seed"], reporter=lambda e, v: curve.append((e, v, time.perf_counter() - t0)),
                           options={"channels_last": False, "amp": False})  # same numerics for every method
    hit = next((t for _, v, t in curve if v <= job["target"]), None)
    return {"method": job["method"], "seed": job["seed"], "test_error": res.test_error, "val_error": res.error,
            "time_to_target_s": hit, "train_time_s": res.train_time_s, "lr_found": res.settings.get("lr_found"),
            "final_lr": res.settings.get("final_lr"), "curve": curve,
            "epochs_to_target": next((e for e, v, _ in curve if v <= job["target"]), None), "speedups": res.settings["speedups"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-subset", type=int, default=6000)
    p.add_argument("--val-size", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--bad-lr", type=float, default=0.005)
    p.add_argument("--target", type=float, default=0.05)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    ms = methods(args.lr, args.bad_lr)
    jobs = [{"method": name, "params": prm, "seed": s, "mnist": args.mnist, "epochs": args.epochs, "train_subset": args.train_subset,
             "val_size": args.val_size, "target": args.target} for s in args.seeds for name, prm in ms.items()]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as ex:
            results = list(ex.map(run_one, jobs))
    else:
        results = [run_one(j) for j in jobs]
    table = []
    for name in ms:
        rs = [r for r in results if r["method"] == name]
        hits = [r["time_to_target_s"] for r in rs]
        table.append({
            "method": name,
            "test_error_median": statistics.median(r["test_error"] for r in rs),
            "test_errors": [round(r["test_error"], 4) for r in rs],
            "time_to_target_s_median": statistics.median(h if h is not None else float("inf") for h in hits),
            "time_to_target_s": [None if h is None else round(h, 2) for h in hits],
            "epochs_to_target": [r["epochs_to_target"] for r in rs],
            "final_val_errors": [round(r["val_error"], 4) for r in rs],
            "reached": sum(h is not None for h in hits),
            "train_time_s_median": statistics.median(r["train_time_s"] for r in rs),
            "lr_found": [r["lr_found"] for r in rs if r["lr_found"] is not None],
            "final_lr": [r["final_lr"] for r in rs if r["final_lr"] is not None],
        })
    out = {"arch": ARCH, "epochs": args.epochs, "train_subset": args.train_subset, "val_size": args.val_size, "lr": args.lr,
           "bad_lr": args.bad_lr, "target": args.target, "seeds": args.seeds, "table": table, "raw": results}
    for row in table:
        t = row["time_to_target_s_median"]
        print(f"{row['method']:<34} test {100 * row['test_error_median']:5.2f} %  to {100 * args.target:g} %: "
              f"{'-' if t == float('inf') else f'{t:6.1f} s'} ({row['reached']}/{len(args.seeds)})  train {row['train_time_s_median']:.1f} s"
              f"  {'lr_found ' + ', '.join(f'{x:.3g}' for x in row['lr_found']) if row['lr_found'] else ''}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
