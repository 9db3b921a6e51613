"""Benchmark (issue 13): does an exported model's re-measured latency lie inside the study's interval?

One command runs the default study (``src/hwtune/study/default_study.yaml``: the ``cnn`` space on the
8x8 digits, ``latency_ms <= q40`` at batch 64 on one thread, ``runtime: onnxruntime``) with
``keep_models: all``, so every trained network is kept and measured three times by the study (before
training, for the budget's decision, again after training, and once more when the run ends: the closing
retest), then exports every kept network with
``hwtune.export`` (verification and the exported file's latency re-measured as ``hwtune export`` does),
``--rounds`` times, ``--wait`` seconds apart. Per export round it counts the kept models whose
re-measured latency lies

- inside the study's interval of the median (the first measurement's own 95 % interval, ``study_ci``),
- inside the study's retest interval (``study_retest``: the 95 % interval for one more measurement, from
  the study's pairs of (first measurement, closing retest when the run ended), ``hwtune.study._retest``
  and ``hwtune.study._closing``).

    .venv/bin/python benchmarks/export_retest.py --trials 40 --rounds 2 --wait 300

Results: ``benchmarks/results/export_retest.json`` (``--out``). Goal (issue 13): >= 90 % of the kept
models inside the study's interval.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_study(folder: Path, trials: int, minutes: float | None, seed: int) -> Any:
    from importlib import resources

    import yaml

    from hwtune.study import parse_study_file, study_from_file

    spec = yaml.safe_load(resources.files("hwtune.study").joinpath("default_study.yaml").read_text())
    spec.update(storage=f"sqlite:///{folder / 'study.db'}", keep_models="all", seed=seed)
    spec["budget"] = {"trials": trials, **({"minutes": minutes} if minutes else {})}
    study, build, train = study_from_file(parse_study_file(spec))
    study.optimize(build, train, n_trials=trials)
    return study


def export_round(study: Any, kept: list[int], out: Path) -> list[dict[str, Any]]:
    import hwtune

    manifest = hwtune.export(study, trials=kept, format="onnx", out=out)
    rows = []
    for m in manifest["models"]:
        lat = m["exported"]["latency_ms"]
        rows.append({
            "trial": m["trial"], "exported_ms": lat["value"], "exported_ci": [lat["ci_low"], lat["ci_high"]],
            "study_ms": lat.get("study_value"), "study_ci": lat.get("study_ci"),
            "after_training_ms": ((m.get("final_hardware") or {}).get("latency_ms") or {}).get("value"),
            "retest": lat.get("study_retest"),
            "inside_ci": lat.get("within_study_interval"), "inside_retest": lat.get("within_study_retest_interval"),
        })
    return rows


def _share(rows: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if r[key] is not None]
    return sum(bool(v) for v in vals) / len(vals) if vals else float("nan")


def main() -> None:
    from hwtune.study._closing import closing_hardware

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=None, help="the study's wall-clock budget (default: none, only --trials)")
    ap.add_argument("--rounds", type=int, default=2, help="export rounds")
    ap.add_argument("--wait", type=float, default=300.0, help="seconds between the study's end and each further export round")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export_retest.json")
    ap.add_argument("--keep", type=Path, default=None, help="copy the study (database and kept weights) here, for export_retest_check.py")
    args = ap.parse_args()

    result: dict[str, Any] = {"command": "benchmarks/export_retest.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "keep")),
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or platform.machine(),
                              "cpus": os.cpu_count(), "load_start": _load(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="hwtune-export-retest-") as d:
        folder = Path(d)
        t0 = time.time()
        study = run_study(folder, args.trials, args.minutes, args.seed)
        recs = study.records()
        kept = [r.number for r in recs if r.status == "trained" and "latency_ms" in r.final_hardware]
        closing = closing_hardware(study.optuna_study.user_attrs)
        ratios = sorted(closing[n]["latency_ms"].value / r.hardware["latency_ms"].value for r in recs if (n := r.number) in closing)
        result.update(study_s=round(time.time() - t0, 1), trained=sum(r.status == "trained" for r in recs), kept=len(kept),
                      over_budget=sum(r.status == "over_budget" for r in recs), load_after_study=_load(),
                      closing_retest=len(closing), closing_over_first_median=ratios[len(ratios) // 2] if ratios else None)
        print(f"study: {result['trained']} trained ({len(kept)} kept, each measured before and after training; {len(closing)} measured "
              f"again when the run ended, median closing / first {result['closing_over_first_median']}), {result['over_budget']} over budget, "
              f"{result['study_s']} s", flush=True)
        for k in range(args.rounds):
            if k:
                time.sleep(args.wait)
            t1 = time.time()
            rows = export_round(study, kept, folder / f"export{k}")
            rnd = {"round": k, "seconds_after_study": round(t1 - t0 - result["study_s"], 1), "load": _load(), "rows": rows,
                   "inside_ci": _share(rows, "inside_ci"), "inside_retest": _share(rows, "inside_retest")}
            result["rounds"].append(rnd)
            print(f"export round {k} ({rnd['seconds_after_study']} s after the study, load {rnd['load']}): inside the median's interval "
                  f"{rnd['inside_ci']:.0%}, inside the retest interval {rnd['inside_retest']:.0%} of {len(rows)}", flush=True)
        if args.keep is not None:
            import shutil

            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / "study.db", args.keep / "study.db")
            shutil.copytree(folder / "study.db.artifacts", args.keep / "study.db.artifacts", dirs_exist_ok=True)
    result["load_end"] = _load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
