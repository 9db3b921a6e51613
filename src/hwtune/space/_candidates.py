"""Candidates of a search space for pool-based acquisition: encoding, enumeration, random draws, mutations.

A search space of hwtune is mixed (int, float, log-scaled, categorical) and conditional; the sampler
scores a finite pool of candidates instead of optimizing the acquisition by gradients. Spaces with few
enough points (every param categorical or integer, product <= ``enumerate_limit``) are enumerated once;
others get random draws plus mutations of the best points seen so far.

Encoding (one row per candidate, every column in [0, 1]): a one-hot block per categorical param, one
column per int/float param (scaled over [low, high], in log space for log params), and an "active"
column after each conditional param (inactive params have zeros in their own columns).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam, SearchSpace

__all__ = ["Encoder", "config_key", "enumerate_space", "random_configs", "mutate_configs", "space_size", "space_from_distributions"]


def config_key(params: Mapping[str, Any], names: Sequence[str] | None = None) -> str:
    """Canonical text of (a subset of) params: equal keys mean the same configuration.

    It matches ``SearchSpace.hardware_key`` when ``names`` is the space's hardware-relevant names.
    """
    sub = {n: params[n] for n in (names if names is not None else params) if n in params}
    return json.dumps(sub, sort_keys=True, default=str)


def _searched(space: SearchSpace) -> list[str]:
    return [n for n, p in space.items() if not isinstance(p, FixedParam)]


class Encoder:
    """Feature matrix of some params of a space (all searched params by default).

    Args:
        space: the search space.
        names: params to encode (fixed params are skipped).
    """

    def __init__(self, space: SearchSpace, names: Sequence[str] | None = None) -> None:
        self.space = space
        self.names = [n for n in (names if names is not None else _searched(space)) if not isinstance(space[n], FixedParam)]
        cols = 0
        self._layout: list[tuple[str, int, int]] = []  # name, first column, width
        for n in self.names:
            p = space[n]
            w = len(p.choices) if isinstance(p, CategoricalParam) else 1
            self._layout.append((n, cols, w))
            cols += w + (1 if p.condition is not None else 0)
        self.dim = cols

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(n, dim)`` features of ``n`` param dicts (missing params count as inactive)."""
        X = np.zeros((len(configs), self.dim))
        for n, c0, w in self._layout:
            p = self.space[n]
            col = [cfg.get(n) for cfg in configs]
            present = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
            if isinstance(p, CategoricalParam):
                j = _choice_indices(p, col)
                rows = np.flatnonzero(j >= 0)
                X[rows, c0 + j[rows]] = 1.0
            else:
                x = np.array([float(v) if v is not None else np.nan for v in col], dtype=float)
                X[present, c0] = _scale(p, x[present])  # type: ignore[arg-type]
            if p.condition is not None:
                X[present, c0 + w] = 1.0
        return X


def _choice_indices(p: CategoricalParam, values: Sequence[Any]) -> np.ndarray:
    """Index of each value among ``p.choices`` (``-1``: absent or not a choice; ``True`` is not ``1``)."""
    get = {(type(c) is bool, c): j for j, c in enumerate(p.choices)}.get
    try:
        return np.array([-1 if v is None else get((type(v) is bool, v), -1) for v in values], dtype=int)
    except TypeError:  # an unhashable value somewhere: not a choice
        out = np.full(len(values), -1, dtype=int)
        for i, v in enumerate(values):
            try:
                out[i] = -1 if v is None else get((type(v) is bool, v), -1)
            except TypeError:
                pass
        return out


def _scale(p: IntParam | FloatParam, v: Any) -> Any:
    """Position of value(s) ``v`` in the param's (log) range, 0 at ``low`` and 1 at ``high`` (arrays too)."""
    lo, hi = float(p.low), float(p.high)
    x = np.asarray(v, dtype=float)
    if p.log:
        u = (np.log(np.maximum(x, 1e-300)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    else:
        u = (x - lo) / (hi - lo)
    return float(u) if u.ndim == 0 else u


def _unscale(p: IntParam | FloatParam, u: Any) -> Any:
    """Inverse of :func:`_scale` (clipped to [0, 1], rounded to the param's grid): a value, or a list
    of values for an array ``u``."""
    arr = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    lo, hi = float(p.low), float(p.high)
    x = np.exp(math.log(lo) + arr * (math.log(hi) - math.log(lo))) if p.log else lo + arr * (hi - lo)
    if isinstance(p, IntParam):
        k = np.round((x - p.low) / p.step)
        out = np.clip(p.low + k * p.step, p.low, p.high).astype(np.int64)
    else:
        if p.step is not None:
            x = p.low + np.round((x - p.low) / p.step) * p.step
        out = np.clip(x, p.low, p.high).astype(float)
    return out.item() if out.ndim == 0 else out.tolist()


def _values(p: Any) -> list[Any] | None:
    """All values of a finite param (categorical or int), ``None`` for floats without step."""
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return list(range(p.low, p.high + 1, p.step))
    if isinstance(p, FloatParam) and p.step is not None:
        n = int(math.floor((p.high - p.low) / p.step + 1e-9)) + 1
        return [p.low + k * p.step for k in range(n)]
    return None


def space_size(space: SearchSpace) -> float:
    """Upper bound of the number of configurations (``inf`` with a continuous param)."""
    size = 1.0
    for n in _searched(space):
        vals = _values(space[n])
        if vals is None:
            return math.inf
        size *= len(vals) + (1 if space[n].condition is not None else 0)
    return size


def enumerate_space(space: SearchSpace, limit: int) -> list[dict[str, Any]] | None:
    """Every configuration (conditions respected, fixed params included), or ``None`` beyond ``limit``."""
    if space_size(space) > limit * 4:
        return None
    names = list(space)
    out: list[dict[str, Any]] = []

    def rec(i: int, cur: dict[str, Any]) -> bool:
        if len(out) > limit:
            return False
        if i == len(names):
            out.append(dict(cur))
            return True
        n = names[i]
        p = space[n]
        if p.condition is not None and not p.condition.holds(cur):
            return rec(i + 1, cur)
        if isinstance(p, FixedParam):
            cur[n] = p.value
            ok = rec(i + 1, cur)
            del cur[n]
            return ok
        vals = _values(p)
        assert vals is not None
        for v in vals:
            cur[n] = v
            if not rec(i + 1, cur):
                del cur[n]
                return False
        del cur[n]
        return True

    if any(_values(space[n]) is None for n in _searched(space)):
        return None
    return out if rec(0, {}) and len(out) <= limit else None


_MISSING = object()
"""Marks an inactive param in a column of candidates."""


def _draw(p: Any, n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` uniform draws of one param (log-uniform for log params)."""
    if isinstance(p, CategoricalParam):
        return [p.choices[int(i)] for i in rng.integers(len(p.choices), size=n)]
    if isinstance(p, FixedParam):
        return [p.value] * n
    return _unscale(p, rng.random(n))


def _active(p: Any, columns: Mapping[str, list[Any]], n: int) -> list[bool]:
    """Whether ``p`` is active in each of ``n`` candidates, given the columns of the earlier params
    (the semantics of :meth:`hwtune.space.Condition.holds`, evaluated over a column)."""
    cond = p.condition
    if cond is None:
        return [True] * n
    ref = columns.get(cond.param)
    if ref is None:
        return [False] * n
    test = cond.test
    return [v is not _MISSING and test(v) for v in ref]


def _to_configs(columns: Mapping[str, list[Any]], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, col in columns.items():
        for cfg, v in zip(out, col):
            if v is not _MISSING:
                cfg[name] = v
    return out


def random_configs(space: SearchSpace, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` independent uniform draws (log-uniform for log params), conditions respected.

    Drawn a param at a time over all ``n`` candidates (vectorized: a pool of thousands takes
    milliseconds, which keeps a proposal on a continuous space within its time budget)."""
    columns: dict[str, list[Any]] = {}
    for name, p in space.items():
        act = _active(p, columns, n)
        columns[name] = [v if a else _MISSING for v, a in zip(_draw(p, n, rng), act)]
    return _to_configs(columns, n)


def mutate_configs(
    space: SearchSpace, parents: Sequence[Mapping[str, Any]], n: int, rng: np.random.Generator, *, scale: float = 0.15
) -> list[dict[str, Any]]:
    """``n`` neighbours of the parents (cycled): each searched param changes with probability
    ``1/d`` (at least one changes); a categorical takes another choice, a number moves by a normal step
    of ``scale`` of its (log) range. Params switched on by a condition get random values.

    Vectorized like :func:`random_configs`: a param at a time over all ``n`` neighbours."""
    names = _searched(space)
    if not parents or not names or n <= 0:
        return []
    d = len(names)
    which = np.arange(n) % len(parents)
    which_list = which.tolist()
    # only params the parent has can change (a param its conditions switched off would change nothing)
    has_param = np.array([[pp.get(nm) is not None for nm in names] for pp in parents], dtype=bool)[which]
    change = (rng.random((n, d)) < 1.0 / d) & has_param
    none = np.flatnonzero(~change.any(1))
    if len(none):  # at least one change: a random param of the parent's
        pick = np.argmax(rng.random((len(none), d)) * has_param[none], axis=1)
        change[none, pick] = has_param[none, pick]
    columns: dict[str, list[Any]] = {}
    for name, p in space.items():
        act = _active(p, columns, n)
        if isinstance(p, FixedParam):
            columns[name] = [p.value if a else _MISSING for a in act]
            continue
        ch = change[:, names.index(name)]
        per_parent = [pp.get(name) for pp in parents]
        par = [per_parent[k] for k in which_list]
        has = np.array([v is not None for v in per_parent], dtype=bool)[which]
        fresh = _draw(p, n, rng)  # for params the parent lacks (switched on by a condition)
        if isinstance(p, CategoricalParam):
            k = len(p.choices)
            j = _choice_indices(p, per_parent)[which]
            shift = rng.integers(1, k, size=n) if k > 1 else np.zeros(n, dtype=int)
            moved = [p.choices[i] if jj >= 0 else f for i, jj, f in zip(((j + shift) % k).tolist(), j.tolist(), fresh)]
        else:
            u_par = np.array([_scale(p, float(v)) if v is not None else 0.5 for v in per_parent])  # type: ignore[arg-type]
            u0 = u_par[which]
            step = scale * rng.standard_normal(n)
            moved = _unscale(p, u0 + step)  # type: ignore[arg-type]
            stuck = np.flatnonzero(ch & has & np.array([m == v for m, v in zip(moved, par)], dtype=bool))
            if len(stuck):  # rounded or clipped back: step the other way, at least one grid step
                st = step[stuck]
                if isinstance(p, IntParam):
                    grid = 1.0 / max(1, (p.high - p.low) // p.step)
                    st = np.copysign(np.maximum(np.abs(st), grid), st)
                back = u0[stuck] - st
                again = _unscale(p, np.where((back >= 0.0) & (back <= 1.0), back, u0[stuck] + st))  # type: ignore[arg-type]
                for i, v in zip(stuck.tolist(), again):
                    moved[i] = v
        columns[name] = [
            _MISSING if not a else (m if c else v) if h else f
            for a, h, c, m, v, f in zip(act, has.tolist(), ch.tolist(), moved, par, fresh)
        ]
    return _to_configs(columns, n)


def space_from_distributions(dists: Mapping[str, Any], seen: Sequence[Mapping[str, Any]] = ()) -> SearchSpace:
    """A search space from Optuna distributions (when a study gives no hwtune space).

    A param that some finished trials lack is made conditional on a categorical param when the
    trials show which value switches it on (``kind == 'rbf'``) or off (``kind != 'lin'``), so that
    the sampler encodes it as inactive where the objective does not ask for it.
    """
    import optuna.distributions as od

    from hwtune.space import Condition

    def param(d: Any, cond: Any = None) -> Any:
        if isinstance(d, od.CategoricalDistribution):
            return CategoricalParam(role="architecture", condition=cond, choices=tuple(d.choices))
        if isinstance(d, od.IntDistribution):
            if d.low == d.high:
                return FixedParam(role="architecture", condition=cond, value=d.low)
            return IntParam(role="architecture", condition=cond, low=d.low, high=d.high, log=d.log, step=d.step)
        if isinstance(d, od.FloatDistribution):
            if d.low == d.high:
                return FixedParam(role="architecture", condition=cond, value=d.low)
            return FloatParam(role="architecture", condition=cond, low=d.low, high=d.high, log=d.log, step=d.step)
        return None

    always = [n for n in dists if seen and all(n in t for t in seen)] if seen else list(dists)
    cats = [n for n in always if isinstance(dists[n], od.CategoricalDistribution)]
    conds: dict[str, Any] = {}
    for n in dists:
        if n in always:
            continue
        for c in cats:
            on = {repr(t[c]) for t in seen if n in t}
            off = {repr(t[c]) for t in seen if n not in t}
            if on & off:
                continue
            vals = {repr(v): v for v in dists[c].choices}
            if len(on) == 1:
                conds[n] = Condition(c, "==", vals[next(iter(on))])
                break
            if len(off) == 1:
                conds[n] = Condition(c, "!=", vals[next(iter(off))])
                break
    order = cats + [n for n in always if n not in cats] + [n for n in dists if n not in always]
    params = {n: param(dists[n], conds.get(n)) for n in order}
    return SearchSpace({n: p for n, p in params.items() if p is not None})
