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
            cond = p.condition is not None
            if isinstance(p, CategoricalParam):
                index = {(type(c) is bool, c): j for j, c in enumerate(p.choices)}
                for i, cfg in enumerate(configs):
                    v = cfg.get(n)
                    if v is None:
                        continue
                    try:
                        j = index.get((type(v) is bool, v), -1)
                    except TypeError:  # unhashable value: not a choice
                        j = -1
                    if j >= 0:
                        X[i, c0 + j] = 1.0
                    if cond:
                        X[i, c0 + w] = 1.0
            else:
                for i, cfg in enumerate(configs):
                    v = cfg.get(n)
                    if v is None:
                        continue
                    X[i, c0] = _scale(p, v)  # type: ignore[arg-type]
                    if cond:
                        X[i, c0 + w] = 1.0
        return X


def _choice_index(p: CategoricalParam, v: Any) -> int:
    for j, c in enumerate(p.choices):
        if c == v and isinstance(c, bool) == isinstance(v, bool):
            return j
    return -1


def _scale(p: IntParam | FloatParam, v: Any) -> float:
    lo, hi = float(p.low), float(p.high)
    x = float(v)
    if p.log:
        return (math.log(max(x, 1e-300)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (x - lo) / (hi - lo)


def _unscale(p: IntParam | FloatParam, u: float) -> Any:
    u = min(1.0, max(0.0, u))
    lo, hi = float(p.low), float(p.high)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if p.log else lo + u * (hi - lo)
    if isinstance(p, IntParam):
        step = p.step
        k = round((x - p.low) / step)
        return int(min(p.high, max(p.low, p.low + k * step)))
    if p.step is not None:
        k = round((x - p.low) / p.step)
        x = p.low + k * p.step
    return float(min(p.high, max(p.low, x)))


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


def _draw(p: Any, rng: np.random.Generator) -> Any:
    if isinstance(p, CategoricalParam):
        return p.choices[int(rng.integers(len(p.choices)))]
    if isinstance(p, FixedParam):
        return p.value
    return _unscale(p, float(rng.random()))


def random_configs(space: SearchSpace, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` independent uniform draws (log-uniform for log params), conditions respected."""
    out = []
    for _ in range(n):
        cfg: dict[str, Any] = {}
        for name, p in space.items():
            if p.condition is not None and not p.condition.holds(cfg):
                continue
            cfg[name] = _draw(p, rng)
        out.append(cfg)
    return out


def mutate_configs(
    space: SearchSpace, parents: Sequence[Mapping[str, Any]], n: int, rng: np.random.Generator, *, scale: float = 0.15
) -> list[dict[str, Any]]:
    """``n`` neighbours of the parents (cycled): each searched param changes with probability
    ``1/d`` (at least one changes); a categorical takes another choice, a number moves by a normal step
    of ``scale`` of its (log) range. Params switched on by a condition get random values."""
    names = _searched(space)
    if not parents or not names:
        return []
    out = []
    d = len(names)
    for k in range(n):
        par = parents[k % len(parents)]
        change = rng.random(d) < 1.0 / d
        if not change.any():
            change[int(rng.integers(d))] = True
        chosen = {nm for nm, c in zip(names, change) if c}
        cfg: dict[str, Any] = {}
        for name, p in space.items():
            if p.condition is not None and not p.condition.holds(cfg):
                continue
            if isinstance(p, FixedParam):
                cfg[name] = p.value
            elif name not in par or par[name] is None:
                cfg[name] = _draw(p, rng)
            elif name in chosen:
                if isinstance(p, CategoricalParam):
                    others = [c for c in p.choices if not (c == par[name] and isinstance(c, bool) == isinstance(par[name], bool))]
                    cfg[name] = others[int(rng.integers(len(others)))] if others else par[name]
                else:
                    u0 = _scale(p, par[name])  # type: ignore[arg-type]
                    step = scale * float(rng.standard_normal())
                    v = _unscale(p, u0 + step)  # type: ignore[arg-type]
                    if v == par[name]:  # rounded or clipped back: step the other way, at least one grid step
                        if isinstance(p, IntParam):
                            grid = 1.0 / max(1, (p.high - p.low) // p.step)
                            step = math.copysign(max(abs(step), grid), step)
                        v = _unscale(p, u0 - step if 0.0 <= u0 - step <= 1.0 else u0 + step)  # type: ignore[arg-type]
                    cfg[name] = v
            else:
                cfg[name] = par[name]
        out.append(cfg)
    return out


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
