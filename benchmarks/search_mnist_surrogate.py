"""Development benchmark (issue 19): the real-MNIST search space on a *surrogate*, for many seeds in minutes.

The real benchmark (``search_mnist_real.py``) takes 25 minutes for 3 seeds, too noisy and too slow to
choose a sampler setting with. This one answers the same space from models fitted on the real runs'
trials, so every number it prints is an **estimate**, never a measurement:

- error: extra trees (300, min 2 per leaf) on log validation error, fitted on every network the real
  runs trained (``search_mnist_real.json`` and ``search_mnist_real_v2.json``: 190 trainings, both
  samplers, 2 epochs on 10,000 images), plus N(0, 0.05) in log error per training;
- latency: extra trees on log(latency / the seed's calibrated limit) of every architecture the real
  runs measured (326 measurements), so the limit is 1.0; plus N(0, 0.03) in log latency per
  measurement.

Each method runs the real study loop (``hwtune.Study``, in memory, the ``cnn`` family's cost features,
the study file's defaults) with these as its ``measure`` and training; the budget counts trained
networks. Per method: the median and worst over seeds of the best error after 10 / 15 / N trained,
and per seed wins / losses against TPE. The tree surrogate is piecewise constant and knows only
where the real runs looked: use it to compare settings, then confirm on the real benchmark.

    .venv/bin/python benchmarks/search_mnist_surrogate.py --seeds 12 --trained 20
    .venv/bin/python benchmarks/search_mnist_surrogate.py --methods tpe hwtune hwtune:trust_region_every=0
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from search_mnist_real import SPACE  # noqa: E402

RUNS = ("benchmarks/results/search_mnist_real.json", "benchmarks/results/search_mnist_real_v2.json")


def _arch_features(p: dict[str, Any]) -> list[float]:
    c = int(p["conv_layers"])
    out = [float(c)]
    for i in range(3):
        on = c > i
        out += [math.log(p[f"filters_{i}"]) if on else 0.0, float(p[f"kernel_{i}"]) if on else 0.0]
    return out + [math.log(p["dense_units"])]


def _features(p: dict[str, Any]) -> list[float]:
    sgd = p["optimizer"] == "sgd"
    return _arch_features(p) + [0.0 if sgd else 1.0, math.log(p["lr"]), float(p.get("momentum", 0.0)) if sgd else 0.0,
                                float(p["dropout"]), math.log(p["batch_size"])]


class Surrogate:
    """Error and latency models fitted on the real runs' trials (see the module docstring)."""

    def __init__(self, runs: tuple[str, ...] = RUNS) -> None:
        from sklearn.ensemble import ExtraTreesRegressor

        errors, latencies = [], []
        for fn in runs:
            doc = json.loads(Path(fn).read_text())
            for seed in doc["seeds"].values():
                limit = seed["calibration"]["limit_ms"]
                for r in seed["methods"].values():
                    for t in r["trials"]:
                        if t.get("latency_ms") is not None and t["params"]:
                            latencies.append((t["params"], t["latency_ms"] / limit))
                        if t["status"] == "trained" and t["error"] is not None:
                            errors.append((t["params"], t["error"]))
        self.n_errors, self.n_latencies = len(errors), len(latencies)
        self.error_model = ExtraTreesRegressor(300, min_samples_leaf=2, random_state=0).fit(
            np.array([_features(p) for p, _ in errors]), np.log([e for _, e in errors]))
        self.latency_model = ExtraTreesRegressor(300, min_samples_leaf=2, random_state=0).fit(
            np.array([_arch_features(p) for p, _ in latencies]), np.log([v for _, v in latencies]))

    def error(self, p: dict[str, Any], rng: np.random.Generator) -> float:
        v = float(self.error_model.predict(np.array([_features(p)]))[0]) + 0.05 * float(rng.standard_normal())
        return min(0.95, math.exp(v))

    def latency(self, p: dict[str, Any], rng: np.random.Generator) -> float:
        v = float(self.latency_model.predict(np.array([_arch_features(p)]))[0]) + 0.03 * float(rng.standard_normal())
        return math.exp(v)


def _sampler(method: str, seed: int) -> Any:
    """``tpe``, ``random``, ``hwtune`` or ``hwtune:option=value,...`` (HwSampler keyword options)."""
    from hwtune.search import HwSampler, make_sampler

    name, _, opts = method.partition(":")
    if name != "hwtune":
        return make_sampler(name, seed)
    kw = {}
    for item in filter(None, opts.split(",")):
        k, _, v = item.partition("=")
        kw[k] = float(v) if "." in v else int(v)
    return HwSampler(seed=seed, **kw)


@functools.lru_cache(maxsize=1)
def _space() -> Any:
    """The real benchmark's space as its study file gives it (the ``cnn`` family marks which params
    are the architecture, the measured part)."""
    from hwtune.study import parse_study_file, study_from_file

    spec = {"name": "surrogate-space", "data": {"name": "mnist", "path": "../shared/data/mnist"}, "model": {"family": "cnn"},
            "space": {**SPACE, "epochs": 2}, "objective": {"minimize": "error"}, "constraints": ["latency_ms <= 1.0"],
            "device": "cpu:1", "inference_batch_size": 1, "runtime": "onnxruntime", "storage": "sqlite:///:memory:"}
    return study_from_file(parse_study_file(spec))[0].space


def run(surrogate: Surrogate, method: str, seed: int, trained: int) -> list[float]:
    """One study; the best estimated error after each trained network."""
    import optuna

    from hwtune.hardware import HardwareReport, Measurement
    from hwtune.study import Study
    from hwtune.train._families import FamilyCostFeatures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(1000 + seed)
    errors: list[float] = []

    def measure(model: dict[str, Any], params: dict[str, Any]) -> HardwareReport:
        v = surrogate.latency(model, rng)
        return HardwareReport({"latency_ms": Measurement("latency_ms", v, "ms", "estimated:surrogate of the real MNIST runs")})

    def train(model: dict[str, Any], params: dict[str, Any], ctx: Any) -> dict[str, float]:
        errors.append(surrogate.error(model, rng))
        return {"error": errors[-1]}

    study = Study(f"surrogate-{method}-{seed}", _space(), objectives="minimize: error",
                  constraints=["latency_ms <= 1.0"], storage=None, sampler=_sampler(method, seed), seed=seed,
                  cost_features=FamilyCostFeatures("cnn", (1, 28, 28), 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(lambda p: dict(p), train, measure=measure, n_trained=trained, n_trials=20 * trained)
    return np.minimum.accumulate(errors).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["tpe", "hwtune"])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--trained", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results/search_mnist_surrogate.json")
    a = ap.parse_args()
    surrogate = Surrogate()
    print(f"# surrogate fitted on {surrogate.n_errors} real trainings and {surrogate.n_latencies} real measurements; every number below is estimated")
    curves: dict[str, list[list[float]]] = {}
    for m in a.methods:
        t0 = time.time()
        curves[m] = [run(surrogate, m, s, a.trained) for s in range(a.seeds)]
        R = np.array(curves[m])
        at = [k for k in (10, 15, a.trained) if k <= a.trained]
        print(f"{m}: median best error at {at} trained {[round(float(np.median(R[:, k - 1])), 4) for k in at]}, "
              f"worst {[round(float(R[:, k - 1].max()), 4) for k in at]} ({time.time() - t0:.0f} s)", flush=True)
    if "tpe" in curves:
        base = np.array(curves["tpe"])[:, -1]
        for m in a.methods:
            if m != "tpe":
                v = np.array(curves[m])[:, -1]
                print(f"{m} against tpe at {a.trained} trained, per seed: {int((v < base).sum())} wins, {int((v > base).sum())} losses")
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "estimated": True, "seeds": a.seeds, "trained": a.trained,
                                       "n_real_trainings": surrogate.n_errors, "n_real_measurements": surrogate.n_latencies, "curves": curves}))


if __name__ == "__main__":
    main()
