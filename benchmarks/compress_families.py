"""Each compression on each built-in family, on MNIST: latency ratios and accuracy drops (issue 14).

Run:  .venv/bin/python benchmarks/compress_families.py [--epochs 2] [--train-subset 12000] [--max-time 1.5] [--repeats 2]

Per family (``cnn`` conv 32/64 dense 256; ``mlp`` 512/256; ``nb201`` all-3x3 cell, 16 channels, one
cell per stage), trained with hwtune's trainer (SGD, momentum 0.9) on ``--train-subset`` MNIST
images, then:

- **int8** (``quantize_int8``: static QDQ, per-channel, 8 calibration batches of 32 training images);
- **pruned 0.25 / 0.5** (``prune_channels`` by the trained weights' L1 norm), evaluated right after
  pruning and after one epoch of fine-tuning with self-distillation (beta 0.5, T 4).

Latency: every variant exported to ONNX (int8: its int8 file) and measured with ``hwtune.profile`` on
one CPU thread at batch 1 and 64, the variants in alternation ``--repeats`` times (median kept). The
ratio is fp32 / variant (> 1: faster), its interval from the two 95 % intervals (low = fp32 low /
variant high...). Errors are on the 10,000 MNIST test images. Prints Markdown tables and the load
average before and after.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
FAMILIES = {
    "cnn": {"conv_layers": 2, "filters_0": 32, "filters_1": 64, "kernel": 3, "dense_units": 256},
    "mlp": {"hidden_layers": 2, "units_0": 512, "units_1": 256},
    "nb201": {"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", "channels": 16, "cells": 1},
}
BATCHES = (1, 64)


def _error(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    from hwtune.train import evaluate_error

    return evaluate_error(model, torch.as_tensor(x), torch.as_tensor(y))


def _ort_error(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from hwtune.compress._pipeline import _ort_error as ort_error

    return ort_error(path, x, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=12000)
    ap.add_argument("--max-time", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from hwtune.compress import CompressionPlan, calibration_batches, compress_trained, prune_channels, quantize_int8
    from hwtune.hardware import CPUDevice, OnnxModel, export_onnx, label_runtime, profile
    from hwtune.hardware._device import torch_threads
    from hwtune.train import get_family, load_mnist, train_classifier

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    data = load_mnist(DATA, train_subset=args.train_subset, val_size=2000)
    dev = CPUDevice(threads=1)
    lat_rows, acc_rows = [], []
    for fam in args.families:
        params = FAMILIES[fam]
        with torch_threads(2):
            model = get_family(fam).build(params, data.input_shape, 10)
            train_classifier(model, data, {"epochs": args.epochs, "lr": 0.05, "momentum": 0.9, "batch_size": 64}, seed=0,
                             options={"amp": False, "channels_last": False, "compile": False})
        model.eval()
        x1 = torch.as_tensor(data.x_train[:1])
        with tempfile.TemporaryDirectory(prefix="hwtune-fam-") as tmp:
            files: dict[str, Path] = {"fp32": export_onnx(model, x1, Path(tmp) / "fp32.onnx", dynamic_batch=True)}
            files["int8"] = quantize_int8(model, x1, calibration_batches(data.x_train, 32, 8, 0), Path(tmp) / "int8.onnx")
            acc = {"family": fam, "fp32": _error(model, data.x_test, data.y_test), "int8": _ort_error(files["int8"], data.x_test, data.y_test)}
            for r in (0.25, 0.5):
                pruned = prune_channels(model, x1, r).eval()
                acc[f"pruned {r}"] = _error(pruned, data.x_test, data.y_test)
                with torch_threads(2):
                    tuned, _ = compress_trained(model, CompressionPlan(prune_ratio=r, distill_beta=0.5, finetune_epochs=1), data, seed=0)
                acc[f"pruned {r} + fine-tune"] = _error(tuned, data.x_test, data.y_test)
                files[f"pruned {r}"] = export_onnx(copy.deepcopy(tuned), x1, Path(tmp) / f"p{r}.onnx", dynamic_batch=True)
            acc_rows.append(acc)
            meas: dict[tuple[str, int], list[Any]] = {}
            for _ in range(args.repeats):
                for b in BATCHES:
                    xb = torch.zeros((b, *data.input_shape))
                    for name, path in files.items():
                        rep = profile(OnnxModel(path), xb, dev, ["latency_ms"], max_time_s=args.max_time)
                        meas.setdefault((name, b), []).append(label_runtime(rep, "onnxruntime-int8" if name == "int8" else "onnxruntime").measurements["latency_ms"])
            for b in BATCHES:
                def med(name: str) -> Any:
                    ms = meas[(name, b)]
                    return sorted(ms, key=lambda m: m.value)[len(ms) // 2]
                base = med("fp32")
                row = {"family": fam, "batch": b, "fp32_ms": base.value, "source": base.source}
                for name in files:
                    if name == "fp32":
                        continue
                    v = med(name)
                    lo = base.ci_low / v.ci_high if base.ci_low and v.ci_high else None
                    hi = base.ci_high / v.ci_low if base.ci_high and v.ci_low else None
                    row[name] = (base.value / v.value, lo, hi, v.source)
                lat_rows.append(row)
        print(f"{fam}: done", flush=True)
    print(f"\n## Latency ratio fp32 / variant (ONNX Runtime, 1 thread; > 1: faster), {started}\n")
    names = ["int8", "pruned 0.25", "pruned 0.5"]
    print("| family | batch | fp32 ms | " + " | ".join(names) + " |\n|---|---|---|" + "---|" * len(names))
    for r in lat_rows:
        cells = [f"{r[n][0]:.2f}x [{r[n][1]:.2f}, {r[n][2]:.2f}]" if r[n][1] else f"{r[n][0]:.2f}x" for n in names]
        print(f"| {r['family']} | {r['batch']} | {r['fp32_ms']:.4g} | " + " | ".join(cells) + " |")
    print("\n## Test error on MNIST (10,000 images; points)\n")
    keys = ["fp32", "int8", "pruned 0.25", "pruned 0.25 + fine-tune", "pruned 0.5", "pruned 0.5 + fine-tune"]
    print("| family | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for a in acc_rows:
        print(f"| {a['family']} | " + " | ".join(f"{100 * a[k]:.2f}" + ("" if k == "fp32" else f" ({100 * (a[k] - a['fp32']):+.2f})") for k in keys) + " |")
    print(f"\nsources: fp32/pruned measured:timer[onnxruntime], int8 measured:timer[onnxruntime-int8]; "
          f"load average before {tuple(round(v, 2) for v in load0)}, after {tuple(round(v, 2) for v in os.getloadavg())}; "
          f"median of {args.repeats} alternations")


if __name__ == "__main__":
    main()
