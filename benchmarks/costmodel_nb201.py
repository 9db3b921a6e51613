"""Cost-model benchmark on the NB201 hardware table (issue 4).

Run:  .venv/bin/python benchmarks/costmodel_nb201.py [--out benchmarks/results] [--configs additive,transfer]
      .venv/bin/python benchmarks/costmodel_nb201.py --ceiling   # in-sample oracles: what the data allow

For each of the 27 device columns: fit on k = 10, 20, 50 random architectures (5 repetitions),
predict all other 15,625 - k, and report Spearman rank correlation, median absolute percentage error,
90 % interval coverage, feasibility errors at the 10/25/50 % latency quantiles and screening behaviour.
Prints a table and writes costmodel_nb201.json and costmodel_nb201.md under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hwtune.costmodel._benchmark import BENCH_CONFIGS, QUANTILES, format_markdown, format_table, run_nb201_benchmark


def _rounded(o):
    """Floats to 5 significant digits (keeps the JSON small)."""
    if isinstance(o, float):
        return float(f"{o:.5g}")
    if isinstance(o, dict):
        return {k: _rounded(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_rounded(v) for v in o]
    return o


def ceiling(out: Path) -> None:
    """What the data allow at best: for each device, a gradient-boosted model fitted *in-sample* on all
    15,625 rows (one-hot edges, all derived features, the other 26 devices' latencies). Its rank
    correlation and feasibility errors are limited only by the measurements' own noise and resolution
    (phones report whole milliseconds), so no k-shot model can be expected to beat them."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from hwtune.costmodel import Featurizer, nb201_derived_full, nb201_params, nb201_space, spearman
    from hwtune.tabular import load_nb201

    t = load_nb201()
    X = Featurizer(nb201_space(), nb201_derived_full).transform(nb201_params(t))
    Y = np.column_stack([t.latency[d] for d in t.devices])
    rows = []
    with threadpool_limits(limits=1):
        for j, d in enumerate(t.devices):
            y = Y[:, j]
            Z = np.hstack([X, np.delete(Y, j, axis=1)])
            p = HistGradientBoostingRegressor(max_iter=300, random_state=0).fit(Z, y).predict(Z)
            wrong = [float(np.mean((p <= b) != (y <= b))) for b in (np.quantile(y, q) for q in QUANTILES)]
            rows.append({"device": d, "spearman": spearman(p, y), "feas_wrong": wrong})
            print(f"{d:15s} Spearman {rows[-1]['spearman']:.3f}  feasibility wrong " + "/".join(f"{w * 100:.1f}" for w in wrong) + " %", flush=True)
    fw = np.array([r["feas_wrong"] for r in rows])
    summary = {"spearman_min": min(r["spearman"] for r in rows), "feas_wrong_mean": fw.mean(axis=0).tolist()}
    print(f"in-sample ceiling: worst Spearman {summary['spearman_min']:.3f}; feasibility wrong (mean over devices) "
          + "/".join(f"{v * 100:.1f}" for v in summary["feas_wrong_mean"]) + " %")
    out.mkdir(parents=True, exist_ok=True)
    (out / "costmodel_nb201_ceiling.json").write_text(json.dumps({"devices": rows, "summary": summary}, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results", help="folder for the JSON and markdown results")
    ap.add_argument("--configs", default=",".join(BENCH_CONFIGS), help=f"comma-separated, from {list(BENCH_CONFIGS)}")
    ap.add_argument("--ks", default="10,20,50")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--devices", default="", help="comma-separated device columns (default: all 27)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ceiling", action="store_true", help="instead, fit in-sample oracles: the best the data allow")
    a = ap.parse_args(argv)
    if a.ceiling:
        ceiling(Path(a.out))
        return 0
    res = run_nb201_benchmark(
        ks=[int(k) for k in a.ks.split(",")],
        repetitions=a.repetitions,
        configs=[c for c in a.configs.split(",") if c],
        devices=[d for d in a.devices.split(",") if d] or None,
        seed=a.seed,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
    )
    print(format_table(res))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "costmodel_nb201.json").write_text(json.dumps(_rounded(res), separators=(",", ":")))
    (out / "costmodel_nb201.md").write_text(format_markdown(res) + "\n")
    print(f"\nwrote {out / 'costmodel_nb201.json'} and {out / 'costmodel_nb201.md'} ({res['seconds']['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
