"""Benchmark (issue 13): the same networks measured in eager PyTorch, TorchScript and ONNX Runtime, and
whether an exported model's re-measured latency lies inside the study's interval.

For ``--n`` random architectures of the default study's space (``src/hwtune/study/default_study.yaml``:
the ``cnn`` family on the 8x8 digits, batch 64, ``cpu:1``), in one process:

1. each network is measured by the study's own default meter (``Study.default_measure()``, at the
   study's reference speed, as a study stores it) three times, once per runtime (``torch``,
   ``torchscript``, ``onnxruntime``; the order rotates from network to network); ratios side by side;
2. the ``onnxruntime`` measurement is the study's; the network is then exported as ``hwtune export``
   does (:func:`hwtune.hardware.export_onnx`) and the file re-measured as ``hwtune export`` does
   (:func:`hwtune.deploy._export.remeasure_latency`): the share of re-measured latencies inside the
   study's 95 % interval (at the reference speed, and on the wall clock);
3. the ONNX exporters (TorchScript-based ``legacy`` and ``dynamo``) on these networks and on a few
   ``mlp`` and ``nb201`` networks: seconds per export, failures, largest output difference;
4. the per-trial cost of the export inside the meter (``extra["export_s"]``) against the meter's time.

    python benchmarks/runtime_agreement.py --n 12 --json benchmarks/results/runtime_agreement.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _lat(m: Any) -> dict[str, Any]:
    e = m.extra or {}
    return {
        "ms": m.value, "ci": [m.ci_low, m.ci_high], "source": m.source,
        "wall_ms": e.get("wall_ms"), "wall_ci": e.get("wall_ci_ms"), "export_s": e.get("export_s"),
    }


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _exporters(net: Any, shape: tuple[int, ...], folder: Path, tag: str) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    from hwtune.hardware import export_onnx

    out: dict[str, Any] = {"net": tag}
    net.eval()
    for how in ("legacy", "dynamo"):
        path = folder / f"{tag}_{how}.onnx"
        t0 = time.perf_counter()
        try:
            export_onnx(net, torch.zeros(1, *shape), path, exporter=how)
        except Exception as e:  # noqa: BLE001 - a failure is a result here
            out[how] = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        dt = time.perf_counter() - t0
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        diff = 0.0
        for b in (1, 7):
            x = torch.randn(b, *shape)
            with torch.no_grad():
                diff = max(diff, float(np.abs(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] - net(x).numpy()).max()))
        files = [p.name for p in folder.glob(f"{tag}_{how}.onnx*")]
        out[how] = {"ok": True, "s": round(dt, 4), "max_abs_diff": diff, "files": len(files)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="random architectures of the default study's space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--others", type=int, default=3, help="mlp and nb201 networks each, for the exporter comparison")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from hwtune.deploy._export import remeasure_latency
    from hwtune.hardware import export_onnx, measure_reference_speed
    from hwtune.study import default_study_file, study_from_file
    from hwtune.study._calibrate import _draw_architectures
    from hwtune.train import get_family

    torch.manual_seed(args.seed)
    load0 = os.getloadavg()
    t_start = time.time()
    spec = default_study_file()
    study, build, _ = study_from_file(spec, storage="sqlite:///:memory:")
    meter = study.default_measure()
    ref = measure_reference_speed(study.device)
    meters = {rt: dataclasses.replace(meter, reference_ms=float(ref["ms"]), runtime=rt) for rt in ("torch", "torchscript", "onnxruntime")}
    shape, batch = tuple(study.input_shape), study.inference_batch_size
    rng = np.random.default_rng(args.seed)
    archs = _draw_architectures(study.space, args.n, rng)
    rows: list[dict[str, Any]] = []
    exporters: list[dict[str, Any]] = []
    order = ["torch", "torchscript", "onnxruntime"]
    with tempfile.TemporaryDirectory(prefix="hwtune-bench-") as tmp:
        folder = Path(tmp)
        for i, params in enumerate(archs):
            net = build(params)
            row: dict[str, Any] = {"params": study.space.hardware_params(params)}
            for rt in order[i % 3:] + order[: i % 3]:  # rotate, so that a drift does not favour one runtime
                t0 = time.perf_counter()
                r = meters[rt](net, params)
                row[rt] = {**_lat(r["latency_ms"]), "meter_s": round(time.perf_counter() - t0, 3)}
            path = export_onnx(net, torch.zeros(1, *shape), folder / f"trial_{i}.onnx")
            m, _ = remeasure_latency(path, shape, study.device, batch, rel_ci=study.latency_rel_ci, max_time_s=study.latency_max_time_s, reference_ms=float(ref["ms"]))
            row["exported"] = _lat(m)
            s = row["onnxruntime"]
            row["inside"] = bool(s["ci"][0] <= m.value <= s["ci"][1])
            row["overlap"] = bool(m.ci_low <= s["ci"][1] and s["ci"][0] <= m.ci_high)
            if s["wall_ci"] and row["exported"]["wall_ms"] is not None:
                row["inside_wall"] = bool(s["wall_ci"][0] <= row["exported"]["wall_ms"] <= s["wall_ci"][1])
            rows.append(row)
            exporters.append(_exporters(net, shape, folder, f"cnn{i}"))
            print(f"{i + 1}/{len(archs)}: torch {row['torch']['ms']:.4g} ms, torchscript {row['torchscript']['ms']:.4g}, onnxruntime {s['ms']:.4g} "
                  f"[{s['ci'][0]:.4g}, {s['ci'][1]:.4g}], exported {m.value:.4g} ({'inside' if row['inside'] else 'OUTSIDE'})", flush=True)
        others = [("mlp", {"hidden_layers": int(rng.integers(1, 4)), **{f"units_{j}": int(rng.choice([16, 64, 256])) for j in range(3)}}, (1, 8, 8))
                  for _ in range(args.others)]
        ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
        edges = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
        others += [("nb201", {**{e: str(rng.choice(ops)) for e in edges}, "channels": 8, "cells": 1}, (3, 32, 32)) for _ in range(args.others)]
        for j, (fam, p, shp) in enumerate(others):
            exporters.append(_exporters(get_family(fam).build(p, shp, 10), shp, folder, f"{fam}{j}"))
    load1 = os.getloadavg()

    def col(rt: str, key: str = "ms") -> list[float]:
        return [float(r[rt][key]) for r in rows]

    ort_ms = col("onnxruntime")
    q40 = {rt: float(np.quantile(col(rt), 0.4)) for rt in order}
    feasible = {rt: [v <= q40[rt] for v in col(rt)] for rt in order}
    summary = {
        "n": len(rows),
        "ratio_torch_over_ort": {"median": float(np.median(np.divide(col("torch"), ort_ms))), "min": float(np.min(np.divide(col("torch"), ort_ms))), "max": float(np.max(np.divide(col("torch"), ort_ms)))},
        "ratio_torchscript_over_ort": {"median": float(np.median(np.divide(col("torchscript"), ort_ms))), "min": float(np.min(np.divide(col("torchscript"), ort_ms))), "max": float(np.max(np.divide(col("torchscript"), ort_ms)))},
        "spearman_torch_ort": _spearman(col("torch"), ort_ms),
        "spearman_torchscript_ort": _spearman(col("torchscript"), ort_ms),
        "q40_side_changes_torch_vs_ort": int(sum(a != b for a, b in zip(feasible["torch"], feasible["onnxruntime"]))),
        "share_inside_interval": float(np.mean([r["inside"] for r in rows])),
        "share_intervals_overlap": float(np.mean([r["overlap"] for r in rows])),
        "share_inside_interval_wall": float(np.mean([r["inside_wall"] for r in rows if "inside_wall" in r])) if any("inside_wall" in r for r in rows) else None,
        "median_abs_rel_diff_exported": float(np.median([abs(r["exported"]["ms"] / r["onnxruntime"]["ms"] - 1) for r in rows])),
        "export_s_in_meter": {"median": float(np.median([r["onnxruntime"]["export_s"] for r in rows])), "max": float(np.max([r["onnxruntime"]["export_s"] for r in rows]))},
        "meter_s": {rt: float(np.median(col(rt, "meter_s"))) for rt in order},
        "exporters": {
            how: {
                "ok": sum(1 for e in exporters if e[how]["ok"]), "of": len(exporters),
                "s_median": float(np.median([e[how]["s"] for e in exporters if e[how]["ok"]])),
                "s_max": float(np.max([e[how]["s"] for e in exporters if e[how]["ok"]])),
                "max_abs_diff": float(np.max([e[how]["max_abs_diff"] for e in exporters if e[how]["ok"]])),
                "files_per_export": sorted({e[how]["files"] for e in exporters if e[how]["ok"]}),
            }
            for how in ("legacy", "dynamo")
        },
        "reference_ms": ref["ms"],
        "loadavg_start": [round(v, 2) for v in load0],
        "loadavg_end": [round(v, 2) for v in load1],
        "seconds": round(time.time() - t_start, 1),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
    }
    import onnxruntime

    summary["onnxruntime"] = onnxruntime.__version__
    print(json.dumps(summary, indent=1))
    print("\n| # | hardware params | torch ms | torchscript ms | onnxruntime ms [95 % CI] | torch / ort | exported ms | inside |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(rows):
        p = r["params"]
        arch = "-".join(f"{p[f'filters_{k}']}k{p[f'kernel_{k}']}" for k in range(int(p["conv_layers"]))) + f" d{p['dense_units']}"
        s = r["onnxruntime"]
        print(f"| {i} | {arch} | {r['torch']['ms']:.3f} | {r['torchscript']['ms']:.3f} | {s['ms']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}] | "
              f"{r['torch']['ms'] / s['ms']:.2f} | {r['exported']['ms']:.3f} | {'yes' if r['inside'] else 'no'} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows, "exporters": exporters}, indent=1, default=str))


if __name__ == "__main__":
    main()
