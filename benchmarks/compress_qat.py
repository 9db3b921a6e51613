"""int8 validation error with post-training quantization (PTQ) vs quantization-aware fine-tuning (QAT)
vs float, on MNIST and CIFAR-10 (issue 14, part 3's option).

Run:  .venv/bin/python benchmarks/compress_qat.py [--mnist-subset 3000] [--cifar-per-class 556]
      [--cifar-train 2500] [--epochs 2] [--variants ptq qat1 qat2 qat2_kd] [--networks ...] [--outlier 300]
      [--out benchmarks/results/compress_qat.json]

``--outlier K`` evaluates the trained 2-conv CNNs after a function-preserving rescale that gives two
channels a K times wider range (:func:`outlier_channels`): a case built for post-training quantization
to hurt, to see whether QAT repairs it on real data.

For each data set and network (built-in ``cnn`` and ``nb201`` families), one float network is trained
(SGD, ``--epochs``, seed 0) by hwtune's trainer, then through the study's own functions
(``compress_trained`` + ``evaluate_compressed``, i.e. what a trial with these params does):

- ``float``: the trained network's validation / test error (PyTorch);
- ``ptq``: ``quantize: int8`` — ONNX Runtime static QDQ int8, calibrated on seeded training batches;
- ``qat1`` / ``qat2``: ``quantize: int8, qat_epochs: 1 / 2`` (Adam at hwtune's QAT rate, no teacher),
  then the same ONNX Runtime quantization;
- ``qat2_kd``: ``qat_epochs: 2, distill_beta: 0.5`` (the float network as the teacher, T = 4).

For each QAT variant the float error of the QAT network itself (its kept float weights, unquantized)
is stored too (``float_after_qat``): QAT is also extra training, and this separates the two.
Every int8 error is computed by ONNX Runtime on the int8 model (``measured:onnxruntime-int8``); the
float one by PyTorch. Printed as a table, and written as JSON with ``--out``. One seed: differences
below about 1 / sqrt(validation size) are noise.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CNNS = {
    "cnn 8/16 d64": {"conv_layers": 2, "filters_0": 8, "filters_1": 16, "dense_units": 64},
    "cnn 32/64 d128": {"conv_layers": 2, "filters_0": 32, "filters_1": 64, "dense_units": 128},
}
NB201 = {
    "nb201 conv3x3 C8 N1": {"edge_1_0": "nor_conv_3x3", "edge_2_0": "nor_conv_3x3", "edge_2_1": "nor_conv_1x1", "edge_3_0": "skip_connect",
                             "edge_3_1": "nor_conv_3x3", "edge_3_2": "avg_pool_3x3", "channels": 8, "cells": 1},
}
VARIANTS = {
    "ptq": {"quantize": "int8"},
    "qat1": {"quantize": "int8", "qat_epochs": 1},
    "qat2": {"quantize": "int8", "qat_epochs": 2},
    "qat2_kd": {"quantize": "int8", "qat_epochs": 2, "distill_beta": 0.5},
}


def outlier_channels(net: Any, k: float) -> Any:
    """The trained 2-conv ``cnn`` with two channels of its first convolution scaled by ``k`` and the
    second convolution's inputs from them by ``1 / k``: the same function in float (ReLU and
    max-pooling commute with a positive scale), but a ``k`` times wider activation range, so per-tensor
    int8 rounds the other channels coarsely: a case where post-training quantization hurts (outlier
    channels are how it fails in practice)."""
    import torch

    with torch.no_grad():
        for c in range(2):
            net[0].weight[c] *= k
            net[0].bias[c] *= k
            net[3].weight[:, c] /= k
    return net


def load(name: str, args: argparse.Namespace) -> Any:
    from hwtune.train import load_dataset

    if name == "mnist":
        return load_dataset("mnist", str(DATA / "mnist"), seed=0, train_subset=args.mnist_subset, val_size=2000)
    import dataclasses

    import numpy as np

    d = load_dataset("imagefolder", str(DATA / "cifar10" / "cifar10-jpeg-imagefolder.tar.gz"), seed=0, max_per_class=args.cifar_per_class, val_fraction=0.1)
    keep = np.random.default_rng(0).permutation(len(d.y_train))[: args.cifar_train]  # a seeded subset of the training split
    return dataclasses.replace(d, x_train=d.x_train[keep], y_train=d.y_train[keep])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-subset", type=int, default=3000)
    ap.add_argument("--cifar-per-class", type=int, default=556)
    ap.add_argument("--cifar-train", type=int, default=2500)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--networks", nargs="+", default=[*CNNS, *NB201], choices=[*CNNS, *NB201])
    ap.add_argument("--outlier", type=float, default=0.0, help="> 0: evaluate the cnns with two outlier channels of this scale (outlier_channels)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", nargs="+", default=["mnist", "cifar10"], choices=["mnist", "cifar10"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from hwtune.compress import CompressionPlan, compress_trained, evaluate_compressed
    from hwtune.train import get_family, train_classifier

    torch.set_num_threads(1)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    results: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "started": started, "args": {k: str(v) for k, v in vars(args).items()}, "rows": []}
    for dname in args.data:
        data = load(dname, args)
        shape = tuple(data.x_train.shape[1:])
        nets = {n: p for n, p in {**CNNS, **NB201}.items() if n in args.networks}
        print(f"{dname}: train {len(data.y_train)}, val {len(data.y_val)}, test {len(data.y_test)}, input {shape}", flush=True)
        for nname, params in nets.items():
            family = "nb201" if nname.startswith("nb201") else "cnn"
            torch.manual_seed(0)
            net = get_family(family).build(params, shape, data.num_classes)
            t0 = time.time()
            train_classifier(net, data, {"epochs": args.epochs, "lr": 0.05, "momentum": 0.9, "batch_size": 64}, seed=0,
                             options={"amp": False, "channels_last": False, "compile": False})
            net.eval()
            if args.outlier > 0 and family == "cnn":
                nname = f"{nname}, 2 outlier channels x{args.outlier:g}"
                net = outlier_channels(net, args.outlier)
            row: dict[str, Any] = {"data": dname, "network": nname, "train_s": round(time.time() - t0, 1)}
            row["float"] = {**evaluate_compressed(net, CompressionPlan(), data), "source": "measured:torch"}
            for vname in args.variants:
                vparams = VARIANTS[vname]
                t1 = time.time()
                plan = CompressionPlan.from_params(vparams)
                student, info = compress_trained(copy.deepcopy(net), plan, data, seed=0)
                row[vname] = {**evaluate_compressed(student, plan, data), "source": "measured:onnxruntime-int8", "seconds": round(time.time() - t1, 1)}
                if "qat" in info:  # the QAT network's own float error: how much is extra training, how much int8
                    row[vname]["float_after_qat"] = {**evaluate_compressed(student, CompressionPlan(), data), "source": "measured:torch"}
                    row[vname]["qat_losses"] = info["qat"]["losses"]
                    row[vname]["qat_lr"] = info["qat"]["lr"]
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.write_text(json.dumps({**results, "partial": True}, indent=1))
    results["load_average"] = {"before": load0, "after": os.getloadavg()}
    cols = ["float", *args.variants]
    print("\n| data | network | " + " | ".join(f"{c} val / test err %" for c in cols) + " |\n|---|---|" + "---|" * len(cols))
    for r in results["rows"]:
        cells = [f"{100 * r[k]['error']:.2f} / {100 * r[k]['test_error']:.2f}" for k in cols]
        print(f"| {r['data']} | {r['network']} | " + " | ".join(cells) + " |")
    print("\nfloat error of the QAT networks themselves (val / test %):")
    for r in results["rows"]:
        print(f"| {r['data']} | {r['network']} | " + " | ".join(
            f"{k}: {100 * r[k]['float_after_qat']['error']:.2f} / {100 * r[k]['float_after_qat']['test_error']:.2f}" for k in args.variants if "float_after_qat" in r[k]) + " |")
    print(f"\nvalidation error; load average before {load0}, after {os.getloadavg()}; started {started}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
