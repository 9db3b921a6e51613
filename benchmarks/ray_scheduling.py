"""Issue 16: the Ray executor's scheduling efficiency, its regret per trained network against the
sequential loop, and the sampler's proposal latency at q = 8 with 500 observations.

Simulated work on a local Ray cluster of this machine (sleeps need no CPU, so the 4 logical trainers
of a 2-core machine are honest): the NB201 table through the real study loop and the Ray executor.

- measure = sleep of ``--measure-repeats`` x the architecture's published latency on ``pixel3`` (a
  measurement times that many inferences), on a Ray device resource (1 or 2 of them);
- train = sleep proportional to a simulated training time: ``--train-s`` x the architecture's
  published batch-256 latency on ``titanxp_256`` over that column's median (a training epoch costs
  about what a large-batch forward/backward costs), on a trainer (``num_cpus=1`` of ``--workers``);
- busy time = the sum of the training tasks' own start-to-end times (recorded inside the tasks),
  utilisation = busy / (workers x wall), wall = from the first task's start to the last task's end
  (Ray's worker start-up before it is reported apart);
- regret per trained network: best published cifar10 accuracy among the first k trained networks
  against the best feasible one of the table (latency_ms <= the 30 % quantile on pixel3), the Ray study
  and the sequential loop (``Study.optimize`` without executor, the same simulated callables without
  sleeping) at the same seeds;
- proposal latency: ``HwSampler.propose(study, 8)`` on a study of 500 observations (trials measured
  or trained, filled with random search), against the mean simulated trial time.

    .venv/bin/python benchmarks/ray_scheduling.py                       # all three, results in benchmarks/results/ray_scheduling.json
    .venv/bin/python benchmarks/ray_scheduling.py --devices 2 --trained 40 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np

TASK, DEVICE, TRAIN_COLUMN, QUANTILE = "cifar10", "pixel3", "titanxp_256", 0.30


@dataclass
class SimMeasure:
    """The device's meter: sleeps repeats x the table's latency, records its own window."""

    lat: Any
    repeats: float
    sleep: bool = True

    def __call__(self, model: int, params: dict[str, Any]) -> Any:
        from hwtune.hardware import HardwareReport, Measurement

        t0 = time.time()
        v = float(self.lat[model])
        if self.sleep:
            time.sleep(self.repeats * v / 1000.0)
        extra = {"start": t0, "end": time.time()}
        return HardwareReport({"latency_ms": Measurement("latency_ms", v, "ms", f"measured:{DEVICE} (HELP table, simulated)", extra=extra)})


@dataclass
class SimTrain:
    """The trainer: sleeps the simulated training time, returns the table's accuracy."""

    err: Any
    train_s: Any
    sleep: bool = True

    def __call__(self, model: int, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        t0 = time.time()
        if self.sleep:
            time.sleep(float(self.train_s[model]))
        if ctx.set_user_attr is not None:
            ctx.set_user_attr("sim_train", {"start": t0, "end": time.time(), "pid": os.getpid()})
        return {"error": float(self.err[model])}


def _problem() -> Any:
    from hwtune.bench import NB201Problem

    return NB201Problem(TASK, DEVICE, quantile=QUANTILE)


def _study(name: str, P: Any, seed: int, storage: str | None) -> Any:
    from hwtune.bench import nb201_cell_features
    from hwtune.study import Study

    return Study(name, P.space, objectives="minimize: error", constraints=[f"latency_ms <= {P.limit!r}"], storage=storage,
                 seed=seed, cost_features=nb201_cell_features)


def _regret_curve(study: Any, P: Any) -> list[float]:
    """Regret (accuracy points) after each trained network, in the order they finished."""
    from hwtune.vocabulary import trial_status

    best, out = -1.0, []
    trained = [t for t in study.optuna_study.get_trials(deepcopy=False) if trial_status(t) == "trained"]
    for t in sorted(trained, key=lambda t: t.datetime_complete):
        acc = 100.0 * (1.0 - t.values[0])
        best = max(best, acc)
        out.append(P.best_feasible_accuracy - best)
    return out


def run_ray(P: Any, seed: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import ray

    from hwtune.bench import SimulatedNB201
    from hwtune.study._ray_executor import RayExecutor
    from hwtune.vocabulary import trial_status

    sim = SimulatedNB201(P)
    train_s = args.train_s * P.table.latency[TRAIN_COLUMN] / float(np.median(P.table.latency[TRAIN_COLUMN]))
    meter, trainer = SimMeasure(P.lat, args.measure_repeats), SimTrain(P.err, train_s)
    ray.init(num_cpus=args.workers, resources={"device": args.devices}, object_store_memory=100 * 1024 * 1024,
             include_dashboard=False, log_to_driver=False)
    try:
        # start the workers (each imports hwtune once) before the clock starts
        t_warm = time.time()
        ray.get([ray.remote(lambda: __import__("hwtune.study")).options(num_cpus=1).remote() for _ in range(args.workers)])
        warm_s = time.time() - t_warm
        study = _study(f"ray-{seed}", P, seed, f"sqlite:///{tmp / f'ray-{args.devices}-{seed}.db'}")
        study.executor = RayExecutor(device_resource="device", train_num_cpus=1, max_in_flight=args.max_in_flight)
        t0 = time.time()
        study.optimize(sim.build_model, trainer, measure=meter, n_trained=args.trained)
        total_s = time.time() - t0
        last = study.executor.last_run
    finally:
        ray.shutdown()
    trials = study.optuna_study.get_trials(deepcopy=False)
    trains = [t.user_attrs["sim_train"] for t in trials if "sim_train" in t.user_attrs]
    meas = [t.user_attrs["hwtune:hardware"]["latency_ms"]["extra"] for t in trials
            if "latency_ms" in (t.user_attrs.get("hwtune:hardware") or {}) and "start" in t.user_attrs["hwtune:hardware"]["latency_ms"]["extra"]]
    spans = [(x["start"], x["end"]) for x in trains + meas]
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    busy = sum(x["end"] - x["start"] for x in trains)
    dev_busy = sum(x["end"] - x["start"] for x in {(m["start"], m["end"]): m for m in meas}.values())
    statuses = [trial_status(t) for t in trials]
    # steady state: from the moment every trainer first ran a task to the start of the last training
    # (leaves out the ramp-up of the first round and the tail after the budget was reached)
    edges = sorted([(x["start"], 1) for x in trains] + [(x["end"], -1) for x in trains])
    lo = next((t for (t, _), c in zip(edges, np.cumsum([d for _, d in edges])) if c >= args.workers), None)
    hi = max(x["start"] for x in trains)
    steady = None
    if lo is not None and hi > lo:
        steady = sum(max(0.0, min(x["end"], hi) - max(x["start"], lo)) for x in trains) / (args.workers * (hi - lo))
    return {"devices": args.devices,
        "seed": seed, "trials": len(trials), "trained": statuses.count("trained"), "measurements": len({(m["start"], m["end"]) for m in meas}),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "wall_s": wall, "optimize_s": total_s, "worker_warmup_s": warm_s,
        "train_busy_s": busy, "utilisation": busy / (args.workers * wall), "steady_utilisation": steady, "steady_s": (hi - lo) if lo else None, "device_utilisation": dev_busy / (args.devices * wall),
        "mean_train_s": statistics.fmean(x["end"] - x["start"] for x in trains),
        "slots": last["slots"], "batch_sizes": last["batch_sizes"], "regret": _regret_curve(study, P),
    }


def run_sequential(P: Any, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from hwtune.bench import SimulatedNB201

    sim = SimulatedNB201(P)
    study = _study(f"seq-{seed}", P, seed, None)
    study.optimize(sim.build_model, SimTrain(P.err, P.err, sleep=False), measure=SimMeasure(P.lat, 0, sleep=False), n_trained=args.trained)
    return {"seed": seed, "trials": len(study.optuna_study.trials), "regret": _regret_curve(study, P)}


def proposal_latency(P: Any, args: argparse.Namespace) -> dict[str, Any]:
    from hwtune.bench import SimulatedNB201, nb201_cell_features
    from hwtune.search._hwsampler import HwSampler
    from hwtune.study import Study

    sim = SimulatedNB201(P)
    cons = [f"latency_ms <= {P.limit!r}"]
    st = Study("fill", P.space, objectives="minimize: error", constraints=cons, storage=None, sampler="random", seed=0, cost_model=None)
    t0 = time.time()
    st.optimize(sim.build_model, sim.train_and_evaluate, measure=sim.measure, n_trials=args.observations)
    fill_s = time.time() - t0
    study = st.optuna_study
    counts = st.counts()
    out: dict[str, Any] = {"observations": len(study.trials), "trained": counts.get("trained", 0), "fill_s": fill_s}
    for q in (1, 8):
        s = HwSampler(P.space, "minimize: error", cons, seed=0, features=nb201_cell_features)
        s.propose(study, 1)  # the first call enumerates and encodes the space once
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            props = s.propose(study, q)
            ts.append(time.perf_counter() - t)
            assert len({json.dumps(p, sort_keys=True) for p in props}) == q
        out[f"q{q}_median_s"] = statistics.median(ts)
        out[f"q{q}_max_s"] = max(ts)
    return out


def storage_load(url: str, n: int) -> dict[str, Any]:
    """What one trial costs the database: SQL statements and seconds per trial of the sequential loop
    (random sampler: no proposal time) on the NB201 simulation, against ``url``."""
    import sqlalchemy

    from hwtune.bench import SimulatedNB201
    from hwtune.study import Study

    P = _problem()
    sim = SimulatedNB201(P)
    name = f"storage-load-{int(time.time())}"
    st = Study(name, P.space, objectives="minimize: error", constraints=[f"latency_ms <= {P.limit!r}"], storage=url,
               sampler="random", seed=0, cost_model=None, keep_models="none")
    engine = sqlalchemy.engine.Engine  # every engine (the study opens its storage again in optimize)
    counts = {"select": 0, "write": 0}

    def count(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        counts["select" if statement.lstrip().upper().startswith("SELECT") else "write"] += 1

    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    t0 = time.time()
    st.optimize(sim.build_model, sim.train_and_evaluate, measure=sim.measure, n_trials=n)
    elapsed = time.time() - t0
    sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    trials = len(st.optuna_study.get_trials(deepcopy=False))
    return {"url": url.split("@")[-1], "trials": trials, "s_per_trial": elapsed / trials,
            "selects_per_trial": counts["select"] / trials, "writes_per_trial": counts["write"] / trials}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=4, help="logical trainers (Ray CPUs)")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="device resource units (measurements at once); one study per value and seed")
    ap.add_argument("--trained", type=int, default=40, help="trained networks per study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-s", type=float, default=5.0, help="simulated training time of the median architecture (s)")
    ap.add_argument("--measure-repeats", type=float, default=20, help="inferences a measurement times (sleep = repeats x latency)")
    ap.add_argument("--max-in-flight", type=int, default=None, help="trials under way (default: the executor's, trainers + 4 per device)")
    ap.add_argument("--observations", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", nargs="*", default=[], choices=["ray", "sequential", "proposal"])
    ap.add_argument("--storage-load", nargs="*", default=[], metavar="URL", help="also measure SQL statements and seconds per trial against these storages (alone: nothing else)")
    ap.add_argument("--storage-trials", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/results/ray_scheduling.json")
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import tempfile

    if args.storage_load:
        for url in args.storage_load:
            print(json.dumps(storage_load(url, args.storage_trials)))
        return
    P = _problem()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "args": vars(args), "problem": P.describe(),
                              "best_feasible_accuracy": P.best_feasible_accuracy, "cpus": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="hwtune-ray-bench-"))
    if "ray" not in args.skip:
        result["ray"] = [run_ray(P, s, argparse.Namespace(**{**vars(args), "devices": d}), tmp) for d in args.devices for s in args.seeds]
        for r in result["ray"]:
            print(f"ray, {r['devices']} device(s), seed {r['seed']}: {r['trained']} trained / {r['trials']} trials, wall {r['wall_s']:.1f} s, "
                  f"utilisation {r['utilisation']:.1%}, steady state {r['steady_utilisation']:.1%} (device {r['device_utilisation']:.1%}), regret at end {r['regret'][-1]:.2f}, "
                  f"statuses {r['statuses']}, batches {r['batch_sizes'][:6]}...")
    if "sequential" not in args.skip:
        result["sequential"] = [run_sequential(P, s, args) for s in args.seeds]
        for r in result["sequential"]:
            print(f"sequential seed {r['seed']}: {r['trials']} trials, regret at end {r['regret'][-1]:.2f}")
    if "ray" in result and "sequential" in result:
        k = min(min(len(r["regret"]) for r in result["ray"]), min(len(r["regret"]) for r in result["sequential"]))
        for name in ("ray", "sequential"):
            curves = np.array([r["regret"][:k] for r in result[name]])  # ray: every device count and seed
            result[f"{name}_mean_regret"] = {str(n): float(curves[:, n - 1].mean()) for n in (5, 10, 20, k) if n <= k}
            result[f"{name}_mean_regret_area"] = float(curves.mean())
            print(f"{name}: mean regret after 5/10/20/{k} trained: {result[f'{name}_mean_regret']}; mean over the curve {result[f'{name}_mean_regret_area']:.3f}")
    if "proposal" not in args.skip:
        result["proposal"] = proposal_latency(P, args)
        p = result["proposal"]
        mean_train = statistics.fmean(r["mean_train_s"] for r in result["ray"]) if "ray" in result else args.train_s
        p["ratio_q8_to_mean_train"] = p["q8_median_s"] / mean_train
        print(f"proposal at {p['observations']} observations ({p['trained']} trained): q=1 median {p['q1_median_s']*1000:.0f} ms, "
              f"q=8 median {p['q8_median_s']*1000:.0f} ms (max {p['q8_max_s']*1000:.0f}); ratio q=8 / mean simulated training {p['ratio_q8_to_mean_train']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print("written", args.out)


if __name__ == "__main__":
    main()
