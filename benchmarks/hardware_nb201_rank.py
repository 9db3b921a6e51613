"""Benchmark: latencies measured here vs. the published NAS-Bench-201 latencies (HELP).

Samples architectures from the shipped nb201 table, builds each network (hwtune.train._nb201),
measures its latency with ``hwtune.hardware.profile`` at one batch size, and reports the Spearman
rank correlation with every published CPU column (gold_6226, gold_6240, silver_4114, silver_4210r),
beside the published CPUs' correlations with each other on the same sample. With
``--device cuda`` it compares with the published GPU columns of the same batch size instead
(1080ti, 2080ti, titanx, titanxp, titan_rtx at batch 1, 32 or 256).

Results are appended to a JSONL file, one line per architecture, so a run can stop after
``--budget-s`` seconds and the next run resumes where it stopped:

    python benchmarks/hardware_nb201_rank.py --batch-size 1 --n 300 --budget-s 240
    python benchmarks/hardware_nb201_rank.py --batch-size 32 --n 300 --budget-s 240   # repeat until done
    python benchmarks/hardware_nb201_rank.py --report            # correlations of what is there

Test-retest in one run (issue 12): ``--passes 2`` measures the sample, then measures it again into
``<tag>_pass2``; the report gives the Spearman between the passes and the share of networks whose two
values are within +-5 %, for the absolute latency and for the latency relative to the reference
network measured in the same windows (``rel_to_ref``), and the time per network:

    python benchmarks/hardware_nb201_rank.py --batch-size 1 --n 300 --passes 2 --budget-s 1800 --tag i12

On an NVIDIA GPU, with energy and power per inference for the same sample (NVML; the report adds
their medians and sources):

    python benchmarks/hardware_nb201_rank.py --device cuda:0 --batch-size 1 --energy --budget-s 580
    python benchmarks/hardware_nb201_rank.py --device cuda:0 --batch-size 256 --energy --budget-s 580
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

CPU_COLUMNS = ("gold_6226", "gold_6240", "silver_4114", "silver_4210r")
GPU_NAMES = ("1080ti", "2080ti", "titanx", "titanxp", "titan_rtx")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def sample_rows(n: int, seed: int) -> list[int]:
    from hwtune.tabular import load_nb201

    table = load_nb201()
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(len(table.arch), size=n, replace=False))


def out_path(out_dir: Path, batch: int, threads: int, device: str = "cpu", tag: str = "") -> Path:
    dev = f"t{threads}" if device.startswith("cpu") else device.replace(":", "")
    return out_dir / f"hardware_nb201_rank_b{batch}_{dev}{'_' + tag if tag else ''}.jsonl"


def columns_for(stem: str, table_devices: list[str]) -> tuple[str, ...]:
    """Published columns to compare a result file with: CPUs, or the GPUs at its batch size."""
    if "_cuda" not in stem:
        return CPU_COLUMNS
    batch = stem.split("_rank_b")[-1].split("_")[0]
    return tuple(c for c in (f"{g}_{batch}" for g in GPU_NAMES) if c in table_devices)


def measure(args: argparse.Namespace) -> None:
    tag = args.tag
    args.reference_ms = None
    if args.at_reference:  # as a study does: the machine's speed measured once, every latency at it
        from hwtune.hardware import measure_reference_speed, parse_device

        ref = measure_reference_speed(parse_device(args.device, args.threads))
        args.reference_ms = ref["ms"]
        print(f"reference speed: {ref['ms']:.4g} ms (median {ref['median_ms']:.4g}, p90 {ref['p90_ms']:.4g}); latencies at it", flush=True)
    for k in range(args.passes):
        args.tag = tag if k == 0 else f"{tag}_pass{k + 1}" if tag else f"pass{k + 1}"
        measure_pass(args)
    args.tag = tag


def measure_pass(args: argparse.Namespace) -> None:
    import torch

    from hwtune.hardware import parse_device, profile
    from hwtune.tabular import load_nb201
    from hwtune.train._nb201 import build_nb201

    table = load_nb201()
    rows = sample_rows(args.n, args.seed)
    device = parse_device(args.device, args.threads)
    path = out_path(args.out_dir, args.batch_size, args.threads, args.device, args.tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["row"] for line in path.read_text().splitlines()} if path.exists() else set()
    order = np.random.default_rng(args.seed + 1).permutation(len(rows))  # a partial run is a random subset
    todo = [rows[i] for i in order if rows[i] not in done]
    print(f"{len(done)} of {len(rows)} done in {path.name}; measuring up to {args.budget_s:g} s", flush=True)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    n_new = 0
    with path.open("a") as f:
        for r in todo:
            if time.perf_counter() - t_start > args.budget_s:
                break
            arch = str(table.arch[r])
            net = build_nb201(arch)
            x = torch.randn(args.batch_size, 3, 32, 32)
            t0 = time.perf_counter()
            metrics = ["latency_ms", "power_w", "energy_mj"] if args.energy else ["latency_ms"]
            rep = profile(
                net, x, device, metrics, target_rel_ci=args.target_ci, max_time_s=args.max_time,
                max_retries=args.retries, warmup_runs=args.warmup_runs, warmup_s=0.0, min_repeats=args.min_repeats,
                reference_ms=getattr(args, "reference_ms", None),
            )
            m = rep["latency_ms"]
            f.write(json.dumps({
                "row": r, "index": int(table.index[r]), "arch": arch, "batch": args.batch_size, "threads": args.threads, "device": device.to_spec(),
                "latency_ms": m.value, "ci": [m.ci_low, m.ci_high], "n": m.repeats, "min_ms": m.extra.get("min_ms"), "p10_ms": m.extra.get("p10_ms"), "cpu_ms": m.extra.get("process_cpu_ms_per_call"), "converged": m.extra["converged"],
                "disturbed": m.extra["disturbed_attempts"], "state": m.extra["state"],
                "rel_to_ref": m.extra.get("rel_to_ref"), "rel_ci": m.extra.get("rel_to_ref_ci"), "ref_ms": m.extra.get("ref_ms"),
                "wall_ms": m.extra.get("wall_ms", m.value), "wall_ci": m.extra.get("wall_ci_ms", [m.ci_low, m.ci_high]),
                "at_reference_ms": m.extra.get("at_reference_ms"), "source": m.source,
                "windows": m.extra.get("windows"), "repeated": m.extra.get("repeated_windows"), "measured_at": m.extra.get("measured_at"),
                "profile_s": round(time.perf_counter() - t0, 3),
                **({k: rep[k].value for k in ("power_w", "energy_mj")} if args.energy else {}),
                **({"energy_source": rep["energy_mj"].source} if args.energy else {}),
            }) + "\n")
            f.flush()
            n_new += 1
    total = len(done) + n_new
    print(f"measured {n_new} now, {total} of {len(rows)} in all ({time.perf_counter() - t_start:.0f} s)", flush=True)


def op_count_fit(ops: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares fit of latency on the number of edges of each operation (plus a constant).

    On a quiet device the latency of these networks is close to additive in their operations
    (R^2 0.90-0.99 for the published CPUs), so the share of variance this fit leaves unexplained in
    our measurements estimates how much of them is noise. Returns (fitted values, R^2, coefficients
    of skip, conv1x1, conv3x3, avg_pool, constant).
    """
    counts = np.stack([(ops == k).sum(1) for k in range(5)], 1)
    x = np.column_stack([counts[:, 1:], np.ones(len(counts))])  # "none" is implied by the other counts
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    fit = x @ coef
    r2 = 1 - float(np.sum((y - fit) ** 2) / np.sum((y - y.mean()) ** 2))
    return fit, r2, coef


def report(args: argparse.Namespace) -> dict:
    from hwtune.tabular import load_nb201

    table = load_nb201()
    from hwtune.hardware._device import cpu_model_name

    out: dict = {"machine": f"{cpu_model_name()} ({platform.machine()})", "results": {}}
    for path in sorted(args.out_dir.glob("hardware_nb201_rank_b*.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        if len(recs) < 10:
            continue
        rows = np.array([rec["row"] for rec in recs])
        ours = np.array([rec["latency_ms"] for rec in recs])
        cols = columns_for(path.stem, table.devices)
        res = {
            "n": len(recs),
            "median_latency_ms": float(np.median(ours)),
            "converged": float(np.mean([rec["converged"] for rec in recs])),
            "disturbed": float(np.mean([rec["disturbed"] > 0 for rec in recs])),
            "median_rel_half_width": float(np.median([(rec["ci"][1] - rec["ci"][0]) / 2 / rec["latency_ms"] for rec in recs])),
            "spearman": {c: float(stats.spearmanr(ours, table.latency[c][rows])[0]) for c in cols},
            "published_between_devices": {
                f"{a}~{b}": float(stats.spearmanr(table.latency[a][rows], table.latency[b][rows])[0])
                for i, a in enumerate(cols) for b in cols[i + 1:]
            },
            "profile_s_median": float(np.median([rec["profile_s"] for rec in recs])),
        }
        fit, r2, coef = op_count_fit(table.ops[rows], ours)
        res["diagnosis"] = {
            "op_count_r2_ours": r2,
            "op_count_coef_ours_ms": dict(zip(("skip", "conv1x1", "conv3x3", "avg_pool", "const"), np.round(coef, 3).tolist())),
            "op_count_r2_published": {c: op_count_fit(table.ops[rows], table.latency[c][rows])[1] for c in cols},
            "op_count_coef_published_ms": {c: dict(zip(("skip", "conv1x1", "conv3x3", "avg_pool", "const"), np.round(op_count_fit(table.ops[rows], table.latency[c][rows])[2], 3).tolist())) for c in cols},
            "spearman_of_op_count_fit": {c: float(stats.spearmanr(fit, table.latency[c][rows])[0]) for c in cols},
        }
        with_min = [rec for rec in recs if rec.get("min_ms") is not None]
        if len(with_min) >= 10:  # diagnostics: the fastest sample, less hit by other processes
            mr = np.array([rec["row"] for rec in with_min])
            mins = np.array([rec["min_ms"] for rec in with_min])
            res["spearman_of_min_sample"] = {"n": len(with_min), **{c: float(stats.spearmanr(mins, table.latency[c][mr])[0]) for c in cols}}
        with_cpu = [rec for rec in recs if rec.get("cpu_ms") is not None]
        if len(with_cpu) >= 10:  # diagnostics: this process's CPU time per inference, blind to time-slicing
            cr = np.array([rec["row"] for rec in with_cpu])
            cpu = np.array([rec["cpu_ms"] for rec in with_cpu])
            res["spearman_of_process_cpu_time"] = {"n": len(with_cpu), **{c: float(stats.spearmanr(cpu, table.latency[c][cr])[0]) for c in cols}}
            res["diagnosis"]["op_count_r2_process_cpu_time"] = op_count_fit(table.ops[cr], cpu)[1]
        with_energy = [rec for rec in recs if rec.get("energy_mj") is not None]
        if with_energy:  # --energy: per-inference energy and power of the sample, with their sources
            e = np.array([rec["energy_mj"] for rec in with_energy])
            w = np.array([rec["power_w"] for rec in with_energy if rec.get("power_w") is not None])
            res["energy_per_inference_mj"] = {"n": len(e), "median": float(np.median(e)), "p10": float(np.percentile(e, 10)), "p90": float(np.percentile(e, 90))}
            if len(w):
                res["power_w"] = {"median": float(np.median(w)), "p10": float(np.percentile(w, 10)), "p90": float(np.percentile(w, 90))}
            res["energy_sources"] = sorted({str(rec.get("energy_source")) for rec in with_energy})
        out["results"][path.stem] = res
    stems = {p.stem: p for p in args.out_dir.glob("hardware_nb201_rank_b*.jsonl")}
    for stem, path in stems.items():  # test-retest: the same architectures measured in two passes
        base = stem.rsplit("_pass", 1)[0]
        if "_pass" in stem and base in stems:
            ra = {json.loads(x)["row"]: json.loads(x) for x in stems[base].read_text().splitlines()}
            rb = {json.loads(x)["row"]: json.loads(x) for x in path.read_text().splitlines()}
            common = sorted(set(ra) & set(rb))
            if len(common) >= 10 and stem in out["results"]:
                tr: dict = {"n": len(common)}
                for key in ("latency_ms", "wall_ms", "rel_to_ref", "cpu_ms", "min_ms"):
                    if all(ra[r].get(key) is not None and rb[r].get(key) is not None for r in common):
                        va = np.array([ra[r][key] for r in common])
                        vb = np.array([rb[r][key] for r in common])
                        tr[key] = {
                            "spearman_pass1_pass2": float(stats.spearmanr(va, vb)[0]),
                            "median_abs_diff_pct": float(np.median(np.abs(va / vb - 1)) * 100),
                            "share_within_5pct": float(np.mean(np.abs(va / vb - 1) <= 0.05)),
                        }
                both = [r for r in common if ra[r].get("ci") and rb[r].get("ci")]
                if both:  # does each pass's interval hold the other pass's value?
                    tr["latency_interval_holds_other_pass"] = float(np.mean(
                        [ra[r]["ci"][0] <= rb[r]["latency_ms"] <= ra[r]["ci"][1] for r in both]
                        + [rb[r]["ci"][0] <= ra[r]["latency_ms"] <= rb[r]["ci"][1] for r in both]))
                relb = [r for r in common if ra[r].get("rel_ci") and rb[r].get("rel_ci")]
                if relb:
                    tr["rel_interval_holds_other_pass"] = float(np.mean(
                        [ra[r]["rel_ci"][0] <= rb[r]["rel_to_ref"] <= ra[r]["rel_ci"][1] for r in relb]
                        + [rb[r]["rel_ci"][0] <= ra[r]["rel_to_ref"] <= rb[r]["rel_ci"][1] for r in relb]))
                    refs = [ra[r]["ref_ms"] for r in common] + [rb[r]["ref_ms"] for r in common]
                    tr["reference_ms_range"] = [float(np.min(refs)), float(np.median(refs)), float(np.max(refs))]
                out["results"][stem]["test_retest"] = tr
    print(json.dumps(out, indent=2))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300, help="architectures sampled from the table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:index]")
    p.add_argument("--threads", type=int, default=1, help="(host) threads")
    p.add_argument("--target-ci", type=float, default=0.05)
    p.add_argument("--max-time", type=float, default=2.0)
    p.add_argument("--min-repeats", type=int, default=10)
    p.add_argument("--warmup-runs", type=int, default=2)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--budget-s", type=float, default=240.0, help="stop measuring after this long (resume later)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--tag", default="", help="suffix of the result file (e.g. pass2 for a test-retest pass)")
    p.add_argument("--no-at-reference", dest="at_reference", action="store_false",
                   help="report wall-clock latencies (default: at the reference speed measured once at the start, as a study does)")
    p.add_argument("--passes", type=int, default=1, help="measure the sample this many times (test-retest in one run)")
    p.add_argument("--report", action="store_true", help="only print the correlations of the results so far")
    p.add_argument("--energy", action="store_true", help="also power and energy per inference (NVML on a GPU, RAPL or a labelled estimate on a CPU)")
    args = p.parse_args(argv)
    if not args.report:
        measure(args)
    report(args)


if __name__ == "__main__":
    sys.exit(main())
