"""The candidate pool of one proposal, and the inputs the models read for each candidate.

The sampler scores a finite pool instead of optimizing the acquisition by gradients: the whole space
when it is discrete and small (enumerated once per process and shared by the samplers of that
process), else random draws plus mutations of the best networks so far; always without the
configurations already tried or running and without the architectures measured over budget.

Two kinds of inputs per candidate:

- the cost model's features (:meth:`DeviceCostModels.features`: the hardware-relevant params and the
  model family's derived features), computed once for an enumerated space;
- the quality surrogates' inputs: the derived features scaled over the space, and/or the encoding of
  every searched param (:class:`hwtune.space._candidates.Encoder`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwtune.costmodel import DeviceCostModels
from hwtune.space import CategoricalParam, FixedParam, SearchSpace
from hwtune.space._candidates import Encoder, _scale, enumerate_space, mutate_configs, random_configs

__all__ = ["Enumeration", "enumeration", "ProposalState", "CandidateInputs", "Pool", "config_tuple", "trust_region"]


def config_tuple(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """Hashable identity of a configuration restricted to ``names`` (absent params are ``None``)."""
    return tuple(map(params.get, names))


@dataclass
class Enumeration:
    """Every configuration of a small discrete space, with lookups by configuration and architecture."""

    configs: list[dict[str, Any]]
    row_of: dict[tuple[Any, ...], int]
    rows_of_architecture: dict[tuple[Any, ...], list[int]]
    encodings: dict[str, np.ndarray] = field(default_factory=dict)
    """Encoded params (shared by every sampler of the process)."""


_ENUMERATIONS: dict[tuple[str, int], Enumeration | None] = {}


def enumeration(space: SearchSpace, limit: int) -> Enumeration | None:
    """The space enumerated (cached per process), or None when it has more than ``limit`` points."""
    sig = (json.dumps(space.to_dict(), sort_keys=True, default=str), limit)
    if sig not in _ENUMERATIONS:
        configs = enumerate_space(space, limit)
        out = None
        if configs is not None:
            names, hw = list(space), space.hardware_names() or list(space)
            by_arch: dict[tuple[Any, ...], list[int]] = {}
            for i, c in enumerate(configs):
                by_arch.setdefault(config_tuple(c, hw), []).append(i)
            out = Enumeration(configs, {config_tuple(c, names): i for i, c in enumerate(configs)}, by_arch)
        if len(_ENUMERATIONS) > 8:
            _ENUMERATIONS.clear()
        _ENUMERATIONS[sig] = out
    return _ENUMERATIONS[sig]


def trust_region(space: SearchSpace, configs: Sequence[Mapping[str, Any]], centre: Mapping[str, Any], radius: float, max_changes: int = 1) -> np.ndarray:
    """Which ``configs`` lie in the trust region around ``centre``: every numeric param within
    ``radius`` of the centre's in its (log) range scaled to [0, 1], and at most ``max_changes``
    categorical params different from the centre's (a param present in one and absent in the other
    counts as a change).

    Why: with a dozen trained networks in a mixed space of a dozen params, a GP's lengthscales stay at
    their prior's long values and its mean extrapolates to the edges of the ranges (the real MNIST
    benchmark of issue 19: after finding 8.6 % error at SGD lr 0.046, hwtune proposed lr 0.3 and
    1e-4 on the same network, both at chance); TuRBO's answer (Eriksson et al. 2019) is to search near
    the incumbent too, in a box that does not reach the edges."""
    n = len(configs)
    inside = np.ones(n, dtype=bool)
    changes = np.zeros(n, dtype=int)
    for name, p in space.items():
        if isinstance(p, FixedParam):
            continue
        c = centre.get(name)
        vals = [cfg.get(name) for cfg in configs]
        present = np.fromiter((v is not None for v in vals), dtype=bool, count=n)
        changes += present != (c is not None)
        if c is None:
            continue
        rows = np.flatnonzero(present)
        if isinstance(p, CategoricalParam):
            changes[rows] += np.fromiter((vals[i] != c for i in rows), dtype=bool, count=len(rows))
        else:
            u = _scale(p, np.array([float(vals[i]) for i in rows], dtype=float))
            inside[rows] &= np.abs(np.asarray(u) - _scale(p, float(c))) <= radius + 1e-12
    return inside & (changes <= max_changes)


@dataclass
class ProposalState:
    """The sampler's settings and what it keeps between proposals (handed to each proposal round)."""

    n_startup: int = 5
    min_feasibility: float = 1.0 / 3.0
    pool_size: int = 3000
    screen_limit: int = 6000
    enumerate_limit: int = 50_000
    surrogate_inputs: str = "both"
    surrogate_linear: bool = True
    explore_every: int = 0
    trust_region_every: int = 2
    """On a space with numeric params, every k-th proposal after the start-up is picked within the
    trust region of the best network (:func:`trust_region`; 0: never)."""
    trust_region_radius: float = 0.2
    """Half-width of that trust region in each numeric param's scaled (log) range."""
    prior_focus: int = 25
    """With an error prior, until this many networks are trained the acquisition picks among the
    ``prior_focus_share`` of the candidates the prior ranks best (0: never)."""
    prior_focus_share: float = 0.1
    """That share of the candidates (issue 19: on the sweep's NB201 problems with 5 % latency limits,
    a GP fitted on the 3 start-up networks left the prior's best quarter and trained chance-level cells
    for 7 of the first 10 networks)."""
    n_mc: int = 32
    error_prior: Callable[[Mapping[str, Any]], Mapping[str, float]] | None = None
    """Prior knowledge of a configuration's quality (e.g. published errors of the same cell on other
    tasks: :func:`hwtune.tabular.nb201_error_prior`): a kernel block of the quality surrogates, and the
    start-up's first choice."""
    elite_size: int = 300
    rescreen_every: int = 2
    # caches
    quality_hyper: dict[str, tuple[int, Any]] = field(default_factory=dict)
    elite: list[dict[str, Any]] = field(default_factory=list)
    screen: tuple[Any, int, np.ndarray] | None = None
    round: int = 0
    enum_cache: dict[str, Any] = field(default_factory=dict)
    """Per sampler: the enumeration's cost features, their distinct rows, quality inputs."""
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per hardware metric: (bias, spread) of the residuals of the measured proposals (:mod:`._calibration`), set each round."""
    prior_cache: dict[str, Any] = field(default_factory=dict)
    """The error prior's scale on a space that is not enumerated."""


class CandidateInputs:
    """Cost features and surrogate inputs of candidates (configurations, or rows of an enumeration)."""

    def __init__(self, space: SearchSpace, costs: DeviceCostModels | None, state: ProposalState, enum: Enumeration | None) -> None:
        self.space = space
        self.costs = costs
        self.state = state
        self.enum = enum
        self.encoder = Encoder(space)
        fz = costs.featurizer if costs is not None else None
        self.has_derived = fz is not None and fz.derived is not None
        self.n_param_features = fz.n_param_features if fz is not None else 0
        self.use_params = not self.has_derived or state.surrogate_inputs == "both"
        # a linear kernel's prior variance grows towards the corners of numeric params (EI would chase
        # them); over one-hot columns every configuration has the same norm, so the trend is safe
        self.all_categorical = all(isinstance(p, (CategoricalParam, FixedParam)) for _, p in space.items())
        if self.enum is not None and state.enum_cache.get("space") is not space:
            state.enum_cache = {"space": space}

    # -- cost features ------------------------------------------------------------------------
    def cost_features(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        assert self.costs is not None
        return self.costs.features(configs, validate=False)  # drawn from the space, or observed (validated then)

    def enum_cost_features(self) -> np.ndarray:
        """Cost features of every configuration of the enumeration (computed once)."""
        cache = self.state.enum_cache
        if "F" not in cache:
            assert self.enum is not None
            cache["F"] = self.cost_features(self.enum.configs)
        return cache["F"]

    # -- surrogate inputs ---------------------------------------------------------------------
    def blocks(self) -> list[int] | None:
        """Widths of the surrogate's kernel blocks (derived features, encoded params, prior), or None for one."""
        widths = ([self._n_derived()] if self.has_derived else []) + ([self.encoder.dim] if self.use_params else [])
        if self.state.error_prior is not None:
            widths.append(len(self._prior_scale()[0]))
        return widths if len(widths) > 1 else None

    def _prior_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and spread of the prior's features over the space (the enumeration, else 512 fixed
        random configurations), so that they enter the surrogate on the scale of its other inputs."""
        cache = self.state.enum_cache if self.enum is not None else self.state.prior_cache
        if "prior_scale" not in cache:
            sample = self.enum.configs if self.enum is not None else random_configs(self.space, 512, np.random.default_rng(0))
            P = self._raw_prior(sample)
            lo, hi = np.quantile(P, 0.02, axis=0), np.quantile(P, 0.98, axis=0)
            cache["prior_scale"] = (lo, np.where(hi > lo, hi - lo, 1.0))
        return cache["prior_scale"]

    def _raw_prior(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        prior = self.state.error_prior
        assert prior is not None
        rows = [prior(c) for c in configs]
        names = sorted(rows[0]) if rows else []
        return np.array([[float(r[k]) for k in names] for r in rows], dtype=float).reshape(len(rows), len(names))

    def prior(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The prior's features of configurations, scaled to about [0, 1] over the space (lower = better)."""
        lo, rg = self._prior_scale()
        return np.clip((self._raw_prior(configs) - lo) / rg, -0.5, 1.5)

    def prior_cutoff(self, q: float) -> float:
        """The ``q`` quantile over the space of the prior's mean scaled feature (the enumeration, else
        the fixed sample of :meth:`_prior_scale`)."""
        cache = self.state.enum_cache if self.enum is not None else self.state.prior_cache
        key = f"prior_q{q:g}"
        if key not in cache:
            if self.enum is not None:
                P = self.enum_prior()
            else:
                P = self.prior(random_configs(self.space, 512, np.random.default_rng(0)))
            cache[key] = float(np.quantile(P.mean(1), q))
        return cache[key]

    def enum_prior(self) -> np.ndarray:
        """:meth:`prior` of every configuration of the enumeration (computed once)."""
        cache = self.state.enum_cache
        if "prior" not in cache:
            assert self.enum is not None
            cache["prior"] = self.prior(self.enum.configs)
        return cache["prior"]

    def _n_derived(self) -> int:
        assert self.costs is not None
        return len(self.costs.featurizer.derived_range()[0])

    def _scaled_derived(self, F: np.ndarray) -> np.ndarray:
        assert self.costs is not None
        lo, rg = self.costs.featurizer.derived_range()
        return np.clip((F[:, self.n_param_features :] - lo) / rg, -0.5, 1.5)

    def surrogate(self, configs: Sequence[Mapping[str, Any]], F: np.ndarray | None = None) -> np.ndarray:
        """Surrogate inputs ``(n, k + d)`` of configurations (``F``: their cost features, if known)."""
        if self.enum is not None and configs:
            rows = [self.enum.row_of.get(config_tuple(c, list(self.space))) for c in configs]
            if all(r is not None for r in rows):
                return self.enum_surrogate()[np.array(rows, dtype=int)]
        parts = []
        if self.has_derived:
            parts.append(self._scaled_derived(self.cost_features(configs) if F is None else F))
        if self.use_params:
            parts.append(self.encoder.encode(configs))
        if self.state.error_prior is not None:
            parts.append(self.prior(configs))
        return np.hstack(parts) if len(parts) > 1 else parts[0]

    def enum_surrogate(self) -> np.ndarray:
        """Surrogate inputs of every configuration of the enumeration (computed once)."""
        cache = self.state.enum_cache
        if "X" not in cache:
            assert self.enum is not None
            parts = []
            if self.has_derived:
                parts.append(self._scaled_derived(self.enum_cost_features()))
            if self.use_params:
                shared = self.enum.encodings
                if "all" not in shared:
                    shared["all"] = self.encoder.encode(self.enum.configs)
                parts.append(shared["all"])
            if self.state.error_prior is not None:
                parts.append(self.enum_prior())
            cache["X"] = np.hstack(parts) if len(parts) > 1 else parts[0]
        return cache["X"]


@dataclass
class Pool:
    """Candidates of one round; ``rows`` their rows in the enumeration (None: drawn), ``must`` rows
    always kept (neighbours of the best, last round's best), ``full_screen`` whether every eligible
    row was screened (then the screen is cached)."""

    configs: list[dict[str, Any]]
    rows: np.ndarray | None
    must: set[int] = field(default_factory=set)
    full_screen: bool = True


def build_pool(
    space: SearchSpace,
    state: ProposalState,
    enum: Enumeration | None,
    exclude: set[tuple[Any, ...]],
    bad_architectures: set[tuple[Any, ...]],
    parents: list[dict[str, Any]],
    n_distinct_cost_rows: int,
    version: Any,
    rng: np.random.Generator,
) -> Pool:
    """Candidates to score: (a random subset of) the eligible space, the neighbours of the best
    networks, and the best-scored candidates of the previous round.

    Args:
        exclude: configurations tried or running; bad_architectures: hardware-relevant params
            measured over budget.
        n_distinct_cost_rows: distinct cost-model inputs of the enumeration (when larger than
            ``screen_limit`` a random subset is screened each round).
        version: the cost models' version (a cached screen is used only while it is unchanged).
    """
    names, hw = list(space), space.hardware_names() or list(space)
    extra = mutate_configs(space, parents, 30 * len(parents), rng) if parents else []
    extra += list(state.elite)
    if enum is None:
        n_rand = state.pool_size // 2
        base = random_configs(space, n_rand, rng) + mutate_configs(space, parents, state.pool_size - n_rand, rng)
        out, seen = [], set(exclude)
        for c in base + extra:
            k = config_tuple(c, names)
            if k in seen or config_tuple(c, hw) in bad_architectures:
                continue
            seen.add(k)
            out.append(c)
        return Pool(out, None)
    mask = np.ones(len(enum.configs), dtype=bool)
    for k in exclude:
        r = enum.row_of.get(k)
        if r is not None:
            mask[r] = False
    for h in bad_architectures:
        mask[enum.rows_of_architecture.get(h, [])] = False
    extra_rows = [enum.row_of.get(config_tuple(c, names)) for c in extra]
    must = {r for r in extra_rows if r is not None and mask[r]}
    rows = np.flatnonzero(mask)
    must_mask = np.zeros(len(enum.configs), dtype=bool)
    must_mask[sorted(must)] = True
    full = True
    if len(rows) > state.screen_limit and n_distinct_cost_rows > state.screen_limit:
        # every row is a distinct input of the cost model: screen a random subset each round
        pick = rng.random(len(rows)) < state.screen_limit / len(rows)
        rows = rows[pick | must_mask[rows]]
        full, state.screen = False, None
    elif state.screen is not None and state.screen[0] == version and state.round - state.screen[1] < state.rescreen_every:
        # between full screens, only the rows that were not clearly over budget at the last one
        keep = must_mask.copy()
        keep[state.screen[2]] = True
        rows = rows[keep[rows]]
        full = False
    return Pool([enum.configs[r] for r in rows], rows, must, full)
