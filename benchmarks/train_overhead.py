"""Benchmark: trainer overhead — images/s of hwtune's ``train_classifier`` vs a plain PyTorch loop.

The same HyperPower-style CNN, the same MNIST tensors, the same device, the same work per run (move
the data to the device, re-initialise the weights, train ``--epochs`` epochs of SGD with momentum,
evaluate the validation split after every epoch and the test split at the end). The variants run
alternately, round after round, in one process; images/s = training images x epochs / wall time of
the whole call. Goal: hwtune >= 0.95 x the plain loop at the same precision.

Variants:
  plain_fp32   hand-written loop, float32
  hwtune_fp32  train_classifier with amp off, channels_last off (pure overhead of the trainer)
  plain_bf16   hand-written loop under bf16 autocast            (CUDA only)
  hwtune_bf16  train_classifier with amp bf16, channels_last off (CUDA only)
  hwtune_auto  train_classifier with its automatic choices (AMP, channels-last probe...)

    python benchmarks/train_overhead.py --mnist ../shared/data/mnist --device cpu --threads 1
    python benchmarks/train_overhead.py --mnist data/mnist --device cuda --train-subset 50000 --epochs 3 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any


def plain_loop(model: Any, data: Any, lr: float, momentum: float, epochs: int, batch_size: int, seed: int, device: str, bf16: bool) -> float:
    """A hand-written loop doing the trainer's work; returns the validation error."""
    import contextlib

    import numpy as np
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    to = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a), dtype=dt).to(dev)  # noqa: E731
    xtr, ytr = to(data.x_train, torch.float32), to(data.y_train, torch.int64)
    xva, yva = to(data.x_val, torch.float32), to(data.y_val, torch.int64)
    xte, yte = to(data.x_test, torch.float32), to(data.y_test, torch.int64)
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    model.to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    ac = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def err(x: Any, y: Any) -> float:
        model.eval()
        wrong = torch.zeros((), dtype=torch.long, device=dev)
        with torch.inference_mode(), ac():
            for i in range(0, len(y), 1024):
                wrong += (model(x[i : i + 1024]).argmax(1) != y[i : i + 1024]).sum()
        return int(wrong) / len(y)

    n = len(ytr)
    val = 1.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            with ac():
                loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = err(xva, yva)
    err(xte, yte)
    return val


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=4000)
    p.add_argument("--val-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--filters", default="8,16", help="filters per conv layer (HyperPower-style CNN)")
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--dense", type=int, default=64)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)

    import torch

    from hwtune.train import get_family, load_mnist, train_classifier

    torch.set_num_threads(args.threads)
    data = load_mnist(args.mnist, val_size=args.val_size, train_subset=args.train_subset)
    filters = [int(f) for f in args.filters.split(",")]
    arch = {"conv_layers": len(filters), "kernel": args.kernel, "dense_units": args.dense, **{f"filters_{i}": f for i, f in enumerate(filters)}}
    params = {"lr": 0.05, "momentum": 0.9, "epochs": args.epochs, "batch_size": args.batch_size}
    cuda = args.device.startswith("cuda")
    # a fresh network of the same architecture for every run (the trainer may change a network's
    # memory format; every run re-initialises the weights from the same seed)
    fresh = lambda: get_family("cnn").build(arch, data.input_shape, 10)  # noqa: E731
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)

    def run_hwtune(opts: dict[str, Any]) -> Any:
        return lambda: train_classifier(fresh(), data, params, seed=args.seed, device=args.device, options=opts).error

    variants: dict[str, Any] = {
        "plain_fp32": lambda: plain_loop(fresh(), data, 0.05, 0.9, args.epochs, args.batch_size, args.seed, args.device, False),
        "hwtune_fp32": run_hwtune({"amp": "off", "channels_last": False}),
    }
    if cuda:
        variants["plain_bf16"] = lambda: plain_loop(fresh(), data, 0.05, 0.9, args.epochs, args.batch_size, args.seed, args.device, True)
        variants["hwtune_bf16"] = run_hwtune({"amp": "bf16", "channels_last": False})
    variants["hwtune_auto"] = run_hwtune({})
    for fn in variants.values():  # warm-up: one-time imports, kernels, the probe's cache
        fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    errors: dict[str, float] = {}
    images = len(data.y_train) * args.epochs
    for r in range(args.rounds):
        for name, fn in variants.items():
            sync()
            t = time.perf_counter()
            errors[name] = fn()
            sync()
            rates[name].append(images / (time.perf_counter() - t))
    # ratio per round (alternating runs share the machine's conditions), then the median
    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    result = {
        "device": args.device if not cuda else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "train_images": len(data.y_train),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "arch": arch,
        "images_per_s_median": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "images_per_s_rounds": {k: [round(x) for x in v] for k, v in rates.items()},
        "val_error_last": errors,
        "ratio_hwtune_fp32_vs_plain_fp32": round(ratio("hwtune_fp32", "plain_fp32"), 3),
        "ratio_hwtune_auto_vs_plain_fp32": round(ratio("hwtune_auto", "plain_fp32"), 3),
    }
    if cuda:
        result["ratio_hwtune_bf16_vs_plain_bf16"] = round(ratio("hwtune_bf16", "plain_bf16"), 3)
    res = train_classifier(fresh(), data, params, seed=args.seed, device=args.device)
    result["auto_choices"] = res.settings["speedups"]
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
