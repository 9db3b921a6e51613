"""Benchmark: does early stopping pay? The same study with and without pruning (Hyperband, hwtune's
learning-curve pruner ``curve``, or any pruner spec), under each sampler asked for (TPE, hwtune).

Real MNIST (a subset, for minutes rather than hours), the HyperPower-style CNN space with a latency
limit (inference batch 64, one CPU thread), the same wall-clock budget for every study, for
several seeds. The limit is the median latency of a few random networks of the space, measured
first, so that about half of the space is over budget whatever the CPU.

For each seed: the target is the best validation error the *unpruned* study reached; we report the
training time each study needed to first reach it (sum of the durations of the trials trained so far,
pruned ones included, over-budget ones excluded: they are never trained) and the ratio
pruned / unpruned, each pruner against the unpruned study of the same sampler and seed; and the same
ratio counted in epochs trained (blind to the machine's speed, which a shared machine changes from
minute to minute). Goal
(issue 19): median ratio <= 0.5. Each trial's per-epoch validation errors are kept in the raw results.

Two designs. With ``--sampler random`` the two studies of a seed are *paired*: the random sampler's
proposals do not depend on results, so both studies walk the same networks and the ratio measures the
pruner alone (each row says in how many leading trials the params matched). With a sampler that learns
(TPE, hwtune) they are not, and the target is the unpruned study's own record, which a study that
differs only in its random stream misses half the time: the script prints that floor, every unpruned
study against every other's best (``race_control``).

    python benchmarks/train_pruning.py --mnist ../shared/data/mnist --seeds 0 1 2 3 4 --minutes 3 --jobs 10
    python benchmarks/train_pruning.py --seeds 0 1 2 3 --pruner hyperband curve --sampler tpe hwtune
    python benchmarks/train_pruning.py --seeds 0 1 2 3 --pruner curve --sampler random   # paired
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

SPACE: dict[str, Any] = {
    "conv_layers": {"type": "int", "low": 1, "high": 2},
    "filters_0": {"type": "int", "low": 4, "high": 32, "log": True},
    "kernel_0": {"type": "categorical", "choices": [3, 5]},
    "filters_1": {"type": "int", "low": 4, "high": 32, "log": True, "condition": "conv_layers >= 2"},
    "kernel_1": {"type": "categorical", "choices": [3, 5], "condition": "conv_layers >= 2"},
    "dense_units": {"type": "int", "low": 16, "high": 128, "log": True},
    "lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True},
    "momentum": {"type": "float", "low": 0.0, "high": 0.95},
    "batch_size": {"type": "categorical", "choices": [64, 128]},
}


def calibrate_limit(n: int = 8, seed: int = 123) -> float:
    """Median latency (ms, batch 64, 1 thread) of ``n`` random networks of the space."""
    import numpy as np
    import torch

    from hwtune.hardware import CPUDevice, profile
    from hwtune.train import get_family

    rng = np.random.default_rng(seed)
    lats = []
    for _ in range(n):
        layers = int(rng.integers(1, 3))
        arch = {"conv_layers": layers, "dense_units": int(np.exp(rng.uniform(np.log(16), np.log(128))))}
        for i in range(layers):
            arch[f"filters_{i}"] = int(np.exp(rng.uniform(np.log(4), np.log(32))))
            arch[f"kernel_{i}"] = int(rng.choice([3, 5]))
        model = get_family("cnn").build(arch, (1, 28, 28), 10)
        rep = profile(model, torch.zeros(64, 1, 28, 28), CPUDevice(1), ("latency_ms",), target_rel_ci=0.05, max_time_s=1.0)
        lats.append(rep.values()["latency_ms"])
    return float(statistics.median(lats))


def run_study(args: dict[str, Any]) -> dict[str, Any]:
    """One study (in its own process); returns its trials' timeline."""
    import optuna

    from hwtune.study import parse_study_file, study_from_file

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = {
        "name": f"prune-{args['seed']}",
        "data": {"name": "mnist", "path": args["mnist"], "options": {"train_subset": args["train_subset"], "val_size": args["val_size"]}},
        "model": {"family": "cnn"},
        "space": {**SPACE, "epochs": args["epochs"]},
        "objective": {"minimize": "error"},
        "constraints": [f"latency_ms <= {args['limit']:.4f}"],
        "device": "cpu:1",
        "inference_batch_size": 64,
        "seed": args["seed"],
        "sampler": args.get("sampler", "tpe"),
        "latency": {"rel_ci": 0.1, "max_time_s": 0.5},
        "pruner": _pruner_spec(args["pruner"], args.get("prior_curves") or []),
        "trainer": {"channels_last": False, "amp": False},  # same numerics in both studies, no probes
    }
    study, build, train = study_from_file(parse_study_file({**spec, "storage": "sqlite:///:memory:"}))
    study.optimize(build, train, timeout=args["minutes"] * 60)
    trials = []
    for t in study.optuna_study.trials:
        if t.datetime_start is None or t.datetime_complete is None:
            continue
        status = t.user_attrs.get("hwtune:status")
        trials.append({
            "number": t.number, "status": status,
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds(),
            "error": t.value if status == "trained" else None,
            "epochs": (t.user_attrs.get("hwtune:metrics") or {}).get("epochs") if status == "trained" else t.user_attrs.get("hwtune:pruned_at_epoch"),
            "curve": _curve(t),
            "params": {k: v for k, v in t.params.items()},  # what the sampler proposed (for replays that keep the sampler)
        })
    return {"pruner": args["pruner"], "sampler": args.get("sampler", "tpe"), "seed": args["seed"], "trials": trials}


def _pruner_spec(raw: str, prior: list[list[float]]) -> Any:
    """The study file's ``pruner:`` from a ``--pruner`` argument; ``"prior_curves": "prior"`` takes the
    curves of ``--prior-results``."""
    spec = json.loads(raw) if raw.startswith("{") else raw
    if isinstance(spec, dict) and spec.get("prior_curves") == "prior":
        if not prior:
            raise SystemExit(f"--pruner {raw}: \"prior\" needs --prior-results")
        spec = {**spec, "prior_curves": prior}
    return spec


def prior_curves(paths: list[str], setting: dict[str, Any]) -> list[list[float]]:
    """Whole curves of the unpruned studies of earlier ``--out`` files, which must share ``setting``."""
    curves: list[list[float]] = []
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        theirs = {k: d.get(k) for k in setting}
        if theirs != setting:
            raise SystemExit(f"--prior-results {path}: its setting {theirs} differs from this run's {setting}")
        curves += [t["curve"] for r in d["raw"] if r["pruner"] == "none" for t in r["trials"]
                   if t["status"] == "trained" and len(t.get("curve") or []) == d["epochs"]]
    return curves


def _curve(t: Any) -> list[float]:
    """The trial's validation error per epoch (Optuna's intermediate values, else hwtune's curve attribute)."""
    raw = t.user_attrs.get("hwtune:curve") or {str(k): v for k, v in t.intermediate_values.items()}
    return [float(raw[k]) for k in sorted(raw, key=int)]


def time_to(trials: list[dict[str, Any]], target: float) -> float | None:
    """Training seconds (trained + pruned trials, in order) until a trained trial's error <= target."""
    spent = 0.0
    for t in trials:
        if t["status"] in ("trained", "pruned"):
            spent += t["seconds"]
        if t["status"] == "trained" and t["error"] is not None and t["error"] <= target + 1e-12:
            return spent
    return None


def epochs_to(trials: list[dict[str, Any]], target: float) -> int | None:
    """Epochs trained (trained + pruned trials, in order) until a trained trial's error <= target: the
    same measure as :func:`time_to`, blind to how fast the (shared, loaded) machine ran that minute."""
    spent = 0
    for t in trials:
        if t["status"] in ("trained", "pruned"):
            spent += len(t.get("curve") or []) or int(t.get("epochs") or 0)
        if t["status"] == "trained" and t["error"] is not None and t["error"] <= target + 1e-12:
            return spent
    return None


def same_networks(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """How many leading trials of two studies proposed the same params: all of the shorter one's when the
    pair is *paired* (a random sampler with the same seed: its proposals do not depend on results, so
    pruning cannot change them), and 0 or a few with a sampler that learns. 0 when params were not stored."""
    n = 0
    for x, y in zip(a, b):
        if not x.get("params") or x.get("params") != y.get("params"):
            break
        n += 1
    return n


def to_the_best_of(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds and epochs each study needed to reach ``base``'s best error, and other / base (None: not
    reached, or ``base`` trained nothing)."""
    errs = [t["error"] for t in base if t["error"] is not None]
    target = min(errs) if errs else None
    t_base, t_other = (time_to(base, target), time_to(other, target)) if target is not None else (None, None)
    e_base, e_other = (epochs_to(base, target), epochs_to(other, target)) if target is not None else (None, None)
    return {"target": target, "base_s": t_base, "other_s": t_other, "base_epochs": e_base, "other_epochs": e_other,
            "ratio": (t_other / t_base) if (t_other is not None and t_base) else None,
            "epoch_ratio": (e_other / e_base) if (e_other is not None and e_base) else None}


def race_control(results: list[dict[str, Any]], sampler: str) -> dict[str, Any] | None:
    """The same measure between *unpruned* studies of different seeds (each against the other's best):
    what "time to the other study's best" gives when nothing differs but the random stream. Of two
    exchangeable studies, the one with the worse best never reaches the other's, so about half the
    pairs are "not reached" and the median ratio is above 1 however good the method: the noise floor of
    the unpaired design, against which a pruner's ratio must be read."""
    base = [r for r in results if r["pruner"] == "none" and r.get("sampler", "tpe") == sampler]
    races = [to_the_best_of(a["trials"], b["trials"]) for a in base for b in base if b is not a]
    races = [r for r in races if r["target"] is not None]
    if not races:
        return None
    inf = float("inf")
    return {"pairs": len(races), "reached": sum(r["ratio"] is not None for r in races),
            "median_ratio": statistics.median(inf if r["ratio"] is None else r["ratio"] for r in races),
            "median_epoch_ratio": statistics.median(inf if r["epoch_ratio"] is None else r["epoch_ratio"] for r in races)}


def summarize(results: list[dict[str, Any]], samplers: list[str], pruners: list[str], seeds: list[int], out: dict[str, Any]) -> dict[str, Any]:
    """Per sampler and pruner: each seed's time (and epochs) to the unpruned study's best, and the medians."""
    out["pruners"] = {}
    for sa, pr in ((sa, pr) for sa in samplers for pr in pruners):
        rows = []
        for s in seeds:
            base = next(r for r in results if r["seed"] == s and r["pruner"] == "none" and r.get("sampler", "tpe") == sa)
            pruned = next(r for r in results if r["seed"] == s and r["pruner"] == pr and r.get("sampler", "tpe") == sa)
            race = to_the_best_of(base["trials"], pruned["trials"])
            perrs = [t["error"] for t in pruned["trials"] if t["error"] is not None]
            count = lambda r, st: sum(t["status"] == st for t in r["trials"])
            rows.append({
                "seed": s, "target_error": race["target"],
                "unpruned_s": race["base_s"], "pruned_s": race["other_s"], "ratio": race["ratio"],
                "unpruned_epochs": race["base_epochs"], "pruned_epochs": race["other_epochs"], "epoch_ratio": race["epoch_ratio"],
                "unpruned_best": race["target"], "pruned_best": min(perrs) if perrs else None,
                "unpruned_trials": {st: count(base, st) for st in ("trained", "over_budget", "failed")},
                "pruned_trials": {st: count(pruned, st) for st in ("trained", "pruned", "over_budget", "failed")},
                "pruned_at_epochs": sorted(t["epochs"] for t in pruned["trials"] if t["status"] == "pruned"),
                "same_networks": same_networks(base["trials"], pruned["trials"]),
                "networks": min(len(base["trials"]), len(pruned["trials"])),
            })
        ratios = [r["ratio"] if r["ratio"] is not None else float("inf") for r in rows]
        eratios = [r["epoch_ratio"] if r["epoch_ratio"] is not None else float("inf") for r in rows]
        out["pruners"][f"{sa}/{pr}"] = {"sampler": sa, "pruner": pr, "rows": rows, "median_ratio": statistics.median(ratios),
                                        "median_epoch_ratio": statistics.median(eratios), "reached": sum(r["ratio"] is not None for r in rows)}
    out["race_control"] = {sa: race_control(results, sa) for sa in samplers}
    return out


def report(out: dict[str, Any]) -> None:
    for pr, res in out["pruners"].items():
        print(f"{pr}: median ratio {res['median_ratio']:.3g} (epochs {res['median_epoch_ratio']:.3g}), reached {res['reached']}/{len(res['rows'])}")
        for r in res["rows"]:
            print(f"  seed {r['seed']}: target {r['target_error']}, unpruned {r['unpruned_s']} s / {r['unpruned_epochs']} epochs, "
                  f"pruned {r['pruned_s']} s / {r['pruned_epochs']} epochs, best {r['unpruned_best']} vs {r['pruned_best']}, "
                  f"trials {r['unpruned_trials']} vs {r['pruned_trials']}, the same networks in the first {r.get('same_networks')} of {r.get('networks')}")
    for sa, c in (out.get("race_control") or {}).items():
        if c:
            print(f"{sa}, unpruned against unpruned of another seed (the unpaired design's noise floor): median ratio "
                  f"{c['median_ratio']:.3g} (epochs {c['median_epoch_ratio']:.3g}), reached {c['reached']}/{c['pairs']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=1.5, help="wall-clock budget of each study")
    p.add_argument("--train-subset", type=int, default=3000)
    p.add_argument("--val-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--pruner", nargs="+", default=["hyperband", "curve"], help="pruner names or JSON specs, each compared with no pruning")
    p.add_argument("--sampler", nargs="+", default=["tpe"], help="samplers (tpe, hwtune, random): every pruner runs under each")
    p.add_argument("--limit", type=float, default=None, help="latency limit in ms (default: calibrated)")
    p.add_argument("--jobs", type=int, default=1, help="studies run at once (each on one thread)")
    p.add_argument("--out", default=None)
    p.add_argument("--reuse", default=None, help="an earlier --out file: its studies of the same sampler, pruner and seed are reused, "
                   "not run again (the same --limit, --minutes, --train-subset, --val-size and --epochs are required)")
    p.add_argument("--prior-results", nargs="+", default=[],
                   help="earlier --out files of the same --train-subset, --val-size and --epochs: their unpruned studies' curves "
                        "replace \"prior\" in a curve spec, e.g. '{\"name\": \"curve\", \"prior_curves\": \"prior\", \"forecast\": true}'")
    p.add_argument("--summarize", default=None, help="an earlier --out file: recompute its summary from its raw studies, run nothing")
    args = p.parse_args(argv)
    if args.summarize:
        with open(args.summarize) as f:
            old = json.load(f)
        samplers = list(dict.fromkeys(r.get("sampler", "tpe") for r in old["raw"]))
        pruners = list(dict.fromkeys(r["pruner"] for r in old["raw"] if r["pruner"] != "none"))
        seeds = sorted({r["seed"] for r in old["raw"]})
        out = summarize(old["raw"], samplers, pruners, seeds, {k: v for k, v in old.items() if k not in ("pruners", "raw")})
        out["raw"] = old["raw"]
        report(out)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
        return

    import torch

    torch.set_num_threads(1)
    prior = prior_curves(args.prior_results, {"train_subset": args.train_subset, "val_size": args.val_size, "epochs": args.epochs})
    limit = args.limit if args.limit is not None else calibrate_limit()
    jobs = [
        {"pruner": pr, "seed": s, "mnist": args.mnist, "train_subset": args.train_subset, "val_size": args.val_size,
         "epochs": args.epochs, "limit": limit, "minutes": args.minutes, "sampler": sa, "prior_curves": prior}
        for s in args.seeds for sa in args.sampler for pr in ("none", *args.pruner)  # interleaved: the machine's drift hits every method
    ]
    reused: list[dict[str, Any]] = []
    if args.reuse:
        with open(args.reuse) as f:
            old = json.load(f)
        same = (old["limit_ms"], old["minutes"], old["train_subset"], old["val_size"], old["epochs"]) == (limit, args.minutes, args.train_subset, args.val_size, args.epochs)
        if not same:
            raise SystemExit(f"--reuse {args.reuse}: its settings differ (limit {old['limit_ms']}, minutes {old['minutes']}...); pass the same ones")
        have = {(r.get("sampler", "tpe"), r["pruner"], r["seed"]) for r in old["raw"]}
        reused = [r for r in old["raw"] if (r.get("sampler", "tpe"), r["pruner"], r["seed"]) in {(j["sampler"], j["pruner"], j["seed"]) for j in jobs}]
        jobs = [j for j in jobs if (j["sampler"], j["pruner"], j["seed"]) not in have]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as ex:
            results = list(ex.map(run_study, jobs))
    else:
        results = [run_study(j) for j in jobs]
    results += reused
    out: dict[str, Any] = {"limit_ms": limit, "minutes": args.minutes, "train_subset": args.train_subset,
                           "val_size": args.val_size, "epochs": args.epochs, "goal": "median ratio <= 0.5", "pruners": {},
                           "load_average": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None,
                           "prior_results": args.prior_results, "prior_curves": len(prior), "reused_from": args.reuse, "reused": [(r.get("sampler", "tpe"), r["pruner"], r["seed"]) for r in reused]}
    summarize(results, args.sampler, args.pruner, args.seeds, out)
    out["raw"] = results
    report(out)
    text = json.dumps({k: v for k, v in out.items() if k != "raw"}, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
