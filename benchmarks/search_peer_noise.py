"""How noisy is a 10-seed median of the random baselines? (to judge "reproduces the peer rows within noise")

Random search has a closed form in distribution: draw architectures uniformly (with the latency
constraint known only after training for "unaware", or rejected before training for "measure first")
and take the best feasible accuracy after N trained. This script simulates 20,000 runs of each, and
the distribution of the median of 10 runs, for the four problems of issue 5.

    .venv/bin/python benchmarks/search_peer_noise.py
"""

from __future__ import annotations

import numpy as np

from hwtune.bench import NB201Problem

PROBLEMS = [("pixel3", 0.10), ("fpga", 0.25), ("raspi4", 0.25), ("titanxp_1", 0.10)]


def main(n_runs: int = 20000, seeds: int = 10) -> None:
    rng = np.random.default_rng(0)
    print("| problem | method | N | median of all runs | 90 % interval of a 10-seed median |")
    print("|---|---|---|---|---|")
    for device, q in PROBLEMS:
        P = NB201Problem("cifar10", device, quantile=q)
        best = P.best_feasible_accuracy
        worst = best - float(P.acc.min())
        feas = np.flatnonzero(P.feasible)
        # unaware: every draw is trained; measure first: only feasible draws are trained
        idx_u = rng.integers(0, len(P.acc), size=(n_runs, 50))
        acc_u = np.where(P.feasible[idx_u], P.acc[idx_u], -np.inf)
        idx_m = rng.choice(feas, size=(n_runs, 50))
        acc_m = P.acc[idx_m]
        for name, acc in (("random, unaware", acc_u), ("random, measure first", acc_m)):
            for n in (25, 50):
                b = acc[:, :n].max(1)
                reg = np.where(np.isfinite(b), best - b, worst)
                meds = np.median(reg[: (n_runs // seeds) * seeds].reshape(-1, seeds), axis=1)
                lo, hi = np.quantile(meds, [0.05, 0.95])
                print(f"| {device} {q:.0%} | {name} | {n} | {np.median(reg):.2f} | {lo:.2f} – {hi:.2f} |")


if __name__ == "__main__":
    main()
