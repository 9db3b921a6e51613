"""Replay pruners over recorded learning curves: how much can early stopping save on these curves at all?

``benchmarks/train_pruning.py`` runs whole studies, so each pruned study also proposes different
networks from its unpruned twin, and "time to the unpruned best" mixes the pruner's savings with the
sampler's luck. This script takes the sampler out: it pools the whole validation-error curves of the
unpruned studies in ``train_pruning.py`` result files (real MNIST trainings, no new training), draws
random orders of them (a random sampler's study), and replays each pruner over each order in a real
in-memory Optuna study (Optuna's pruners through ``trial.should_prune``, hwtune's ``curve`` and
``cost_median`` through ``should_prune_at``, as the study loop calls them).

Two designs (``--design``), and with ``--recorded`` a third, paired over each unpruned study's own
recorded order (for random-sampler studies this reproduces the paired real run's epochs exactly):

- ``paired``: the unpruned study is an order's first ``--length`` networks, its target their best final
  error, its cost the epochs up to that network; the pruned study walks the *same* order (past
  ``--length`` if it needs) and counts epochs until a network it trained to the end reaches the target:
  the pruner alone.
- ``race``: the pruned study walks an order of its own, with the unpruned study's whole budget, as the
  two studies of ``train_pruning.py`` do when their sampler learns from results. Pruner ``none`` then
  measures the design itself: of two exchangeable studies, the one with the worse best never reaches
  the other's.

Pruner ``oracle`` stops at epoch 1 every network whose final error will miss the target: the cheapest
any pruner could be. ``oracle:N`` does the same once ``N`` networks have been trained whole, as ``curve``
waits for ``min_complete`` whole curves before its first decision: the cheapest a pruner with that
warm-up could be. ``records:N`` knows each network's final error but not the networks still to come,
as a real pruner whose reference is the study's best so far: after ``N`` whole networks it stops at
epoch 1 every network that will not beat the best so far and trains every new record whole (a record
may be the study's last best, so no causal pruner can stop it): the cheapest any pruner comparing
with the best so far could be, whatever its model of the curves. Reported per pruner: the median ratio pruned / unpruned epochs, how often the
target network itself was stopped (paired), and epochs per network. Also reported, for the pool: how
well each epoch's error ranks the final errors (Spearman), how many of the best 10 % of networks a rule
"stop the worst x % at epoch e" would stop, and the best median ratio a two-rung rank rule
(successive-halving-like) reaches with its epochs and shares chosen in hindsight.

    python benchmarks/train_pruning_replay.py --results benchmarks/results/train_pruning_curve_hwtune.json \\
        benchmarks/results/train_pruning_curve_hwtune_tr.json benchmarks/results/train_pruning_curve_tpe_v1.json \\
        --pruner curve hyperband --length 30 --replays 30
    python benchmarks/train_pruning_replay.py --results benchmarks/results/train_pruning_random_6000.json \\
        --pruner none oracle curve --design paired race --length 20 --replays 40
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from typing import Any, Sequence

import numpy as np


def pool_curves(paths: Sequence[str]) -> tuple[list[list[float]], dict[str, Any]]:
    """Whole curves of the trained networks of the unpruned studies in ``paths`` (one setting only)."""
    curves: list[list[float]] = []
    setting: dict[str, Any] | None = None
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        s = {k: d.get(k) for k in ("train_subset", "val_size", "epochs")}
        if setting is not None and s != setting:
            raise SystemExit(f"--results {path}: its setting {s} differs from {setting}; pool runs of one setting")
        setting = s
        for study in d["raw"]:
            if study["pruner"] != "none":
                continue
            curves += [t["curve"] for t in study["trials"] if t["status"] == "trained" and len(t.get("curve") or []) == s["epochs"]]
    if not curves:
        raise SystemExit("no whole curves of unpruned studies in --results (they need the per-epoch 'curve' of each trial)")
    return curves, setting or {}


def recorded_orders(paths: Sequence[str]) -> list[list[list[float]]]:
    """Each unpruned study's whole curves in the order it trained them (random-sampler studies: the
    order its pruned twin walked too, so replaying a pruner over it reproduces the paired real run)."""
    orders = []
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        for study in d["raw"]:
            if study["pruner"] == "none":
                order = [t["curve"] for t in study["trials"] if t["status"] == "trained" and len(t.get("curve") or []) == d["epochs"]]
                if order:
                    orders.append(order)
    return orders


def predictability(curves: list[list[float]]) -> list[dict[str, Any]]:
    """Per epoch: Spearman correlation of its errors with the final ones, and how many of the best 10 %
    (by final error) a rule stopping the worst 30 / 50 / 70 % at that epoch would stop."""
    from scipy.stats import spearmanr

    c = np.array(curves)
    final = c[:, -1]
    top = final <= np.quantile(final, 0.1)
    rows = []
    for e in range(c.shape[1] - 1):
        col = c[:, e]
        rows.append({
            "epoch": e + 1, "spearman": float(spearmanr(col, final).statistic), "best_10pct": int(top.sum()),
            **{f"stops_of_best_if_worst_{p}pct_stopped": int(top[col > np.quantile(col, 1 - p / 100)].sum()) for p in (30, 50, 70)},
        })
    return rows


def replay(order: list[list[float]], spec: Any, length: int, budget_factor: float = 4.0, base_order: list[list[float]] | None = None) -> dict[str, Any]:
    """One pruner over one order of curves (see the module docstring).

    ``base_order``: the unpruned study's own order (a *race*, as in ``train_pruning.py`` where each study
    proposes its own networks): its first ``length`` networks set the target and the epochs to it, and
    the pruned study walks ``order`` with the unpruned study's whole budget (``length`` networks' epochs).
    Without it the two studies walk the same order (*paired*: the pruner alone), and the pruned one may
    spend ``budget_factor`` times the epochs to the target. ``spec`` ``"oracle"``: stop at epoch 1 every
    network whose final error misses the target (it knows the future: the cheapest any pruner could be);
    ``"oracle:N"``: the same after ``N`` networks trained whole (before, every network trains whole).
    ``"records:N"``: after ``N`` whole networks, stop at epoch 1 every network whose final error will not
    beat the best final error trained so far (perfect prediction, no knowledge of later networks).
    """
    import optuna

    from hwtune.search import StudyBudget
    from hwtune.search._pruners import make_pruner

    base_order = order if base_order is None else base_order
    epochs = len(order[0])
    finals = [c[-1] for c in base_order[:length]]
    target = min(finals)
    first = finals.index(target)
    base = epochs * (first + 1)
    budget = budget_factor * base if base_order is order else epochs * length
    records = isinstance(spec, str) and spec.startswith("records")
    oracle = records or (isinstance(spec, str) and (spec == "oracle" or spec.startswith("oracle:")))
    warm_up = int(spec.partition(":")[2] or 0) if oracle else 0
    best_so_far = math.inf
    pruner = None if oracle else make_pruner(spec, max_epochs=epochs)
    study = optuna.create_study(direction="minimize", pruner=pruner if isinstance(pruner, optuna.pruners.BasePruner) else None)
    hwtune_rule = hasattr(pruner, "should_prune_at")
    clock = [0.0]  # the study's clock counts epochs: its budget is the unpruned study's, `length` whole networks
    if hasattr(pruner, "bind"):
        pruner.bind(study, StudyBudget(deadline=float(epochs * length), clock=lambda: clock[0]))
    spent, stopped, target_stopped, networks, whole = 0, 0, False, 0, 0
    for n, curve in enumerate(order):
        if spent >= budget:
            break  # out of budget: like a study's timeout, no new network starts (one running finishes)
        trial = study.ask()
        networks += 1
        stop_at = None
        for e, err in enumerate(curve, start=1):
            if oracle:
                stop = whole >= warm_up and curve[-1] > (best_so_far if records else target + 1e-12)
            elif hwtune_rule:
                stop = pruner.should_prune_at(trial, e, err, 1.0)
            else:
                trial.report(err, e)
                stop = e < epochs and trial.should_prune()
            if stop:
                stop_at = e
                break
        spent += stop_at or epochs
        clock[0] = spent
        if stop_at:
            stopped += 1
            target_stopped |= base_order is order and n == first
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, curve[-1])
        whole += 1
        best_so_far = min(best_so_far, curve[-1])
        if curve[-1] <= target + 1e-12:
            return {"ratio": spent / base, "target_stopped": target_stopped, "epochs_per_network": spent / networks, "stopped": stopped, "networks": networks}
    return {"ratio": None, "target_stopped": target_stopped, "epochs_per_network": spent / networks, "stopped": stopped, "networks": networks}


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile that keeps ``inf`` (a target never reached) as a value, not NaN."""
    v = sorted(values)
    x = q * (len(v) - 1)
    lo, hi = math.floor(x), math.ceil(x)
    if lo == hi or v[lo] == v[hi]:
        return v[lo]
    return math.inf if math.isinf(v[hi]) else v[lo] + (v[hi] - v[lo]) * (x - lo)


def hindsight_bound(orders: list[list[list[float]]], curves: list[list[float]], length: int) -> dict[str, Any]:
    """The best any rule "stop the worst x1 % at epoch e1, then the worst x2 % at epoch e2" could do on
    these orders, with the epochs and shares chosen in hindsight (each cut-off is the pool's own quantile
    at its epoch; one rung or none included): a bound for rank rules in the manner of successive halving,
    not a pruner anyone could run."""
    c = np.array(curves)
    epochs = c.shape[1]
    shares = (0.0, 0.3, 0.5, 0.7, 0.9)
    targets = []
    for order in orders:
        finals = [x[-1] for x in order[:length]]
        targets.append((min(finals), epochs * (finals.index(min(finals)) + 1)))
    best: dict[str, Any] | None = None
    for e1 in range(1, epochs):
        for e2 in range(e1 + 1, epochs):
            for s1 in shares:
                for s2 in shares:
                    if s2 and s2 <= s1:
                        continue  # the second rung stops more of the pool than the first, or nothing
                    cut1 = float(np.quantile(c[:, e1 - 1], 1 - s1)) if s1 else math.inf
                    cut2 = float(np.quantile(c[:, e2 - 1], 1 - s2)) if s2 else math.inf
                    ratios = []
                    for order, (target, base) in zip(orders, targets):
                        spent, ratio = 0, math.inf
                        for x in order:
                            stop = e1 if x[e1 - 1] > cut1 else e2 if x[e2 - 1] > cut2 else None
                            spent += stop or epochs
                            if stop is None and x[-1] <= target + 1e-12:
                                ratio = spent / base
                                break
                        ratios.append(ratio)
                    med = _quantile(ratios, 0.5)
                    if best is None or med < best["median_ratio"]:
                        best = {"rungs": [[e1, s1], [e2, s2]], "median_ratio": med, "at_most_half": sum(r <= 0.5 for r in ratios)}
    return best or {}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median ratio (a target never reached counts as infinite), quartiles and counts over orders."""
    ratios = [r["ratio"] if r["ratio"] is not None else math.inf for r in runs]
    return {"median_ratio": _quantile(ratios, 0.5), "quartiles": [_quantile(ratios, 0.25), _quantile(ratios, 0.75)],
            "at_most_half": sum(r <= 0.5 for r in ratios), "not_reached": sum(math.isinf(r) for r in ratios),
            "target_stopped": sum(r["target_stopped"] for r in runs),
            "epochs_per_network": statistics.median(r["epochs_per_network"] for r in runs), "runs": runs}


def main(argv: list[str] | None = None) -> None:
    import optuna

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", nargs="+", required=True, help="train_pruning.py --out files (one setting)")
    p.add_argument("--pruner", nargs="+", default=["curve", "hyperband"],
                   help="pruner names or JSON specs; 'oracle': stops every network that will miss the target at epoch 1 (a bound); "
                        "'oracle:N': the same after N networks trained whole (the bound under curve's min_complete warm-up); "
                        "'records:N': after N whole, stops at epoch 1 every network that will not beat the best so far "
                        "(perfect prediction, no knowledge of later networks: the bound of a pruner comparing with the best so far)")
    p.add_argument("--length", type=int, default=30, help="networks in the unpruned study")
    p.add_argument("--replays", type=int, default=30, help="random orders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--design", nargs="+", choices=["paired", "race"], default=["paired"],
                   help="paired: both studies walk one order; race: each its own (pruner 'none' then measures the race itself)")
    p.add_argument("--prior-results", nargs="+", default=[],
                   help="train_pruning.py --out files of earlier studies (not in --results): their unpruned studies' curves "
                        "replace \"prior\" in a curve spec, e.g. '{\"name\": \"curve\", \"prior_curves\": \"prior\", \"forecast\": true}'")
    p.add_argument("--recorded", action="store_true",
                   help="also replay (paired) over each unpruned study's own recorded order, its length the study's")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves, setting = pool_curves(args.results)
    prior: list[list[float]] = []
    if args.prior_results:
        if set(args.prior_results) & set(args.results):
            raise SystemExit("--prior-results: a file also in --results; the prior must come from other studies")
        prior, prior_setting = pool_curves(args.prior_results)
        if prior_setting != setting:
            raise SystemExit(f"--prior-results: setting {prior_setting} differs from --results' {setting}")
    if args.length > len(curves):
        raise SystemExit(f"--length {args.length}: the pool has {len(curves)} curves; use a smaller --length")
    rng = random.Random(args.seed)
    orders = [rng.sample(curves, len(curves)) for _ in range(args.replays)]
    out: dict[str, Any] = {"setting": setting, "pool": len(curves), "length": args.length, "replays": args.replays, "seed": args.seed,
                           "results": args.results, "prior_results": args.prior_results, "predictability": predictability(curves), "pruners": {}, "race": {}}
    print(f"pool: {len(curves)} whole curves, setting {setting}")
    for row in out["predictability"]:
        print(f"  epoch {row['epoch']}: Spearman with the final error {row['spearman']:.2f}; of the best {row['best_10pct']} networks, "
              f"stopping the worst 30/50/70 % here stops {row['stops_of_best_if_worst_30pct_stopped']}/"
              f"{row['stops_of_best_if_worst_50pct_stopped']}/{row['stops_of_best_if_worst_70pct_stopped']}")
    bound = hindsight_bound(orders, curves, args.length)
    out["hindsight_bound"] = bound
    rungs = ", ".join(f"the worst {sh:.0%} at epoch {e}" for e, sh in bound["rungs"] if sh)
    print(f"hindsight bound (the best two-rung rank rule, chosen knowing every curve: stop {rungs}): "
          f"median ratio {bound['median_ratio']:.2f}, <= 0.5 in {bound['at_most_half']}/{len(orders)}")
    race_orders = [rng.sample(curves, len(curves)) for _ in range(args.replays)] if "race" in args.design else []
    recorded = recorded_orders(args.results) if args.recorded else []
    designs = list(args.design) + (["recorded"] if args.recorded else [])
    titles = {"paired": "both studies walk the same order (the pruner alone)",
              "race": "each study walks its own order, as the studies of train_pruning.py propose their own networks",
              "recorded": f"paired, over the {len(recorded)} unpruned studies' own orders of networks"}
    for design in designs:
        print(f"-- {design}: {titles[design]}")
        for raw in args.pruner:
            spec = raw if raw.startswith(("oracle", "records")) else json.loads(raw) if raw.startswith("{") else raw
            if isinstance(spec, dict) and spec.get("prior_curves") == "prior":
                if not prior:
                    raise SystemExit(f"--pruner {raw}: \"prior\" needs --prior-results")
                spec = {**spec, "prior_curves": prior}
            if design == "paired":
                runs = [replay(o, spec, args.length) for o in orders]
            elif design == "recorded":
                runs = [replay(o, spec, len(o)) for o in recorded]
            else:
                runs = [replay(o, spec, args.length, base_order=b) for b, o in zip(orders, race_orders)]
            res = _summary(runs)
            out.setdefault({"paired": "pruners"}.get(design, design), {})[raw] = res
            stopped = f"target network stopped in {res['target_stopped']}/{len(runs)}, " if design != "race" else ""
            print(f"{raw}: median ratio {res['median_ratio']:.2f} (quartiles {res['quartiles'][0]:.2f}-{res['quartiles'][1]:.2f}), "
                  f"<= 0.5 in {res['at_most_half']}/{len(runs)}, {stopped}not reached {res['not_reached']}/{len(runs)}, "
                  f"epochs per network {res['epochs_per_network']:.1f} of {setting.get('epochs')}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
