"""Pareto fronts with and without compression dimensions, same number of trained networks (issue 14).

Run:  .venv/bin/python benchmarks/compress_front.py [--trained 16] [--seeds 0] [--data mnist|cifar10|digits]
      [--train-subset 12000 (mnist)] [--max-per-class 1112 (cifar10: images per class in train/ and test/)]

``--data cifar10`` reads ``../shared/data/cifar10/cifar10-jpeg-imagefolder.tar.gz`` (the image-folder
loader, as ``examples/cifar10_*.yaml``; needs Pillow): ``--max-per-class`` training images per class,
10 % of them split off for validation, and up to that many of ``test/`` per class for the test error.

Two studies per seed through the real loop (``hwtune.study``), side by side in one run, alternating:
``plain`` searches the CNN (conv layers, filters, dense units, learning rate); ``compressed`` searches
the same space plus ``prune_ratio`` {0, .25, .5, .75}, ``quantize`` {none, int8} and the
self-distillation weight of the fine-tuning after pruning. Both: objectives error and batch-1 latency
(ONNX Runtime, one CPU thread, at the study's stored machine speed), budget ``--trained`` trained
networks, no constraint (the whole front is wanted), hwtune's sampler, the same seed.

Printed (and written as JSON with ``--out``):
- each study's front (validation error, latency with its source);
- latency ratio at equal error: for each point of the plain front, the fastest compressed front point
  whose error is at most 0.2 points higher, and the ratio plain / compressed (goal: >= 2x somewhere
  along the front); error gain at equal latency: for each plain point, the lowest compressed error at
  no more latency (goal: >= 0.5 points);
- measured before training vs after (``hwtune:final_hardware``) over every trained compressed
  network: Spearman rank correlation and median relative difference of the latency.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

ARCH = {
    "conv_layers": {"type": "int", "low": 1, "high": 2},
    "filters": {"type": "int", "low": 8, "high": 64, "log": True},
    "kernel": 3,
    "dense_units": {"type": "int", "low": 32, "high": 256, "log": True},
    "lr": {"type": "float", "low": 0.02, "high": 0.2, "log": True},
    "momentum": 0.9,
    "batch_size": 64,
}
COMPRESSION = {
    "prune_ratio": {"type": "categorical", "choices": [0.0, 0.25, 0.5, 0.75]},
    "quantize": {"type": "categorical", "choices": ["none", "int8"]},
    "finetune_epochs": 1,
    "distill_beta": {"type": "float", "low": 0.0, "high": 0.9},
}


def spec(kind: str, seed: int, db: Path, args: argparse.Namespace) -> dict[str, Any]:
    if args.data == "mnist":
        data = {"name": "mnist", "path": str(DATA / "mnist"), "options": {"train_subset": args.train_subset, "val_size": 3000}}
    elif args.data == "cifar10":
        data = {"name": "imagefolder", "path": str(DATA / "cifar10" / "cifar10-jpeg-imagefolder.tar.gz"),
                "options": {"max_per_class": args.max_per_class, "val_fraction": 0.1}}
    else:
        data = {"name": "digits"}
    space = {**ARCH, "epochs": args.epochs, **(COMPRESSION if kind == "compressed" else {})}
    return {
        "name": f"{kind}-{seed}", "storage": f"sqlite:///{db}", "data": data, "model": {"family": "cnn"}, "space": space,
        "objective": {"minimize": ["error", "latency_ms"]}, "device": "cpu:1", "inference_batch_size": 1, "runtime": "onnxruntime",
        "budget": {"trained": args.trained, "trials": 4 * args.trained}, "seed": seed, "keep_models": "none",
        "trainer": {"amp": False, "channels_last": False, "compile": False},
    }


def front(study: Any) -> list[dict[str, Any]]:
    out = []
    for r in study.best_feasible():
        lat = r.hardware["latency_ms"]
        out.append({"trial": r.number, "error": r.metrics["error"], "latency_ms": lat.value, "source": lat.source,
                    "params": {k: v for k, v in r.params.items() if k in ("conv_layers", "filters", "dense_units", "prune_ratio", "quantize")}})
    return sorted(out, key=lambda p: p["latency_ms"])


def compare(plain: list[dict[str, Any]], comp: list[dict[str, Any]], tol: float = 0.002) -> dict[str, Any]:
    speedups, gains = [], []
    for p in plain:
        ok = [c for c in comp if c["error"] <= p["error"] + tol]
        if ok:
            speedups.append({"plain_trial": p["trial"], "error": p["error"], "ratio": p["latency_ms"] / min(c["latency_ms"] for c in ok)})
        fast = [c for c in comp if c["latency_ms"] <= p["latency_ms"]]
        if fast:
            gains.append({"plain_trial": p["trial"], "latency_ms": p["latency_ms"], "error_gain_points": 100 * (p["error"] - min(c["error"] for c in fast))})
    return {
        "best_latency_ratio_at_equal_error": max((s["ratio"] for s in speedups), default=None),
        "best_error_gain_points_at_equal_latency": max((g["error_gain_points"] for g in gains), default=None),
        "speedups": speedups, "gains": gains,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trained", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=12000)
    ap.add_argument("--max-per-class", type=int, default=1112)
    ap.add_argument("--data", choices=["mnist", "cifar10", "digits"], default="mnist")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from hwtune.study import compression_agreement, parse_study_file, study_from_file

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    results: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "started": started, "args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="hwtune-front-") as tmp:
        for seed in args.seeds:
            run: dict[str, Any] = {"seed": seed}
            studies = {}
            for kind in ("plain", "compressed"):
                t0 = time.time()
                st, build, train = study_from_file(parse_study_file(spec(kind, seed, Path(tmp) / f"{kind}.db", args)))
                st.optimize(build, train, n_trials=4 * args.trained, n_trained=args.trained)
                studies[kind] = st
                run[kind] = {"front": front(st), "counts": st.counts(), "seconds": round(time.time() - t0, 1)}
                print(f"seed {seed} {kind}: {st.counts()} in {run[kind]['seconds']} s", flush=True)
                if args.out:  # what is done so far, in case the run is stopped
                    args.out.write_text(json.dumps({**results, "partial": True, "runs": [*results["runs"], run]}, indent=1, default=str))
            run["comparison"] = compare(run["plain"]["front"], run["compressed"]["front"])
            run["before_vs_after"] = compression_agreement(studies["compressed"].records(), ["latency_ms", "size_mb", "params"])
            results["runs"].append(run)
    results["load_average"] = {"before": load0, "after": os.getloadavg()}
    for run in results["runs"]:
        print(f"\n## seed {run['seed']}")
        for kind in ("plain", "compressed"):
            print(f"\n{kind} front ({run[kind]['counts']}):\n| trial | error | latency ms | params |\n|---|---|---|---|")
            for p in run[kind]["front"]:
                print(f"| {p['trial']} | {p['error']:.4f} | {p['latency_ms']:.4g} ({p['source']}) | {p['params']} |")
        c = run["comparison"]
        print(f"\nlatency ratio plain/compressed at equal error (<= +0.2 pt): best {c['best_latency_ratio_at_equal_error']}")
        print(f"error gain at equal latency: best {c['best_error_gain_points_at_equal_latency']} points")
        for m, a in run["before_vs_after"].items():
            print(f"before vs after training, {m}: n={a['n']} Spearman={a['spearman']} median rel diff={a['median_rel_diff']:+.3f} "
                  f"worst={a['max_abs_rel_diff']:.3f} inside interval={a['inside_interval']}")
    print(f"\nload average before {load0}, after {os.getloadavg()}; started {started}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
