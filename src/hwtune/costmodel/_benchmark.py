"""The cost-model benchmark on the NB201 hardware table (27 real devices).

For each device column: fit on k random architectures (several repetitions), predict all the others,
and score rank correlation, percentage error, 90 % interval coverage, feasibility errors at the
10/25/50 % latency quantiles, and how screening at a probability threshold would have behaved.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hwtune.costmodel._base import CostModel
from hwtune.costmodel._evaluate import feasibility_errors, prediction_metrics
from hwtune.costmodel._factory import make_cost_model
from hwtune.costmodel._features import Featurizer
from hwtune.costmodel._nb201 import NB201_DERIVED_KEYS, nb201_derived, nb201_derived_full, nb201_params, nb201_space
from hwtune.costmodel._online import DEFAULT_SKIP_THRESHOLD
from hwtune.costmodel._transfer import TransferCostModel
from hwtune.tabular import NB201Table, load_nb201

__all__ = ["BenchConfig", "BENCH_CONFIGS", "run_nb201_benchmark", "format_markdown", "GOALS"]

QUANTILES = (0.10, 0.25, 0.50)
SKIP_THRESHOLDS = (0.001, 0.01, 0.05)
_T = f"{DEFAULT_SKIP_THRESHOLD:g}"


@dataclass(frozen=True)
class BenchConfig:
    """One model setting of the benchmark.

    Attributes:
        name: label in the tables.
        model: cost-model name for :func:`make_cost_model`.
        features: ``onehot`` (the six edges one-hot), ``derived`` (:func:`nb201_derived` only),
            ``onehot+derived``.
        source: for transfer: ``raw`` (other devices' measured latencies) or ``fitted`` (other
            devices' additive cost models fitted on their whole column, as a ``ModelSource`` gives).
        description: one line for the report.
    """

    name: str
    model: str
    features: str
    source: str | None = None
    description: str = ""


BENCH_CONFIGS: dict[str, BenchConfig] = {c.name: c for c in (
    BenchConfig("linear-onehot", "linear", "onehot", None, "HyperPower-style baseline: Bayesian ridge on one-hot edges, log latency"),
    BenchConfig("linear", "linear", "derived", None, "same, on derived features (FLOPs, params, layer counts by type), log latency"),
    BenchConfig("additive", "additive", "derived", None, "Bayesian ridge on derived features, latency itself (costs add over layers)"),
    BenchConfig("gp", "gp", "derived", None, "Gaussian process (linear + RBF + noise kernel) on derived features, latency itself"),
    BenchConfig("additive-gp", "additive-gp", "derived", None, "NumPy GP (linear + Matern-5/2 ARD kernel) on derived features scaled over the space, latency itself"),
    BenchConfig("transfer-raw", "transfer", "derived", "raw", "Bayesian ridge on the other 26 devices' measured latencies"),
    BenchConfig("transfer", "transfer", "derived", "fitted", "Bayesian ridge on the other 26 devices' fitted latencies (ModelSource)"),
)}

GOALS: list[dict[str, Any]] = [
    {"goal": "single device, k=20: median Spearman >= 0.90", "config": "additive", "k": 20, "stat": "spearman_median", "op": ">=", "value": 0.90},
    {"goal": "single device, k=50: median Spearman >= 0.97", "config": "additive", "k": 50, "stat": "spearman_median", "op": ">=", "value": 0.97},
    {"goal": "single device, k=50: median APE <= 8 %", "config": "additive", "k": 50, "stat": "mdape_median", "op": "<=", "value": 0.08},
    {"goal": "transfer, k=10: median Spearman >= 0.97", "config": "transfer", "k": 10, "stat": "spearman_median", "op": ">=", "value": 0.97},
    {"goal": "transfer, k=10: worst device Spearman >= 0.90", "config": "transfer", "k": 10, "stat": "spearman_min", "op": ">=", "value": 0.90},
    {"goal": "transfer, k=20: feasibility wrong <= 3 % (each quantile, mean over devices)", "config": "transfer", "k": 20, "stat": "feas_wrong_max_q", "op": "<=", "value": 0.03},
]
"""The goals of issue 4, and the row of the results each is checked on (coverage is reported for all)."""


def _machine() -> dict[str, Any]:
    import os

    import scipy
    import sklearn

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _features(table: NB201Table) -> dict[str, np.ndarray]:
    """Feature matrices of all rows: onehot (n, 30), derived (n, 6), full (n, 30 + 13)."""
    P = nb201_params(table)
    fz_full = Featurizer(nb201_space(), nb201_derived_full)
    full = fz_full.transform(P)  # one-hot columns, then the derived ones
    onehot = full[:, : fz_full.n_param_features]
    # nb201_derived is a subset of nb201_derived_full: slice instead of computing it again
    derived_cols = [fz_full.feature_names.index(f"derived:{k}") for k in sorted(NB201_DERIVED_KEYS)]
    derived = full[:, derived_cols]
    return {"onehot": onehot, "derived": derived, "onehot+derived": np.hstack([onehot, derived]), "full": full}


def _fitted_sources(full: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Median predictions (n, D) of an additive model per device fitted on its whole column."""
    space = nb201_space()
    out = np.empty_like(Y)
    for j in range(Y.shape[1]):
        m = make_cost_model("additive", Featurizer(space, nb201_derived_full))
        m.fit_features(full, Y[:, j])
        out[:, j] = m.predictive_features(full).median()
    return out


def run_nb201_benchmark(
    ks: Sequence[int] = (10, 20, 50),
    repetitions: int = 5,
    configs: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    seed: int = 0,
    table: NB201Table | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark.

    Training rows are drawn once per (device, k, repetition) and shared by all configs (paired
    comparison). Transfer configs never see the target device's column except its k training values.

    Args:
        ks: training-set sizes.
        repetitions: draws per (device, k).
        configs: names of :data:`BENCH_CONFIGS` (default all).
        devices: device columns (default all 27).
        seed: base seed.
        table: the NB201 table (default: the one shipped with hwtune).
        progress: called with a line of text after each config.

    Returns:
        ``{"machine", "settings", "runs": [per config/device/k/rep metrics], "summary": {...},
        "goals": [...], "seconds"}``.
    """
    from threadpoolctl import threadpool_limits

    # the fits are tiny: multi-threaded BLAS only adds synchronization (10x slower on a busy machine)
    with threadpool_limits(limits=1):
        return _run(ks, repetitions, configs, devices, seed, table, progress)


def _run(
    ks: Sequence[int],
    repetitions: int,
    configs: Sequence[str] | None,
    devices: Sequence[str] | None,
    seed: int,
    table: NB201Table | None,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    t_start = time.perf_counter()
    table = table or load_nb201()
    names = list(configs or BENCH_CONFIGS)
    for n in names:
        if n not in BENCH_CONFIGS:
            raise ValueError(f"unknown benchmark config {n!r}; known: {list(BENCH_CONFIGS)}")
    all_devices = table.devices
    devs = list(devices or all_devices)
    for d in devs:
        if d not in all_devices:
            raise ValueError(f"unknown device {d!r}; the table has {all_devices}")
    Y = np.column_stack([table.latency[d] for d in all_devices])  # (n, 27)
    feats = _features(table)
    need_fitted = any(BENCH_CONFIGS[n].source == "fitted" for n in names)
    fitted = _fitted_sources(feats["full"], Y) if need_fitted else None
    space = nb201_space()
    n_rows = len(Y)
    runs: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for name in names:
        cfg = BENCH_CONFIGS[name]
        t0 = time.perf_counter()
        for d in devs:
            j = all_devices.index(d)
            y = Y[:, j]
            bounds = [float(np.quantile(y, q)) for q in QUANTILES]
            F = feats[cfg.features]
            S = None
            if cfg.model == "transfer":
                S = np.delete(Y if cfg.source == "raw" else fitted, j, axis=1)  # type: ignore[arg-type]
            for k in ks:
                for rep in range(repetitions):
                    rng = np.random.default_rng([seed, j, k, rep])
                    train = rng.choice(n_rows, size=k, replace=False)
                    test = np.setdiff1d(np.arange(n_rows), train)
                    model = _make(cfg, space)
                    if isinstance(model, TransferCostModel):
                        assert S is not None
                        model.fit_features(model.combine(F[train], S[train]), y[train])
                        pd = model.predictive_features(model.combine(F[test], S[test]))
                    else:
                        model.fit_features(F[train], y[train])
                        pd = model.predictive_features(F[test])
                    met = prediction_metrics(y[test], pd, 0.9)
                    feas = feasibility_errors(y[test], pd, bounds)
                    row: dict[str, Any] = {
                        "config": name, "device": d, "k": k, "rep": rep,
                        "spearman": met["spearman"], "mdape": met["mdape"], "coverage90": met["coverage"],
                        "feas_wrong": [f["wrong"] for f in feas],
                    }
                    row.update(_skip_stats(y[test], pd, bounds))
                    runs.append(row)
        timings[name] = time.perf_counter() - t0
        if progress:
            progress(f"{name}: {timings[name]:.1f} s")
    summary = summarize(runs, names, ks)
    return {
        "machine": _machine(),
        "settings": {"ks": list(ks), "repetitions": repetitions, "seed": seed, "devices": devs,
                     "quantiles": list(QUANTILES), "skip_thresholds": list(SKIP_THRESHOLDS),
                     "configs": {n: BENCH_CONFIGS[n].__dict__ for n in names}},
        "runs": runs,
        "summary": summary,
        "goals": check_goals(summary),
        "seconds": {"total": time.perf_counter() - t_start, **timings},
    }


def _make(cfg: BenchConfig, space: Any) -> CostModel:
    fz = Featurizer(space, nb201_derived, include_params=False) if cfg.features == "derived" else Featurizer(space)
    if cfg.model == "transfer":
        return TransferCostModel(fz, source=lambda p: np.zeros((len(p), 0)))
    return make_cost_model(cfg.model, fz)


def _skip_stats(y: np.ndarray, pd: Any, bounds: Sequence[float]) -> dict[str, Any]:
    """For each threshold t: over the latency bounds, mean share of truly feasible candidates that
    P(feasible) < t would skip (``false_skip``), and of infeasible ones it would skip (``saved``)."""
    out: dict[str, Any] = {}
    for t in SKIP_THRESHOLDS:
        q = pd.quantile(t)  # P(<= b) < t exactly when b < the t-quantile
        fs, sv = [], []
        for b in bounds:
            feasible = y <= b
            skip = q > b
            fs.append(float(np.mean(skip[feasible])) if feasible.any() else 0.0)
            sv.append(float(np.mean(skip[~feasible])) if (~feasible).any() else 0.0)
        out[f"false_skip@{t:g}"] = float(np.mean(fs))
        out[f"saved@{t:g}"] = float(np.mean(sv))
    return out


def summarize(runs: list[dict[str, Any]], names: Sequence[str], ks: Sequence[int]) -> dict[str, Any]:
    """Per config and k: statistics over devices of the per-device means over repetitions."""
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {}
        for k in ks:
            rows = [r for r in runs if r["config"] == name and r["k"] == k]
            if not rows:
                continue
            devs = sorted({r["device"] for r in rows})
            per = {}
            for d in devs:
                rr = [r for r in rows if r["device"] == d]
                per[d] = {
                    "spearman": float(np.nanmean([r["spearman"] for r in rr])),
                    "mdape": float(np.mean([r["mdape"] for r in rr])),
                    "coverage90": float(np.mean([r["coverage90"] for r in rr])),
                    "feas_wrong": [float(v) for v in np.mean([r["feas_wrong"] for r in rr], axis=0)],
                    **{key: float(np.mean([r[key] for r in rr])) for key in rr[0] if key.startswith(("false_skip@", "saved@"))},
                }
            sp = np.array([per[d]["spearman"] for d in devs])
            fw = np.array([per[d]["feas_wrong"] for d in devs])  # (devices, quantiles)
            cov = np.array([per[d]["coverage90"] for d in devs])
            worst = devs[int(np.nanargmin(sp))]
            out[name][str(k)] = {
                "spearman_median": float(np.nanmedian(sp)),
                "spearman_min": float(np.nanmin(sp)),
                "worst_device": worst,
                "mdape_median": float(np.median([per[d]["mdape"] for d in devs])),
                "coverage_median": float(np.median(cov)),
                "coverage_mean": float(np.mean(cov)),
                "coverage_min": float(np.min(cov)),
                "coverage_max": float(np.max(cov)),
                "feas_wrong_mean": [float(v) for v in fw.mean(axis=0)],
                "feas_wrong_worst": [float(v) for v in fw.max(axis=0)],
                "feas_wrong_max_q": float(fw.mean(axis=0).max()),
                **{key: float(np.mean([per[d][key] for d in devs])) for key in per[devs[0]] if key.startswith(("false_skip@", "saved@"))},
                "per_device": per,
            }
    return out


def check_goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of :data:`GOALS` with the measured value and whether it is met (None if not run)."""
    out = []
    for g in GOALS:
        s = summary.get(g["config"], {}).get(str(g["k"]))
        v = None if s is None else s[g["stat"]]
        met = None if v is None else (v >= g["value"] if g["op"] == ">=" else v <= g["value"])
        out.append({**g, "measured": v, "met": met})
    cov = [s["coverage_median"] for c in summary.values() for s in c.values()]
    return out + [{
        "goal": "90 % intervals contain 85-95 % of true values (median over devices, every config and k)",
        "measured": [min(cov), max(cov)] if cov else None,
        "met": None if not cov else bool(min(cov) >= 0.85 and max(cov) <= 0.95),
    }]


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of the summary (what the command prints)."""
    lines = [f"{'config':14s} {'k':>3s} {'rho med':>8s} {'rho min':>8s} {'worst':>14s} {'MdAPE':>7s} "
             f"{'cov90 med [min,max]':>22s} {'feas wrong q10/25/50':>22s} {'false skip@' + _T:>15s} {'saved@' + _T:>10s}"]
    for name, per_k in result["summary"].items():
        for k, s in per_k.items():
            fw = "/".join(f"{v * 100:.1f}" for v in s["feas_wrong_mean"])
            lines.append(
                f"{name:14s} {k:>3s} {s['spearman_median']:8.3f} {s['spearman_min']:8.3f} {s['worst_device']:>14s} "
                f"{s['mdape_median'] * 100:6.1f}% {s['coverage_median']:8.2f} [{s['coverage_min']:.2f},{s['coverage_max']:.2f}]  "
                f"{fw:>20s} % {s['false_skip@' + _T] * 100:13.2f} % {s['saved@' + _T] * 100:8.1f} %"
            )
    lines.append("")
    for g in result["goals"]:
        mark = {True: "MET", False: "MISSED", None: "not run"}[g["met"]]
        v = g["measured"]
        vs = "-" if v is None else (f"[{v[0]:.3f}, {v[1]:.3f}]" if isinstance(v, list) else f"{v:.3f}")
        lines.append(f"{mark:8s} {g['goal']}: {vs}")
    return "\n".join(lines)


def format_markdown(result: dict[str, Any]) -> str:
    """Markdown tables of the summary and the goals (pasted into docs/benchmarks.md)."""
    lines = [
        "| config | k | Spearman median | Spearman worst (device) | MdAPE median | 90 % coverage median [min, max] | feasibility wrong q10 / q25 / q50 | false skip @" + _T + " | saved @" + _T + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, per_k in result["summary"].items():
        for k, s in per_k.items():
            fw = " / ".join(f"{v * 100:.1f} %" for v in s["feas_wrong_mean"])
            lines.append(
                f"| {name} | {k} | {s['spearman_median']:.3f} | {s['spearman_min']:.3f} ({s['worst_device']}) | "
                f"{s['mdape_median'] * 100:.1f} % | {s['coverage_median']:.2f} [{s['coverage_min']:.2f}, {s['coverage_max']:.2f}] | "
                f"{fw} | {s['false_skip@' + _T] * 100:.2f} % | {s['saved@' + _T] * 100:.1f} % |"
            )
    lines += ["", "| goal | measured | met |", "| --- | ---: | --- |"]
    for g in result["goals"]:
        v = g["measured"]
        vs = "-" if v is None else (f"{v[0]:.2f} – {v[1]:.2f}" if isinstance(v, list) else f"{v:.3f}")
        lines.append(f"| {g['goal']} | {vs} | {({True: 'yes', False: '**no**', None: 'not run'})[g['met']]} |")
    return "\n".join(lines)
