"""Proposal time of hwtune's sampler at N observations, against Optuna's GPSampler.

Builds a study of N trained NB201 networks (cifar10, pixel3, 10 % latency quantile) with random
search through the real study loop, then times single proposals of each sampler on that study.

    .venv/bin/python benchmarks/search_proposal_time.py --n 100 --repeats 20
    .venv/bin/python benchmarks/search_proposal_time.py --space default --n 100 --repeats 20

``--space default``: the space of ``hwtune run``'s default study (12 mixed int / log-float /
categorical params, 4 of them conditional), filled with a synthetic objective and latency (a smooth
function of the params, labelled ``synthetic`` in the trials): a proposal's time depends on the number
and kind of observations, not on their values, and training 100 real networks would time the trainer.

Single-threaded (OMP_NUM_THREADS=1, torch.set_num_threads(1)), as the bench runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="trained networks in the study")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="pixel3")
    ap.add_argument("--quantile", type=float, default=0.10)
    ap.add_argument("--fill", choices=("hwtune", "random"), default="hwtune", help="sampler that fills the study")
    ap.add_argument("--space", choices=("nb201", "default"), default="nb201")
    args = ap.parse_args()
    if args.space == "default":
        return default_space(args)

    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from hwtune.bench import NB201Problem, SimulatedNB201, nb201_cell_features
    from hwtune.search._hwsampler import HwSampler
    from hwtune.study import Study

    P = NB201Problem("cifar10", args.device, quantile=args.quantile)
    sim = SimulatedNB201(P)
    cons = [f"latency_ms <= {P.limit!r}"]
    filler = HwSampler(P.space, "minimize: error", cons, seed=0, features=nb201_cell_features) if args.fill == "hwtune" else "random"
    st = Study("timing", P.space, objectives="minimize: error", constraints=cons, storage=None, sampler=filler, seed=0)
    st.optimize(sim.build_model, sim.train_and_evaluate, measure=sim.measure, n_trained=args.n)
    study = st.optuna_study
    n_trials = len(study.trials)

    def time_hwtune(**kw: object) -> list[float]:
        s = HwSampler(P.space, "minimize: error", cons, seed=0, **kw)
        s.propose(study, 1)  # first call enumerates the space and encodes it once
        out = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            s.propose(study, 1)
            out.append(time.perf_counter() - t0)
        return out

    def time_optuna_gp(constrained: bool = True) -> list[float]:
        # Optuna's GPSampler on the same trials (it sees the completed ones), in a copy of the study;
        # unconstrained: the same trials without their constraint values (one GP instead of two)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = optuna.samplers.GPSampler(seed=0)
            s2 = optuna.create_study(sampler=gp)
            for t in study.trials:
                if t.state == optuna.trial.TrialState.COMPLETE:
                    if not constrained:
                        t = optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.value)
                    s2.add_trial(t)
            out = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                tr = s2.ask()
                for e in P.space:
                    tr.suggest_categorical(e, P.space[e].choices)
                out.append(time.perf_counter() - t0)
                s2.tell(tr, state=optuna.trial.TrialState.FAIL)
            return out

    from hwtune.tabular import nb201_error_prior

    rows = [
        ("hwtune (features + prior)", time_hwtune(features=nb201_cell_features, error_prior=nb201_error_prior(exclude="cifar10"))),
        ("hwtune (cell features)", time_hwtune(features=nb201_cell_features)),
        ("hwtune (params only)", time_hwtune()),
        ("optuna GPSampler", time_optuna_gp()),
        ("optuna GPSampler, no constr.", time_optuna_gp(False)),
    ]
    print(f"study filled by {args.fill}: {args.n} trained, {n_trials} trials ({P.describe()})")
    for name, ts in rows:
        ms = [1000 * t for t in ts]
        print(f"{name:30s} median {statistics.median(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms   max {max(ms):7.1f} ms")


def default_space(args: argparse.Namespace) -> None:
    import math
    from importlib import resources

    import optuna
    import yaml

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from hwtune.hardware import HardwareReport, Measurement
    from hwtune.search._hwsampler import HwSampler
    from hwtune.study import Study

    cfg = yaml.safe_load(resources.files("hwtune.study").joinpath("default_study.yaml").read_text())
    space = cfg["space"]
    for k in ("conv_layers", "filters_0", "kernel_0", "filters_1", "kernel_1", "filters_2", "kernel_2", "dense_units"):
        space[k]["role"] = "architecture"  # as the cnn family marks them

    def width(m: dict) -> float:
        return sum((m.get(f"filters_{i}") or 0) * (m.get(f"kernel_{i}") or 0) / 3 for i in range(3))

    def measure(m: dict, p: dict) -> HardwareReport:
        lat = 0.2 + width(m) / 40 + m["dense_units"] / 400
        return HardwareReport({"latency_ms": Measurement("latency_ms", lat, "ms", "synthetic", lat, lat, 1)})

    def train(m: dict, p: dict, ctx: object) -> dict:
        err = 0.3 / (1 + width(m) / 20) + abs(math.log(p["lr"]) + 3) / 20 + (1 - p["momentum"]) / 20
        return {"error": err}

    from hwtune.train import FamilyCostFeatures

    st = Study("timing", space, constraints=["latency_ms <= 1.5"], skip_threshold=0.0, seed=0)
    st.optimize(lambda p: p, train, measure=measure, n_trained=args.n)
    study = st.optuna_study
    # reads the space and constraints stored with the study; the cost model on the cnn family's
    # features, as `hwtune run` has it
    s = HwSampler(seed=0, features=FamilyCostFeatures("cnn", (1, 8, 8), 10))
    s.propose(study, 1)
    ts = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        s.propose(study, 1)
        ts.append(1000 * (time.perf_counter() - t0))
    print(f"default study space: {args.n} trained, {len(study.trials)} trials")
    print(f"{'hwtune (mixed, conditional)':30s} median {statistics.median(ts):7.1f} ms   mean {statistics.fmean(ts):7.1f} ms   max {max(ts):7.1f} ms")


if __name__ == "__main__":
    main()
