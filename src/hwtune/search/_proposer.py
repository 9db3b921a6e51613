"""One proposal round of the hardware-aware sampler: fit, screen, rank, pick ``q`` candidates.

1. The study's cost model (:class:`hwtune.costmodel.DeviceCostModels`, the one the loop's skip uses)
   learns every measurement read from the storage; it predicts each candidate's hardware costs, and
   only candidates likely within budget (P >= ``min_feasibility``) go on (unless none does: then the
   likeliest ones). Architectures measured within budget have probability 1.
2. Before ``n_startup`` trained networks (or while they do not differ), the pick is space-filling
   (greedy max-min distance): with an error prior, among the prior's best quarter; without one, on an
   all-categorical space, among those predicted to use the upper half of the budget.
3. Afterwards, the acquisition (:mod:`hwtune.search._acquisition`) on GP surrogates of the trained
   networks' metrics ranks them; pending trials and earlier picks of the batch are fantasized. On a
   space with numeric params, every ``trust_region_every``-th pick is made within the trust region of the
   best network (:func:`hwtune.search._pool.trust_region`). With an error prior, until
   ``prior_focus`` networks are trained, the picks are among the ``prior_focus_share`` of the
   candidates the prior ranks best, as long as the prior agrees with the trained networks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwtune.costmodel import DeviceCostModels, GaussianProcess
from hwtune.costmodel._numpy_gp import sqdist
from hwtune.search._acquisition import acquisition
from hwtune.search._calibration import recalibrate
from hwtune.search._observations import Observation
from hwtune.search._pool import CandidateInputs, Pool, ProposalState, build_pool, config_tuple, enumeration, trust_region
from hwtune.search._targets import Targets
from hwtune.space import SearchSpace
from hwtune.space._candidates import random_configs

__all__ = ["Proposer"]

_SCREEN_KEEP = math.log(1e-3)
"""Rows below this probability of feasibility at a full screen are skipped until the next one."""

MIN_FRESH_ARCHITECTURES = 4
"""Unmeasured architectures that stay candidates when the screen leaves fewer (the likeliest within
budget first): after a few measurements a cost model can pass almost nothing but the architectures
already measured within budget, and a study then tuned the training params of one network for 35
trials (the default study, seed 4). Proposing for information beats exploiting a model that knows
almost nothing."""


PRIOR_DEGENERATE_SHARE = 0.1
"""With an error prior, candidates it ranks among this worst share of the space are never proposed
while others are left."""
PRIOR_STARTUP_SHARE = 0.25
"""With an error prior, start-up proposals spread over this share of the candidates the prior ranks best."""


class Proposer:
    """One round: the study's data, the shared cost model, the sampler's state; :meth:`propose` picks."""

    def __init__(
        self,
        state: ProposalState,
        space: SearchSpace,
        targets: Targets,
        obs: list[Observation],
        costs: DeviceCostModels | None,
        rng: np.random.Generator,
    ) -> None:
        self.state = state
        self.space = space
        self.targets = targets
        self.obs = obs
        self.costs = costs
        self.rng = rng
        self.names = list(space)
        self.hw_names = space.hardware_names() or list(space)
        self.trained = [o for o in obs if o.status == "trained"]
        self.pending = [o for o in obs if o.pending]
        self.stopped = [o for o in obs if o.status == "pruned" and o.params]
        """Trials stopped during training whose final error the curve model cannot predict yet (too few
        whole curves): not trained, but tried; the start-up spreads away from them and counts them."""
        self.enum = enumeration(space, state.enumerate_limit)
        self.inputs = CandidateInputs(space, costs, state, self.enum)
        self.incumbent: dict[str, Any] | None = None
        """The best feasible network trained to the end (first objective), set by :meth:`propose`."""
        self.info: list[dict[str, Any]] = []
        """What the round saw of each pick (probability of feasibility, predictions, start-up)."""

    # -- models -------------------------------------------------------------------------------
    def _learn_costs(self) -> None:
        """Every measured architecture goes to the cost model (it ignores ones it already has)."""
        if self.costs is None:
            return
        metrics = self.targets.hardware_metrics
        for o in self.obs:
            vals = {m: o.values[m] for m in metrics if m in o.values}
            if vals and o.params:
                self.costs.observe(o.params, vals)

    def _fit_quality(self) -> dict[str, GaussianProcess]:
        """GPs of the quality metrics (objectives and constraints) on trained trials."""
        targets = [t for t in self.targets.objectives if not t.hardware] + self.targets.quality_constraints
        out: dict[str, GaussianProcess] = {}
        for t in {t.metric: t for t in targets}.values():
            rows = [(o, t.model_value(o.values)) for o in self.trained]
            rows = [(o, y) for o, y in rows if y is not None]
            if len(rows) < 2:
                continue
            X = self.inputs.surrogate([o.params for o, _ in rows])
            y = np.array([y for _, y in rows], dtype=float)
            n, last = len(y), self.state.quality_hyper.get(t.metric)
            gp = GaussianProcess(blocks=self.inputs.blocks(), linear=self.state.surrogate_linear and self.inputs.all_categorical)
            same = last is not None and last[1].log_ls.shape[0] == X.shape[1]
            if not same or n < 8 or n >= last[0] + max(2, 0.1 * last[0]):  # type: ignore[index]
                gp.fit(X, y, warm=last[1] if same else None)  # type: ignore[index]
                self.state.quality_hyper[t.metric] = (n, gp.hyper)
            else:
                gp.fit_fixed(X, y, last[1])  # type: ignore[index]
            out[t.metric] = gp
        return out

    def _predict_costs(self, pool: Pool) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Predicted (mean, std) of each hardware metric and log P(hardware constraints hold), per candidate."""
        n = len(pool.configs)
        if self.costs is None or not self.targets.hardware_metrics:
            return {}, np.zeros(n)
        if pool.rows is not None:  # predict each distinct cost-model input once
            Fu, inv_all = self.costs.distinct(self.inputs.enum_cost_features(), self.state.enum_cache)
            u, inv = np.unique(inv_all[pool.rows], return_inverse=True)
            F = Fu[u]
        else:
            F, inv = self.inputs.cost_features(pool.configs), np.arange(n)
        hw_pred: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for m in self.targets.hardware_metrics:
            pd = self.costs.predictive_features(m, F)
            if pd is not None:
                mu, sd = pd.mean_std()
                hw_pred[m] = (mu[inv], sd[inv])
        cons = [c.constraint for c in self.targets.hardware_constraints if c.constraint is not None]
        cal = self.state.calibration
        if cons and any(c.metric in cal for c in cons):  # the model's proposals missed: trust it less (_calibration)
            lp = np.zeros(len(F))
            for c in cons:
                pd = self.costs.predictive_features(c.metric, F)
                if pd is None:
                    continue
                below = c.op in ("<=", "<")
                one = pd.log_prob(c.bound, below=below)
                lp += recalibrate(one, *cal[c.metric], below) if c.metric in cal else one
            log_pf = lp[inv]
        else:
            log_pf = self.costs.log_prob_feasible(F, cons)[inv] if cons else np.zeros(n)
        self._pool_F = None if pool.rows is not None else F
        return hw_pred, log_pf

    # -- the round ----------------------------------------------------------------------------
    def _parents(self, feasible: list[Observation]) -> list[dict[str, Any]]:
        """The best feasible trained networks (first objective), up to five."""
        t0 = self.targets.objectives[0]
        keyed = [((y if t0.lower_better else -y), i) for i, o in enumerate(feasible) if (y := t0.model_value(o.values)) is not None]
        return [feasible[i].params for _, i in sorted(keyed)[:5]]

    def propose(self, q: int) -> list[dict[str, Any]]:
        self._learn_costs()
        measured: dict[tuple[Any, ...], dict[str, float]] = {}
        for o in self.obs:
            if o.params and any(c.metric in o.values for c in self.targets.hardware_constraints):
                measured.setdefault(config_tuple(o.params, self.hw_names), o.values)
        bad = {h for h, v in measured.items() if self.targets.hardware_feasible(v) is False}
        # the incumbent and the mutation parents are networks trained to the end, not a stopped trial's
        # predicted final error (``Observation.predicted``: the GP learns from those, nothing else does)
        feasible = [o for o in self.trained if self.targets.feasible(o.values) and getattr(o, "predicted", None) is None]
        quality = self._fit_quality()
        version = self.costs.version() if self.costs is not None else None
        n_distinct = 0
        if self.enum is not None and self.costs is not None and self.targets.hardware_metrics:
            n_distinct = len(self.costs.distinct(self.inputs.enum_cost_features(), self.state.enum_cache)[0])
        tried = {config_tuple(o.params, self.names) for o in self.obs if o.params}
        parents = self._parents(feasible)
        self.incumbent = parents[0] if parents else None  # the trust region's centre
        pool = build_pool(self.space, self.state, self.enum, tried, bad, parents, n_distinct, version, self.rng)
        if not pool.configs:
            return [dict(c) for c in random_configs(self.space, q, self.rng)]
        hw_pred, log_pf = self._predict_costs(pool)
        if measured:  # measured within budget (over-budget ones are not in the pool)
            known = np.array([config_tuple(c, self.hw_names) in measured for c in pool.configs])
            log_pf[known] = 0.0
        if pool.rows is not None and hw_pred and pool.full_screen:
            self.state.screen = (version, self.state.round, pool.rows[log_pf >= _SCREEN_KEEP])
        self.state.round += 1
        arch = [config_tuple(c, self.hw_names) for c in pool.configs]
        idx, gated = self._gate(pool, log_pf, arch, set(measured), self._prior_degenerate(pool))
        configs = [pool.configs[i] for i in idx]
        hw_pred = {m: (mu[idx], sd[idx]) for m, (mu, sd) in hw_pred.items()}
        log_pf = log_pf[idx]
        if pool.rows is not None:
            X = self.inputs.enum_surrogate()[pool.rows[idx]]
        else:
            F = getattr(self, "_pool_F", None)
            X = self.inputs.surrogate(configs, None if F is None else F[idx])
        chosen, acq, startup = self._choose(q, X, configs, log_pf, hw_pred, quality, feasible, [arch[i] for i in idx])
        if acq is not None:  # remember the best-ranked candidates for the next round's pool
            self.state.elite = [configs[j] for j in np.argsort(-acq)[: self.state.elite_size] if j not in chosen]
        self.info = [
            {
                "params": dict(configs[i]),
                "p_feasible": float(np.exp(log_pf[i])) if hw_pred else None,
                "predicted": {m: (float(mu[i]), float(sd[i])) for m, (mu, sd) in hw_pred.items()},
                "cost_models": self.costs.model_names() if self.costs is not None else {},
                "gated": bool(gated),
                "startup": bool(startup),
            }
            for i in chosen
        ]
        return [dict(configs[i]) for i in chosen]

    def _prior_degenerate(self, pool: Pool) -> np.ndarray | None:
        """Candidates the error prior ranks among the worst :data:`PRIOR_DEGENERATE_SHARE` of the space
        (e.g. NB201 cells whose published error is at chance), or None without a prior."""
        if self.state.error_prior is None or not pool.configs:
            return None
        score = (self.inputs.enum_prior()[pool.rows] if pool.rows is not None else self.inputs.prior(pool.configs)).mean(1)
        return score > self.inputs.prior_cutoff(1.0 - PRIOR_DEGENERATE_SHARE)

    def _gate(
        self, pool: Pool, log_pf: np.ndarray, arch: list[tuple[Any, ...]], measured: set[tuple[Any, ...]], degenerate: np.ndarray | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Candidates likely within budget (else the likeliest), and at least
        :data:`MIN_FRESH_ARCHITECTURES` unmeasured architectures (the likeliest), subsampled to
        ``pool_size`` keeping the must-keep rows; none the prior marks ``degenerate`` while others remain
        (a cost model that knows little passes mostly the cheapest cells, and those are often broken)."""
        if degenerate is not None and not degenerate.all():
            log_pf = np.where(degenerate, -np.inf, log_pf)
        ok = log_pf >= math.log(self.state.min_feasibility)
        gated = bool(ok.any())
        if not gated:
            ok = log_pf >= np.max(log_pf) - 0.05
        fresh = np.array([a not in measured for a in arch], dtype=bool) & np.isfinite(log_pf)
        seen = {arch[i] for i in np.flatnonzero(ok & fresh)}
        if len(seen) < MIN_FRESH_ARCHITECTURES and fresh.any():
            for i in np.flatnonzero(fresh)[np.argsort(-log_pf[fresh], kind="stable")]:
                if len(seen) >= MIN_FRESH_ARCHITECTURES:
                    break
                if arch[i] not in seen:
                    seen.add(arch[i])
                    ok[i] = True
        idx = np.flatnonzero(ok)
        if len(idx) > self.state.pool_size:
            must = np.isin(pool.rows[idx], np.fromiter(pool.must, dtype=int)) if pool.rows is not None and pool.must else np.zeros(len(idx), dtype=bool)
            rest = idx[~must]
            n_rest = max(0, self.state.pool_size - int(must.sum()))
            pick = self.rng.choice(rest, size=min(n_rest, len(rest)), replace=False) if n_rest and len(rest) else rest[:0]
            idx = np.sort(np.concatenate([idx[must], pick]))
        return idx, gated

    def _choose(
        self,
        q: int,
        X: np.ndarray,
        configs: list[dict[str, Any]],
        log_pf: np.ndarray,
        hw_pred: dict[str, tuple[np.ndarray, np.ndarray]],
        quality: dict[str, GaussianProcess],
        feasible: list[Observation],
        arch: list[tuple[Any, ...]] | None = None,
    ) -> tuple[list[int], np.ndarray | None, bool]:
        t, st = self.targets, self.state
        needs_quality = any(not o.hardware for o in t.objectives) or bool(t.quality_constraints)
        flat = needs_quality and all(  # the trained networks do not differ yet: nothing to learn from
            len({round(o.values.get(m, np.nan), 12) for o in self.trained}) < 2 for m in quality
        )
        # start-up counts distinct architectures: the training params of one network teach nothing of the others
        # (stopped ones included: else, while the curve model cannot predict them yet, the start-up keeps
        # proposing the corner farthest from the few trained networks, as a digits study with an
        # aggressive pruner did: 14 networks in a row at chance after epoch 1)
        tried_archs = {config_tuple(o.params, self.hw_names) for o in self.trained + self.pending + self.stopped if o.params}
        n_startup = st.n_startup if st.error_prior is None else max(2, math.ceil(st.n_startup / 2))  # a prior starts the surrogate off
        few_archs = len(tried_archs) < n_startup and len(self.trained) + len(self.pending) + len(self.stopped) < 3 * n_startup
        startup = few_archs or (needs_quality and not quality) or flat
        # size is the start-up's proxy for quality only without a prior: on devices whose latency counts
        # operations, "large within budget" means pooling-heavy cells, and a prior ranks quality better
        # (issue 19: the worst seed of cifar100 1080ti_1 q0.2 at 10 trained, 9.2 points behind); and only
        # on a space of categorical params: with numeric ones (layers, widths, training params) the upper
        # half of a latency budget is often reached by the least accurate shapes (the MNIST CNN space at
        # batch 1: three conv layers of 4-7 filters, slow to train and the worst at 2 epochs)
        startup_ok = self._large_within_budget(hw_pred) if startup and st.error_prior is None and self.inputs.all_categorical else None
        if startup and arch is not None:  # start-up spreads over architectures not trained yet, when any is left
            new = np.array([a not in tried_archs for a in arch], dtype=bool)
            if new.any():
                startup_ok = new if startup_ok is None else (startup_ok & new if (startup_ok & new).any() else new)
        if startup and st.error_prior is not None and len(configs):
            # with prior knowledge of quality, the start-up spreads over the share of the likely-feasible
            # new architectures the prior ranks best: a start-up drawn blind can spend its first networks
            # on degenerate cells, one that takes only the prior's favourite measures big networks over
            # budget while the cost model knows nothing (seen on NB201 at 10 % quantiles)
            score = self._prior_score(X)
            base = startup_ok if startup_ok is not None and startup_ok.any() else np.ones(len(configs), dtype=bool)
            good = base & (score <= np.quantile(score[base], PRIOR_STARTUP_SHARE))
            startup_ok = good if good.any() else base
        d_min = np.full(len(configs), np.inf)
        seen = [o.params for o in self.trained + self.pending + self.stopped]
        if startup and seen:  # spread out: far from every trained, stopped and pending network (greedy maximin)
            d_min = sqdist(X, self.inputs.surrogate(seen)).min(1)
        pend_X = self.inputs.surrogate([o.params for o in self.pending]) if self.pending else None
        Y = np.array([[o_.model_value(f.values) for o_ in t.objectives] for f in feasible], dtype=float).reshape(-1, len(t.objectives))
        Y = Y[np.all(np.isfinite(Y), axis=1)]
        local = None if startup else self._trust_region(configs)
        focus = None
        if not startup and self._one_quality_objective() and st.error_prior is not None and len(self.trained) < st.prior_focus and len(configs) and self._prior_agrees(feasible):
            pscore = self._prior_score(X)
            focus = pscore <= np.quantile(pscore, st.prior_focus_share)  # see ProposalState.prior_focus
        chosen: list[int] = []
        acq = None
        for _ in range(q):
            avail = np.ones(len(configs), dtype=bool)
            avail[chosen] = False
            if not avail.any():
                break
            n_done = len(self.trained) + len(self.pending) + len(chosen) - st.n_startup
            if not startup and st.explore_every > 0 and n_done % st.explore_every == st.explore_every - 1:
                cand = np.flatnonzero(avail)  # every k-th proposal: a random likely-feasible candidate
                i = int(cand[int(self.rng.integers(len(cand)))])
            elif startup:
                cand = np.flatnonzero(avail & startup_ok) if startup_ok is not None and (avail & startup_ok).any() else np.flatnonzero(avail)
                if np.isfinite(d_min[cand]).any():
                    cand = cand[d_min[cand] >= d_min[cand].max() - 1e-9]
                i = int(cand[int(self.rng.integers(len(cand)))])
                d_min = np.minimum(d_min, sqdist(X, X[i : i + 1])[:, 0])
            else:
                if focus is not None and (avail & focus).any():
                    avail = avail & focus
                if local is not None and n_done % st.trust_region_every == 0 and (avail & local).any():
                    avail = avail & local  # every k-th: near the best network (see _pool.trust_region)
                fant = ([pend_X] if pend_X is not None else []) + ([X[chosen]] if chosen else [])
                fant_X = np.vstack(fant) if fant else np.zeros((0, X.shape[1]))
                acq = acquisition(X, log_pf, hw_pred, quality, t.objectives, t.quality_constraints, Y, fant_X, self.rng, st.n_mc)
                acq[~avail] = -np.inf
                top = np.flatnonzero(acq >= acq.max() - 1e-9 * max(1.0, abs(acq.max())))
                i = int(top[int(self.rng.integers(len(top)))])
            chosen.append(i)
        return chosen, acq, startup

    def _one_quality_objective(self) -> bool:
        """One objective, a quality metric (the trust region and the prior focus narrow the search
        around good errors; a Pareto front or the cheapest network needs the poor-but-cheap end too)."""
        t = self.targets.objectives
        return len(t) == 1 and not t[0].hardware

    def _prior_score(self, X: np.ndarray) -> np.ndarray:
        """The error prior's score of surrogate input rows ``X`` (the mean of its columns, the last
        ones of ``X``; lower = better)."""
        return X[:, -len(self.inputs._prior_scale()[0]) :].mean(1)

    def _prior_agrees(self, feasible: list[Observation]) -> bool:
        """Whether the error prior ranks the trained feasible networks the way their first objective
        does (Spearman correlation > 0; True with fewer than 3 to judge by): a prior that the data
        contradicts must not narrow the search (a backwards prior would trap it)."""
        t0 = self.targets.objectives[0]
        rows = [(o.params, y) for o in feasible if (y := t0.model_value(o.values)) is not None]
        if len(rows) < 3:
            return True
        from scipy.stats import spearmanr

        prior = self._prior_score(self.inputs.surrogate([p for p, _ in rows]))
        y = np.array([y if t0.lower_better else -y for _, y in rows], dtype=float)
        rho = spearmanr(prior, y).statistic
        return bool(np.isfinite(rho) and rho > 0)

    def _trust_region(self, configs: list[dict[str, Any]]) -> np.ndarray | None:
        """Candidates in the trust region of the best feasible network (:attr:`incumbent`,
        :func:`trust_region`), on a space with numeric params and one quality objective; None otherwise,
        before any feasible network is trained, or when ``trust_region_every`` is 0."""
        if self.state.trust_region_every <= 0 or not self._one_quality_objective() or self.inputs.all_categorical or self.incumbent is None:
            return None
        return trust_region(self.space, configs, self.incumbent, self.state.trust_region_radius)

    def _large_within_budget(self, hw_pred: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
        """Start-up candidates: those predicted to use the upper half of the budget (relative to the
        other likely-feasible candidates). The most accurate network within a hardware budget nearly
        always uses most of it (HyperPower's observation; on NB201, in 95 % of 324 problems, 3 tasks x
        27 devices x 4 limits, the best feasible network's latency is >= 90 % of the limit), while the
        cheapest candidates are often degenerate (disconnected cells)."""
        ratios = [
            hw_pred[c.metric][0] / c.bound
            for c in self.targets.hardware_constraints
            if c.metric in hw_pred and c.below and c.bound is not None and c.bound > 0
        ]
        if not ratios:
            return None
        r = np.max(np.stack(ratios), axis=0)
        return r >= np.median(r)
