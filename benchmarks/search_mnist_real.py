"""Benchmark (issue 19, item 4): real searches on MNIST, hwtune's sampler against TPE, same wall clock.

Real training, not tables: a CNN space with architecture *and* training params (conditional conv
layers, filters, kernels, dense units; learning rate on a log scale, dropout, the optimizer with a
momentum that exists only for SGD, batch size), real MNIST (a training subset so that one training
takes seconds, the project's usual 10,000-image validation split, the 10,000 test images), and a
batch-1 latency limit in ONNX Runtime on one CPU thread at about the 30 % quantile of the space.

Both methods run the real hwtune loop through study dicts (docs/study-files.md): every proposal is
measured on this CPU before training and a network over budget is never trained. Only ``sampler:``
differs (``hwtune`` or ``tpe``); everything else is the study file's default, so the loop's
cost-model skip (``predicted_over_budget``) applies to both (``--tpe-cost-model none`` turns it off
for TPE, as ``hwtune bench``'s ``tpe-measure-first`` has it).

For each seed, one after the other:

1. the limit: the machine's speed (hwtune's reference network, ``measure_reference_speed``) and
   ``latency_ms <= q30`` calibrated once with the study's own machinery (``Study.calibrate``: 16
   random architectures of the space measured untrained with the study's meter, pinned to the first
   core); both studies get that absolute limit and that reference speed (their meters report
   latencies at it, as the workers of one study do), so the limit means the same in both;
2. the two studies side by side, each in its own process pinned to its own core
   (``os.sched_setaffinity``, the cores swapped every other seed; torch, OpenMP and ONNX Runtime on
   one thread), with the same
   wall-clock budget (``--minutes``); Optuna's ``timeout`` lets the trial running at the deadline
   finish, so only the trials that *ended* within the budget (counted from the first trial's start)
   are scored;
3. per study: the best validation error of a feasible trained network, its test error (the kept
   weights reloaded with ``hwtune.load_model`` and evaluated on the 10,000 test images here; the
   trainer's own t10k number beside it, and instead of it when the study's final best is a trial
   that ended after the budget), counts of trained / measured over budget / predicted over budget /
   failed trials, and measurements (meter runs, repeats near the bound included) per trained network.

Then medians over seeds and hwtune's win/tie/loss against TPE (a tie: within ``--tie`` of each other,
default 0.001 = 10 of the 10,000 validation or test images). JSON to
benchmarks/results/search_mnist_real.json, a markdown table on stdout.

    nice -n 5 .venv/bin/python benchmarks/search_mnist_real.py --seeds 0 1 2 --minutes 8
    .venv/bin/python benchmarks/search_mnist_real.py --minutes 1 --seeds 0 --out benchmarks/results/search_mnist_real_tiny.json

Goal (issue 19): hwtune's best validation error below TPE's in the median over seeds, and its test
error no worse. Wall-clock budgets are disturbed by whatever else runs on the machine: note the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

METHODS = ("hwtune", "tpe")

SPACE: dict[str, Any] = {
    # architecture (the cnn family: conv -> ReLU -> 2x2 max-pool per layer, one dense layer)
    "conv_layers": {"type": "int", "low": 1, "high": 3},
    "filters_0": {"type": "int", "low": 4, "high": 64, "log": True},
    "kernel_0": {"type": "categorical", "choices": [3, 5, 7]},
    "filters_1": {"type": "int", "low": 4, "high": 64, "log": True, "condition": "conv_layers >= 2"},
    "kernel_1": {"type": "categorical", "choices": [3, 5, 7], "condition": "conv_layers >= 2"},
    "filters_2": {"type": "int", "low": 4, "high": 64, "log": True, "condition": "conv_layers >= 3"},
    "kernel_2": {"type": "categorical", "choices": [3, 5, 7], "condition": "conv_layers >= 3"},
    "dense_units": {"type": "int", "low": 16, "high": 512, "log": True},
    # training
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
    "momentum": {"type": "float", "low": 0.0, "high": 0.98, "condition": "optimizer == 'sgd'"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
}


# -------------------------------------------------------------------------------------------------
# the study dict (docs/study-files.md vocabulary)
# -------------------------------------------------------------------------------------------------
def study_spec(a: dict[str, Any], method: str, constraint: str, storage: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": f"mnist-real-{method}-{a['seed']}",
        "data": {"name": "mnist", "path": a["mnist"],
                 "options": {"train_subset": a["train_subset"], "val_size": a["val_size"]}},
        "model": {"family": "cnn"},
        "space": {**SPACE, "epochs": a["epochs"]},
        "objective": {"minimize": "error"},
        "constraints": [constraint],
        "device": "cpu:1",
        "inference_batch_size": 1,
        "runtime": "onnxruntime",
        "seed": a["seed"],
        "sampler": "hwtune" if method == "hwtune" else "tpe",
        "keep_models": "best",
        "trainer": {"channels_last": False, "amp": False, "compile": False},  # no speed-up probes: the same numerics for both
    }
    if method == "tpe" and a.get("tpe_cost_model", "auto") != "auto":
        spec["cost_model"] = a["tpe_cost_model"]
    if storage is not None:
        spec["storage"] = storage
    return spec


def _one_thread(core: int | None) -> None:
    """Pin this process to ``core`` (when given) and keep torch on one thread."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if core is not None:
        os.sched_setaffinity(0, {core})
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def calibrate(a: dict[str, Any], core: int) -> dict[str, Any]:
    """The seed's absolute limit: ``latency_ms <= q<NN>`` resolved by the study's own calibration."""
    import optuna

    from hwtune.hardware import measure_reference_speed
    from hwtune.study import parse_study_file, study_from_file

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    before = os.sched_getaffinity(0)
    _one_thread(core)
    try:
        text = f"latency_ms <= q{a['quantile']}"
        spec = study_spec(a, "calibration", text, "sqlite:///:memory:")
        spec["name"] = f"mnist-real-calibration-{a['seed']}"
        study, build, _ = study_from_file(parse_study_file(spec))
        t0 = time.monotonic()
        # the machine's speed measured once here and handed to both studies' meters (run_study)
        reference = measure_reference_speed(study.device)
        cal = study.calibrate(build, dataclasses.replace(study.default_measure(), reference_ms=float(reference["ms"])))
        seconds = time.monotonic() - t0
    finally:
        os.sched_setaffinity(0, before)
    d = cal.to_dict()
    return {
        "constraint_relative": text,
        "limit_ms": float(cal.limits[text]),
        "describe": cal.describe(),
        "spread_ms": d["spread"].get("latency_ms"),
        "values_ms": cal.values("latency_ms"),
        "n_measured": d["n_measured"],
        "failures": d["failures"],
        "seconds": round(seconds, 1),
        "reference": dict(reference),
        "source": "Study.calibrate: random architectures of the space measured untrained (measured:timer/reference[onnxruntime], batch 1, cpu:1)",
    }


# -------------------------------------------------------------------------------------------------
# one study, in its own process
# -------------------------------------------------------------------------------------------------
def _measurement_runs(t: Any) -> int:
    """Meter runs of one stored trial: 0 (reused, predicted, failed before measuring), else the rounds."""
    from hwtune.vocabulary import DECISION_ATTR, HARDWARE_ATTR

    hw = t.user_attrs.get(HARDWARE_ATTR) or {}
    if not hw or any(isinstance(m, dict) and "reused_from_trial" in (m.get("extra") or {}) for m in hw.values()):
        return 0
    dec = t.user_attrs.get(DECISION_ATTR) or {}
    rounds = [int(v.get("rounds", 1)) for v in dec.values() if isinstance(v, dict)]
    return max(rounds) if rounds else 1


def _test_error_of_kept(study: Any, mnist: str) -> dict[str, Any]:
    """The kept best network reloaded (``hwtune.load_model``) and evaluated on the 10,000 test images."""
    import torch

    import hwtune
    from hwtune.train import load_mnist

    try:
        model = hwtune.load_model(study)
    except Exception as e:  # noqa: BLE001 - reported, never a number
        return {"value": None, "reason": f"no kept model: {type(e).__name__}: {e}"}
    ds = load_mnist(mnist, seed=0, val_size=1, train_subset=1)  # the t10k test set does not depend on the split
    x, y = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            wrong += int((model(x[i : i + 1000]).argmax(1) != y[i : i + 1000]).sum())
    return {"value": wrong / len(y), "n": len(y), "wrong": wrong,
            "source": "measured:hwtune.load_model(best kept weights) on MNIST t10k, eager PyTorch"}


def run_study(job: dict[str, Any]) -> dict[str, Any]:
    """One whole study of one method (in a child process pinned to ``job['core']``)."""
    _one_thread(job["core"])
    import optuna

    from hwtune.study import parse_study_file, study_from_file
    from hwtune.vocabulary import (
        FAILURE_ATTR,
        HARDWARE_ATTR,
        METRICS_ATTR,
        TRACEBACK_ATTR,
        read_trial,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    method = job["method"]
    out: dict[str, Any] = {"method": method, "seed": job["seed"], "core": job["core"], "pid": os.getpid(),
                           "affinity": sorted(os.sched_getaffinity(0)), "storage": job["storage"]}
    spec = study_spec(job, method, f"latency_ms <= {job['limit_ms']!r}", job["storage"])
    study, build, train = study_from_file(parse_study_file(spec))
    # the study's own meter, reporting latencies at the machine speed measured with the seed's
    # calibration (as every worker of one study does), so that the one absolute limit means the same
    # in both studies: two separately measured reference speeds differed by 50 % on the loaded machine
    measure = study.default_measure()
    if job.get("reference_ms"):
        measure = dataclasses.replace(measure, reference_ms=float(job["reference_ms"]))
    out["reference_ms"] = getattr(measure, "reference_ms", None)
    t0 = time.monotonic()
    out["started"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        study.optimize(build, train, measure=measure, timeout=job["minutes"] * 60, n_trials=100_000)
        out["error"] = None
    except BaseException as e:  # noqa: BLE001 - a crash of the loop or sampler is a result: keep what was stored
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()[-6000:]
    out["wall_s"] = round(time.monotonic() - t0, 1)
    ost = study.optuna_study
    start = min((t.datetime_start for t in ost.trials if t.datetime_start), default=None)
    trials, counts, runs = [], {}, 0
    for t in ost.trials:
        r = read_trial(t)
        counts[r.status] = counts.get(r.status, 0) + 1
        n_runs = _measurement_runs(t)
        runs += n_runs
        lat = (t.user_attrs.get(HARDWARE_ATTR) or {}).get("latency_ms") or {}
        metrics = t.user_attrs.get(METRICS_ATTR) or {}
        trials.append({
            "number": t.number, "status": r.status,
            "t_end_s": (t.datetime_complete - start).total_seconds() if (start and t.datetime_complete) else None,
            "seconds": r.duration_s,
            "error": metrics.get("error") if r.status == "trained" else None,
            "test_error": metrics.get("test_error") if r.status == "trained" else None,
            "train_time_s": metrics.get("train_time_s"),
            "latency_ms": lat.get("value"), "latency_source": lat.get("source"),
            "predicted_latency_ms": ((r.predicted or {}).get("latency_ms") or {}).get("value"),
            "measurement_runs": n_runs,
            "params": r.params,
            "failure": t.user_attrs.get(FAILURE_ATTR),
            "traceback": (t.user_attrs.get(TRACEBACK_ATTR) or "")[-2000:] or None,
        })
    out["trials"] = trials
    # the whole run (Optuna's timeout lets the trial running at the deadline finish) ...
    out["counts_all"] = counts
    out["measurement_runs_all"] = runs
    best = study.best_feasible()
    kept: dict[str, Any] = {"value": None, "reason": "no feasible trained network"}
    if best:
        kept = {**_test_error_of_kept(study, job["mnist"]), "trial": best[0].number}
    out["kept_best_test"] = kept
    # ... and what counts: the trials that ended within the budget (from the first trial's start), so
    # that a long trial started just before the deadline gives neither method extra time
    budget_s = job["minutes"] * 60
    inside = [x for x in trials if x["t_end_s"] is not None and x["t_end_s"] <= budget_s]
    out["counts"] = {st: sum(1 for x in inside if x["status"] == st) for st in sorted({x["status"] for x in inside})}
    out["measurement_runs"] = sum(x["measurement_runs"] for x in inside)
    trained = out["counts"].get("trained", 0)
    out["runs_per_trained"] = out["measurement_runs"] / trained if trained else None
    done = [x for x in inside if x["status"] == "trained" and x["error"] is not None]
    if done:
        bt = min(done, key=lambda x: (x["error"], x["number"]))
        same = kept.get("trial") == bt["number"] and kept.get("value") is not None
        out["best"] = {"trial": bt["number"], "val_error": bt["error"], "trainer_test_error": bt["test_error"],
                       "test_error": kept["value"] if same else bt["test_error"],
                       "test_error_source": ("measured:hwtune.load_model(kept weights) on MNIST t10k" if same
                                             else "measured:training (the trainer's t10k evaluation; the kept model is a later trial's)"),
                       "latency_ms": bt["latency_ms"], "latency_source": bt["latency_source"], "params": bt["params"],
                       "found_at_s": bt["t_end_s"]}
    else:
        out["best"] = None
        out["best_reason"] = "no feasible trained network ended within the budget"
    # any trained network over the limit would be a bug of the loop (never happens by design)
    out["trained_over_limit"] = sum(1 for x in trials if x["status"] == "trained" and x["latency_ms"] is not None
                                    and x["latency_ms"] > job["limit_ms"])
    return out


# -------------------------------------------------------------------------------------------------
# summary
# -------------------------------------------------------------------------------------------------
def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _median(vals: list[Any]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(statistics.median(v)) if v else None


def _wtl(h: float | None, t: float | None, tie: float) -> str:
    """hwtune's result against TPE's (lower is better; a missing result loses to any)."""
    if h is None and t is None:
        return "tie"
    if h is None:
        return "loss"
    if t is None:
        return "win"
    if abs(h - t) <= tie + 1e-12:
        return "tie"
    return "win" if h < t else "loss"


def summarize(results: dict[int, dict[str, Any]], tie: float) -> dict[str, Any]:
    rows = []
    for seed, res in sorted(results.items()):
        for m in METHODS:
            r = res["methods"][m]
            c = r.get("counts", {})
            b = r.get("best") or {}
            rows.append({
                "seed": seed, "method": m, "limit_ms": res["calibration"]["limit_ms"],
                "best_val_error": b.get("val_error"), "test_error": b.get("test_error"),
                "trainer_test_error": b.get("trainer_test_error"), "best_latency_ms": b.get("latency_ms"),
                "found_at_s": b.get("found_at_s"),
                "trained": c.get("trained", 0), "over_budget": c.get("over_budget", 0),
                "predicted_over_budget": c.get("predicted_over_budget", 0), "failed": c.get("failed", 0),
                "interrupted": c.get("interrupted", 0), "measurement_runs": r.get("measurement_runs"),
                "runs_per_trained": r.get("runs_per_trained"), "trained_over_limit": r.get("trained_over_limit"),
                "wall_s": r.get("wall_s"), "loop_error": r.get("error"),
            })
    med = {}
    for m in METHODS:
        mr = [x for x in rows if x["method"] == m]
        med[m] = {k: _median([x[k] for x in mr]) for k in (
            "best_val_error", "test_error", "trained", "over_budget", "predicted_over_budget", "failed", "runs_per_trained")}
    wtl_val = {"win": 0, "tie": 0, "loss": 0}
    wtl_test = {"win": 0, "tie": 0, "loss": 0}
    per_seed = []
    for seed in sorted(results):
        h = next(x for x in rows if x["seed"] == seed and x["method"] == "hwtune")
        t = next(x for x in rows if x["seed"] == seed and x["method"] == "tpe")
        v = _wtl(h["best_val_error"], t["best_val_error"], tie)
        te = _wtl(h["test_error"], t["test_error"], tie)
        wtl_val[v] += 1
        wtl_test[te] += 1
        per_seed.append({"seed": seed, "val": v, "test": te})
    hv, tv = med["hwtune"]["best_val_error"], med["tpe"]["best_val_error"]
    ht, tt = med["hwtune"]["test_error"], med["tpe"]["test_error"]
    goal = {
        "text": "hwtune's best validation error below TPE's in the median over seeds, and its test error no worse",
        "val_below": (hv is not None and tv is not None and hv < tv),
        "test_no_worse": (ht is not None and tt is not None and ht <= tt),
    }
    goal["met"] = bool(goal["val_below"] and goal["test_no_worse"])
    return {"rows": rows, "medians": med, "win_tie_loss_val": wtl_val, "win_tie_loss_test": wtl_test,
            "per_seed": per_seed, "tie_band": tie, "goal": goal}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| seed | method | limit ms | best val error | its test error | trained | over budget (measured) | predicted over budget | failed | meter runs / trained |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['seed']} | {r['method']} | {r['limit_ms']:.4f} | {_fmt(r['best_val_error'])} | {_fmt(r['test_error'])} | "
            f"{r['trained']} | {r['over_budget']} | {r['predicted_over_budget']} | {r['failed']} | {_fmt(r['runs_per_trained'], 2)} |"
        )
    for m, d in summary["medians"].items():
        lines.append(
            f"| median | {m} | | {_fmt(d['best_val_error'])} | {_fmt(d['test_error'])} | {_fmt(d['trained'], 1)} | "
            f"{_fmt(d['over_budget'], 1)} | {_fmt(d['predicted_over_budget'], 1)} | {_fmt(d['failed'], 1)} | {_fmt(d['runs_per_trained'], 2)} |"
        )
    v, t = summary["win_tie_loss_val"], summary["win_tie_loss_test"]
    lines.append("")
    lines.append(f"hwtune vs TPE (tie band {summary['tie_band']}): validation {v['win']}/{v['tie']}/{v['loss']}, "
                 f"test {t['win']}/{t['tie']}/{t['loss']} (win/tie/loss). Goal met on the medians alone: {summary['goal']['met']} "
                 f"(val below: {summary['goal']['val_below']}, test no worse: {summary['goal']['test_no_worse']}).")
    return "\n".join(lines)


def _uptime() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "load average " + " ".join(f.read().split()[:3])
    except OSError as e:
        return f"unavailable ({e})"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of each study")
    p.add_argument("--train-subset", type=int, default=10_000)
    p.add_argument("--val-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--quantile", type=int, default=30, help="the limit: latency_ms <= q<NN> of the space, calibrated per seed")
    p.add_argument("--cores", type=int, nargs=2, default=[0, 1], help="cores of hwtune's and TPE's processes (swapped every other seed)")
    p.add_argument("--tpe-cost-model", default="auto", choices=["auto", "none"],
                   help="TPE's study cost_model (auto: the study-file default, its skip on; none: every proposal measured)")
    p.add_argument("--tie", type=float, default=0.001, help="errors within this of each other tie")
    p.add_argument("--workdir", default=None, help="where the studies' SQLite files and kept weights go (default: a new temp folder)")
    p.add_argument("--out", default="benchmarks/results/search_mnist_real.json")
    args = p.parse_args(argv)

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned studies
    os.environ["MKL_NUM_THREADS"] = "1"
    if not Path(args.mnist).is_dir():
        sys.exit(f"--mnist: {args.mnist} is not a folder with the MNIST idx files")
    avail = os.sched_getaffinity(0)
    if not set(args.cores) <= avail or args.cores[0] == args.cores[1]:
        sys.exit(f"--cores: need two distinct cores of {sorted(avail)}, got {args.cores}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hwtune-mnist-real-"))
    work.mkdir(parents=True, exist_ok=True)
    base = {"mnist": str(Path(args.mnist).resolve()), "train_subset": args.train_subset, "val_size": args.val_size,
            "epochs": args.epochs, "quantile": args.quantile, "minutes": args.minutes, "tpe_cost_model": args.tpe_cost_model}
    run_info: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_before": _uptime(), "workdir": str(work), "cpu_count": os.cpu_count(),
        "space": SPACE, "settings": {**base, "seeds": args.seeds, "cores": args.cores, "tie": args.tie,
                                     "inference_batch_size": 1, "device": "cpu:1", "runtime": "onnxruntime"},
    }
    print(f"# {run_info['started_utc']} {run_info['load_before']}; studies in {work}", flush=True)
    results: dict[int, dict[str, Any]] = {}
    for k, seed in enumerate(args.seeds):
        a = {**base, "seed": seed}
        cal = calibrate(a, args.cores[0])
        print(f"seed {seed}: {cal['describe']}", flush=True)
        jobs = []
        cores = args.cores if k % 2 == 0 else args.cores[::-1]  # swapped every other seed: neither method keeps the busier core
        for m, core in zip(METHODS, cores):
            d = work / f"seed{seed}"
            d.mkdir(exist_ok=True)
            jobs.append({**a, "method": m, "core": core, "limit_ms": cal["limit_ms"], "reference_ms": cal["reference"].get("ms"),
                         "storage": f"sqlite:///{d / (m + '.db')}"})
        load = _uptime()
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as ex:
            futs = {j["method"]: ex.submit(run_study, j) for j in jobs}
            done = {m: f.result() for m, f in futs.items()}
        results[seed] = {"calibration": cal, "load_at_start": load, "load_at_end": _uptime(), "methods": done}
        for m in METHODS:
            r = done[m]
            b = r.get("best") or {}
            k = r.get("kept_best_test") or {}
            print(f"seed {seed} {m}: best val {_fmt(b.get('val_error'))} test {_fmt(b.get('test_error'))} "
                  f"(trainer {_fmt(b.get('trainer_test_error'))}; kept trial {k.get('trial')} reloaded {_fmt(k.get('value'))}) "
                  f"counts {r.get('counts')} runs/trained {_fmt(r.get('runs_per_trained'), 2)} wall {r.get('wall_s')} s"
                  + (f" LOOP ERROR {r['error']}" if r.get("error") else ""), flush=True)
    summary = summarize(results, args.tie)
    run_info["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run_info["load_after"] = _uptime()
    out = {**run_info, "summary": summary, "seeds": {str(k): v for k, v in results.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, default=str)
    print(markdown(summary))
    print(f"# finished {run_info['finished_utc']} {run_info['load_after']}; JSON: {args.out}")


if __name__ == "__main__":
    main()
