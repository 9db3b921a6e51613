"""Keras 3 (torch backend) against PyTorch: the same MNIST CNN space, the same budget (issue 15).

Run:  KERAS_BACKEND=torch .venv/bin/python benchmarks/keras_vs_torch.py [--trials 12] [--limit-ms 1.0]
          [--train-subset 12000] [--arch-samples 8] [--out benchmarks/results/keras_vs_torch.json]

Two parts, both on one CPU thread (``cpu:1``), batch 1:

1. **Inference latency of the same architectures.** ``--arch-samples`` architectures drawn from the
   space (seeded) are built in both frameworks and measured with hwtune's meters in: eager PyTorch
   (``runtime: torch``), ONNX Runtime (``runtime: onnxruntime``, a PyTorch study's default) and Keras on
   its backend (``runtime: keras``: the backend's own call, not ``model.predict``). Ratios per
   architecture: Keras / eager PyTorch, Keras / ONNX Runtime (median and range).
2. **The same study in both frameworks.** HyperPower's MNIST CNN space (1-2 conv layers, 8-64
   filters, kernel 3 or 5, 32-256 dense units, SGD learning rate), ``latency_ms <= --limit-ms``, the
   default hwtune sampler, ``--trials`` proposals each: ``framework: torch`` (measured in ONNX Runtime)
   and ``framework: keras``. Reported: best feasible validation error (and its test error), trained /
   over-budget / predicted-over-budget counts, wall time.

3. **TFLite** (``--tflite``, needs ``KERAS_BACKEND=tensorflow`` and TensorFlow): ``--tflite-archs``
   architectures (the first of part 1's draw) trained one epoch with Keras on the MNIST subset, then
   exported as float TFLite and full-integer int8 TFLite (``hwtune.keras._tflite``, calibrated on 256
   training inputs), each measured at batch 1 and 64 on one thread: Keras on TensorFlow (the study's
   meter: ``tf.function`` with XLA), and the two files in the TFLite interpreter (``invoke`` timed).
   Ratios Keras-TF / TFLite float / TFLite int8, and the validation error of the float network and of
   the int8 file on the whole validation split (3000 images).

   KERAS_BACKEND=tensorflow TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
     python benchmarks/keras_vs_torch.py --tflite --tflite-archs 4 --train-subset 6000 \
       --out benchmarks/results/keras_tflite.json

Prints Markdown tables and writes the numbers to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
SPACE: dict[str, Any] = {
    "conv_layers": {"type": "int", "low": 1, "high": 2},
    "filters_0": {"type": "int", "low": 8, "high": 64, "log": True},
    "filters_1": {"type": "int", "low": 8, "high": 64, "log": True, "condition": "conv_layers >= 2"},
    "kernel": {"type": "categorical", "choices": [3, 5]},
    "dense_units": {"type": "int", "low": 32, "high": 256, "log": True},
    "lr": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
    "momentum": 0.9,
    "batch_size": 64,
    "epochs": 1,
}


def _spec(framework: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": f"mnist-{framework}", "framework": framework,
        "data": {"name": "mnist", "path": str(args.data), "options": {"train_subset": args.train_subset, "val_size": 3000}},
        "model": {"family": "cnn"}, "space": SPACE, "constraints": [f"latency_ms <= {args.limit_ms:g}"],
        "device": "cpu:1", "inference_batch_size": 1, "seed": args.seed, "keep_models": "none",
        "latency": {"max_time_s": args.max_time},
    }


def _architectures(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` architectures of the space, drawn log-uniformly (seeded)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p: dict[str, Any] = {"conv_layers": rng.randint(1, 2), "kernel": rng.choice([3, 5]), "filters_0": round(8 * 8 ** rng.random())}
        if p["conv_layers"] == 2:
            p["filters_1"] = round(8 * 8 ** rng.random())
        p["dense_units"] = round(32 * 8 ** rng.random())
        out.append(p)
    return out


def latency_ratios(args: argparse.Namespace) -> list[dict[str, Any]]:
    from hwtune.hardware import parse_device
    from hwtune.study._framework import get_framework

    device = parse_device("cpu:1")
    torch_fw, keras_fw = get_framework("torch"), get_framework("keras")
    rows = []
    for p in _architectures(args.arch_samples, args.seed):
        row: dict[str, Any] = {"params": p}
        for label, fw, runtime in (("torch", torch_fw, "torch"), ("onnxruntime", torch_fw, "onnxruntime"), ("keras", keras_fw, "keras")):
            model = fw.build("cnn", p, (1, 28, 28), 10)
            rep = fw.measure(model, p, (1, 1, 28, 28), device, ("latency_ms", "params"), runtime, max_time_s=args.max_time, target_rel_ci=0.03)
            lat = rep.measurements["latency_ms"]
            row[label] = {"ms": lat.value, "ci": [lat.ci_low, lat.ci_high], "source": lat.source, "params": rep.measurements["params"].value}
        row["keras_over_torch"] = row["keras"]["ms"] / row["torch"]["ms"]
        row["keras_over_onnxruntime"] = row["keras"]["ms"] / row["onnxruntime"]["ms"]
        rows.append(row)
        print(f"  {p}: torch {row['torch']['ms']:.3f} ms, onnxruntime {row['onnxruntime']['ms']:.3f} ms, keras {row['keras']['ms']:.3f} ms", flush=True)
    return rows


def tflite_ratios(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 3: Keras on TensorFlow vs TFLite float vs TFLite int8, batch 1 and 64, one thread."""
    import tempfile

    import numpy as np
    import tensorflow as tf

    from hwtune.hardware import parse_device
    from hwtune.keras._tflite import export_tflite, profile_tflite, verify_tflite
    from hwtune.study._framework import get_framework
    from hwtune.train import load_dataset

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    device = parse_device("cpu:1")
    fw = get_framework("keras")
    data = load_dataset("mnist", str(args.data), seed=args.seed, train_subset=args.train_subset, val_size=3000)
    batches = [1, 64]
    kw = {"max_time_s": args.max_time, "target_rel_ci": 0.03, "batch_sizes": batches}
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwtune-kvt-tflite-") as tmp:
        for i, arch in enumerate(_architectures(args.arch_samples, args.seed)[: args.tflite_archs]):
            p = {**arch, "lr": 0.05, "momentum": 0.9, "batch_size": 64, "epochs": 1}
            model = fw.build("cnn", p, (1, 28, 28), 10)
            outcome = fw.train(model, data, p, seed=args.seed, device=device, reporter=None)
            t0 = time.perf_counter()
            f = export_tflite(model, Path(tmp) / f"a{i}.tflite", (1, 28, 28))
            t1 = time.perf_counter()
            q = export_tflite(model, Path(tmp) / f"a{i}_int8.tflite", (1, 28, 28), int8=True, calibration=data.x_train)
            t2 = time.perf_counter()
            row: dict[str, Any] = {"params": arch, "error_keras_training": outcome[0].get("error"),
                                   "convert_s": {"tflite": round(t1 - t0, 2), "tflite-int8": round(t2 - t1, 2)},
                                   "bytes": {"tflite": f.stat().st_size, "tflite-int8": q.stat().st_size}}
            vf = verify_tflite(model, f, False, data.x_val, data.y_val, tolerance=1e-4)
            vq = verify_tflite(model, q, True, data.x_val, data.y_val, tolerance=1e-4, validation=(data.x_val, data.y_val))
            row["verify_float"] = {k: vf.get(k) for k in ("max_abs_diff", "argmax_agreement", "error_pytorch", "error_exported", "passed")}
            row["verify_int8"] = {k: vq.get(k) for k in ("max_abs_diff", "argmax_agreement", "error_pytorch", "error_exported", "error_rise", "passed")}
            reps = {
                "keras-tf": fw.measure(model, p, (1, 1, 28, 28), device, ("latency_ms",), "keras", **kw),
                "tflite": profile_tflite(f, np.zeros((1, 1, 28, 28), "float32"), device, ("latency_ms",), **kw),
                "tflite-int8": profile_tflite(q, np.zeros((1, 1, 28, 28), "float32"), device, ("latency_ms",), **kw),
            }
            for label, rep in reps.items():
                row[label] = {b: {"ms": rep.batches[b]["latency_ms"].value, "ci": [rep.batches[b]["latency_ms"].ci_low, rep.batches[b]["latency_ms"].ci_high],
                                  "source": rep.batches[b]["latency_ms"].source} for b in batches}
            for b in batches:
                row[f"keras_tf_over_tflite_b{b}"] = row["keras-tf"][b]["ms"] / row["tflite"][b]["ms"]
                row[f"tflite_over_int8_b{b}"] = row["tflite"][b]["ms"] / row["tflite-int8"][b]["ms"]
            rows.append(row)
            print(f"  {arch}: " + "; ".join(f"b{b}: keras-tf {row['keras-tf'][b]['ms']:.3f} / tflite {row['tflite'][b]['ms']:.3f} / int8 {row['tflite-int8'][b]['ms']:.3f} ms" for b in batches)
                  + f"; val error float {vq['error_pytorch']:.4f} int8 {vq['error_exported']:.4f}; load {os.getloadavg()[0]:.1f}", flush=True)
    return rows


def run_study(framework: str, args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from hwtune.study import parse_study_file, study_from_file

    with tempfile.TemporaryDirectory(prefix="hwtune-kvt-") as tmp:  # a fresh study each run
        study, build, train = study_from_file(parse_study_file(_spec(framework, args)), storage=f"sqlite:///{tmp}/study.db")
        t0 = time.perf_counter()
        summary = study.optimize(build, train, n_trials=args.trials)
        wall = time.perf_counter() - t0
    best = summary.best[0] if summary.best else None
    trained = [r for r in summary.records if r.status == "trained"]
    return {
        "framework": framework, "runtime": study.runtime, "counts": summary.counts, "wall_s": round(wall, 1),
        "best": None if best is None else {
            "trial": best.number, "params": best.params, "error": best.metrics.get("error"), "test_error": best.metrics.get("test_error"),
            "latency_ms": best.hardware["latency_ms"].value, "latency_source": best.hardware["latency_ms"].source,
        },
        "mean_train_time_s": statistics.mean(r.metrics["train_time_s"] for r in trained) if trained else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--limit-ms", type=float, default=1.0)
    ap.add_argument("--train-subset", type=int, default=12000)
    ap.add_argument("--arch-samples", type=int, default=8)
    ap.add_argument("--max-time", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--skip-studies", action="store_true")
    ap.add_argument("--tflite", action="store_true", help="part 3 only: Keras-TF vs TFLite float vs int8 (KERAS_BACKEND=tensorflow)")
    ap.add_argument("--tflite-archs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "keras_vs_torch.json")
    args = ap.parse_args()

    import json

    import keras
    import torch

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.tflite:
        print(f"# keras {keras.__version__} (backend {keras.backend.backend()}), {platform.processor() or platform.machine()}, load {os.getloadavg()}")
        load_start = os.getloadavg()
        trows = tflite_ratios(args)
        summary = {k: statistics.median(r[k] for r in trows) for k in trows[0] if k.startswith(("keras_tf_over", "tflite_over"))}
        print("medians:", {k: round(v, 2) for k, v in summary.items()})
        out = {"date": started, "command": " ".join(sys.argv), "keras": keras.__version__, "backend": keras.backend.backend(),
               "load_start": load_start, "load_end": os.getloadavg(), "tflite": trows, "medians": summary}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, default=str))
        print(f"written {args.out}")
        return
    print(f"# keras {keras.__version__} (backend {keras.backend.backend()}), torch {torch.__version__}, {platform.processor() or platform.machine()}, load {os.getloadavg()}")
    print("## latency of the same architectures (cpu:1, batch 1)")
    rows = latency_ratios(args)
    kt = [r["keras_over_torch"] for r in rows]
    ko = [r["keras_over_onnxruntime"] for r in rows]
    print(f"Keras/eager PyTorch: median {statistics.median(kt):.2f}x (range {min(kt):.2f}-{max(kt):.2f}); "
          f"Keras/ONNX Runtime: median {statistics.median(ko):.2f}x (range {min(ko):.2f}-{max(ko):.2f})")
    studies = []
    if not args.skip_studies:
        for fw in ("torch", "keras"):
            print(f"## study, framework {fw}", flush=True)
            res = run_study(fw, args)
            print(json.dumps(res, indent=1, default=str))
            studies.append(res)
    out = {"date": started, "command": " ".join(sys.argv), "keras": keras.__version__, "backend": keras.backend.backend(), "torch": torch.__version__,
           "load_end": os.getloadavg(), "latency": rows, "keras_over_torch_median": statistics.median(kt), "keras_over_onnxruntime_median": statistics.median(ko),
           "studies": studies}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
