"""fp32 vs int8 ONNX Runtime latency of three CNNs on 28x28 inputs (issue 14, part 3).

Run:  .venv/bin/python benchmarks/compress_int8.py [--max-time 2] [--repeats 2]

The networks of the issue text (built-in ``cnn`` family, two conv layers, one dense layer): conv 8/16
dense 64; 32/64/256; 64/96/512. Each is exported to fp32 ONNX and quantized to int8
(``hwtune.compress.quantize_int8``: static QDQ, per-channel weights, calibrated on 8 batches of 32 real
MNIST training images from ../shared/data/mnist, else random inputs, said in the output); both files
are measured with ``hwtune.hardware.profile`` on one CPU thread at batch 1 and 64, fp32 and int8 in
alternation ``--repeats`` times (the median of the repeats is kept). The ratio is fp32 / int8 latency
(> 1: int8 is faster), its interval from the two 95 % intervals. Prints a Markdown table, the load
average before and after, and the sources of the values.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

SIZES = [(8, 16, 64), (32, 64, 256), (64, 96, 512)]
BATCHES = [1, 64]


def _calibration(seed: int = 0) -> tuple[list[np.ndarray], str]:
    from hwtune.compress import calibration_batches

    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if mnist.is_dir():
        from hwtune.train import load_mnist

        d = load_mnist(mnist, train_subset=2000)
        return calibration_batches(d.x_train, 32, 8, seed), f"MNIST training images ({mnist})"
    rng = np.random.default_rng(seed)
    return [rng.random((32, 1, 28, 28), dtype=np.float32) for _ in range(8)], "random inputs (MNIST not found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-time", type=float, default=2.0, help="profile()'s max_time_s per file and batch")
    ap.add_argument("--repeats", type=int, default=2, help="fp32/int8 alternations per network")
    args = ap.parse_args()

    import onnxruntime
    import torch

    from hwtune.compress import int8_kernels, profile_int8, quantize_int8
    from hwtune.hardware import (
        CPUDevice,
        OnnxModel,
        export_onnx,
        label_runtime,
        profile,
    )
    from hwtune.hardware._device import torch_threads
    from hwtune.train import get_family

    load0 = os.getloadavg()
    cal, cal_from = _calibration()
    dev = CPUDevice(1)
    kw = {"max_time_s": args.max_time, "batch_sizes": BATCHES}
    x = torch.as_tensor(cal[0][:1])
    rows = []
    sources: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp, torch_threads(1):
        for c1, c2, dense in SIZES:
            torch.manual_seed(0)
            net = get_family("cnn").build({"conv_layers": 2, "filters_0": c1, "filters_1": c2, "dense_units": dense}, (1, 28, 28), 10).eval()
            fp = export_onnx(net, x, Path(tmp) / f"fp32-{c1}.onnx")
            q = quantize_int8(net, x, cal, Path(tmp) / f"int8-{c1}.onnx")
            kernels = int8_kernels(q)
            runs: dict[str, dict[int, list[tuple[float, float, float]]]] = {"fp32": {b: [] for b in BATCHES}, "int8": {b: [] for b in BATCHES}}
            for _ in range(args.repeats):
                for name in ("fp32", "int8"):
                    r = label_runtime(profile(OnnxModel(fp), x, dev, ["latency_ms"], **kw), "onnxruntime") if name == "fp32" else profile_int8(q, x, dev, ["latency_ms"], **kw)
                    for b in BATCHES:
                        m = r.batches[b]["latency_ms"]
                        sources.add(m.source)
                        runs[name][b].append((m.value, m.ci_low or m.value, m.ci_high or m.value))
            for b in BATCHES:
                f = sorted(runs["fp32"][b])[len(runs["fp32"][b]) // 2]
                i = sorted(runs["int8"][b])[len(runs["int8"][b]) // 2]
                rows.append((f"{c1}/{c2}/{dense}", b, f[0], i[0], f[0] / i[0], f[1] / i[2], f[2] / i[1],
                             statistics.pstdev([v[0] for v in runs["int8"][b]]) / i[0], "+".join(sorted(set(kernels)))))
    load1 = os.getloadavg()
    print(f"# fp32 vs int8 ONNX Runtime, 1 thread — {datetime.date.today()}, onnxruntime {onnxruntime.__version__}, torch {torch.__version__}")
    print(f"calibration: {cal_from}; sources: {', '.join(sorted(sources))}")
    print(f"load average (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}; {os.cpu_count()} CPUs\n")
    print("| CNN conv/conv/dense | batch | fp32 ms | int8 ms | fp32/int8 | 95 % interval | int8 kernels |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    for name, b, f, i, ratio, lo, hi, _spread, k in rows:
        print(f"| {name} | {b} | {f:.3f} | {i:.3f} | **{ratio:.2f}x** | {lo:.2f}–{hi:.2f} | {k} |")


if __name__ == "__main__":
    main()
