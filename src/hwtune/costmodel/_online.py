"""Online use in a study: one device's measurements, a cost model per metric, screening, persistence."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hwtune.costmodel._base import CostModel, CostModelError, PredictiveDistribution, _json_default, read_json
from hwtune.costmodel._factory import COST_MODELS, make_cost_model, space_from_dict
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._transfer import Source
from hwtune.exceptions import ConfigError
from hwtune.space import METRICS, Constraint, SearchSpace, metric_info

__all__ = ["DeviceCostModels", "DEFAULT_SKIP_THRESHOLD", "default_model_for", "DEVICE_FORMAT"]

DEVICE_FORMAT = "hwtune-device-costs/1"
DEFAULT_SKIP_THRESHOLD = 0.001
"""Skip measuring a candidate when P(all hardware constraints hold) is below this (see docs/benchmarks.md)."""
PREDICTION_LEVEL = 0.95
"""Level of the interval stored as ``ci_low``/``ci_high`` of a prediction (like a measurement's 95 % CI)."""

_LOG_METRICS = frozenset({"throughput_sps", "power_w"})


ADDITIVE_DEFAULT = "additive-gp"
"""The model of costs that add up over layers (latency, energy, memory, size, counts) when none is
named: a GP with a linear ("costs add up") kernel on the family's derived features. Chosen by
measurement against ``additive`` (Bayesian ridge on params and derived features; docs/benchmarks.md,
"One cost model"): the same search regret within the noise of 10 seeds over 13 NB201 problems, with
10-25 % fewer measurements per search, and exact counts (parameter count, size) from 8 measurements
where ``additive`` is 47 % off; ``additive`` is better calibrated at 10 NB201 measurements on the worst
device."""


def default_model_for(metric: str, has_source: bool = False) -> str:
    """Model used for ``metric`` when none is named: ``transfer`` with a source; ``linear`` (log
    target) for rates and powers, which do not add up over layers; :data:`ADDITIVE_DEFAULT` otherwise."""
    if has_source:
        return "transfer"
    return "linear" if metric in _LOG_METRICS else ADDITIVE_DEFAULT


def measured_value(v: Any) -> float | None:
    """A stored measurement as a finite number: ``v`` a number or a measurement dict
    (``Measurement.to_dict()``); ``None`` when missing, not finite, not a number, or a prediction
    (``predicted:*``: a cost model must learn from measurements only)."""
    if isinstance(v, Mapping):
        if str(v.get("source", "")).startswith("predicted:"):
            return None
        v = v.get("value")
    if v is None or isinstance(v, bool):
        return None
    try:
        fv = float(v)
    except (TypeError, ValueError):
        return None
    return fv if math.isfinite(fv) else None


class DeviceCostModels:
    """A device's measured costs and one cost model per hardware metric, refitted as data arrive: the
    one cost model of a study, shared by the sampler's screen and the loop's skip.

    The study builds it and hands it to its sampler. Both feed it: the loop calls :meth:`observe`
    after each measurement, the sampler with every measured trial it reads from the storage (other
    workers' included); an architecture is observed once (its hardware key), so feeding it twice is
    harmless. The loop asks :meth:`should_skip` before measuring a proposal (skip only when it is
    almost certainly over budget) and stores :meth:`predictions` with the trial (source
    ``predicted:<model>``); the sampler screens its candidates with :meth:`features` and
    :meth:`log_prob_feasible`. Models are refitted lazily, when asked for a prediction after new
    observations.

    Args:
        space: the study's search space.
        metrics: hardware metrics to model (default: every hardware metric observed).
        model: a name of :data:`COST_MODELS` for every metric, a mapping metric -> name, or ``"auto"``
            (:func:`default_model_for`).
        derived: derived-feature callable of the model family (FLOPs, layer counts...).
        source: other devices' costs for transfer: one callable for every metric, or a mapping
            metric -> callable.
        device: device label stored with the data (checked on load).
        min_observations: fewer measurements than this give no model (no prediction, no screening,
            no skipping); 3, the fewest a model of the sampler's screen needed in issue 5's benchmark.
        skip_min_observations: :meth:`should_skip` skips nothing while a constrained metric has
            fewer measurements than this (skipping is final; the sampler's screen is not).
        skip_threshold: default threshold of :meth:`should_skip`.
        model_kwargs: extra settings for the models (``{"target": "log"}``...).
        constraints: the study's constraints; with more than ``max_points`` observations of a
            constrained metric, a model is fitted on the half nearest its bound plus a seeded random
            share of the others (the budget's edge is where predictions matter).
        max_points: most observations a model is fitted on.
    """

    def __init__(
        self,
        space: SearchSpace,
        metrics: Sequence[str] | None = None,
        model: str | Mapping[str, str] = "auto",
        *,
        derived: DerivedFn | None = None,
        source: Source | Mapping[str, Source] | None = None,
        device: str | None = None,
        min_observations: int = 3,
        skip_min_observations: int = 5,
        skip_threshold: float = DEFAULT_SKIP_THRESHOLD,
        model_kwargs: Mapping[str, Any] | None = None,
        constraints: Sequence[Constraint] = (),
        max_points: int = 300,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise ConfigError("space", f"expected a SearchSpace, got {type(space).__name__}.")
        for m in metrics or ():
            info = metric_info(m, "metrics")
            if info.kind != "hardware":
                raise ConfigError("metrics", f"{m!r} is not a hardware metric.", "cost models predict hardware metrics only.")
        if not 0.0 <= skip_threshold < 1.0:
            raise ConfigError("skip_threshold", f"must be in [0, 1), got {skip_threshold}.", "use a small probability such as 0.001.")
        if min_observations < 1:
            raise ConfigError("min_observations", f"must be >= 1, got {min_observations}.")
        names = [model] if isinstance(model, str) else list(model.values())
        for n in names:
            if n != "auto" and n not in COST_MODELS:
                raise ConfigError("model", f"unknown cost model {n!r}.", f"use 'auto' or one of {', '.join(COST_MODELS)}.")
        self.space = space
        self.metrics = list(metrics) if metrics is not None else None
        self.model_spec = model if isinstance(model, str) else dict(model)
        self.derived = derived
        self.source = source
        self.device = device
        self.min_observations = int(min_observations)
        self.skip_min_observations = int(skip_min_observations)
        self.skip_threshold = float(skip_threshold)
        self.model_kwargs = dict(model_kwargs or {})
        self.featurizer = Featurizer(space, derived)
        self.constraints = list(constraints)
        self.max_points = int(max_points)
        self._obs: dict[str, list[tuple[dict[str, Any], float]]] = {}
        self._keys: dict[str, set[str]] = {}
        self._models: dict[str, CostModel] = {}
        self._fitted_n: dict[str, int] = {}

    # -- data ---------------------------------------------------------------------------------
    def observe(self, params: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Record measurements of one candidate (once per architecture and metric: a second
        measurement of the same hardware-relevant params is ignored).

        Args:
            params: the candidate's params (training params are ignored).
            values: metric -> a number, or a measurement dict (``Measurement.to_dict()``); missing,
                non-finite and ``predicted:*`` values are ignored, as are non-hardware metrics.

        Returns:
            How many values were recorded.
        """
        hp = self.space.hardware_params(params)
        key = self.space.hardware_key(hp)
        checked = False
        n = 0
        for metric, v in values.items():
            if metric not in METRICS or METRICS[metric].kind != "hardware":
                continue
            if self.metrics is not None and metric not in self.metrics:
                continue
            fv = measured_value(v)
            if fv is None or key in self._keys.get(metric, ()):
                continue
            if not checked:
                self.featurizer.transform([hp])  # reject bad params now, with a precise error
                checked = True
            self._obs.setdefault(metric, []).append((hp, fv))
            self._keys.setdefault(metric, set()).add(key)
            n += 1
        return n

    def observed_metrics(self) -> list[str]:
        """Metrics with at least one observation."""
        return [m for m in self._obs if self._obs[m]]

    def n_observations(self, metric: str) -> int:
        return len(self._obs.get(metric, ()))

    def observations(self, metric: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Measured candidates (hardware params) and values, shape (n,), of ``metric``."""
        obs = self._obs.get(metric, [])
        return [dict(p) for p, _ in obs], np.array([v for _, v in obs], dtype=float)

    # -- models -------------------------------------------------------------------------------
    def model_name(self, metric: str) -> str:
        """Name of the model used for ``metric``."""
        spec = self.model_spec if isinstance(self.model_spec, str) else self.model_spec.get(metric, "auto")
        if spec == "auto":
            return default_model_for(metric, self._source_for(metric) is not None)
        return spec

    def _source_for(self, metric: str) -> Source | None:
        if self.source is None:
            return None
        if isinstance(self.source, Mapping):
            return self.source.get(metric)
        return self.source

    def model(self, metric: str) -> CostModel | None:
        """The model of ``metric``, refitted on all its observations; None below ``min_observations``."""
        n = self.n_observations(metric)
        if n < self.min_observations:
            return None
        if self._fitted_n.get(metric) != n:
            X, y = self._fit_set(metric)
            m = self._models.get(metric)
            if m is None or (m.target == "log" and np.any(y <= 0)):
                name = self.model_name(metric)
                kwargs = dict(self.model_kwargs)
                if "target" not in kwargs and np.any(y <= 0):
                    kwargs["target"] = "linear"  # a log target cannot hold zeros
                m = make_cost_model(name, self.featurizer, source=self._source_for(metric) if name == "transfer" else None, **kwargs)
            m.fit(X, y)  # the same instance is refitted: a GP warm-starts from its last hyperparameters
            self._models[metric] = m
            self._fitted_n[metric] = n
        return self._models[metric]

    def _fit_set(self, metric: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """The observations a model of ``metric`` is fitted on (at most ``max_points``)."""
        X, y = self.observations(metric)
        cap = self.max_points
        if len(y) <= cap:
            return X, y
        bound = next((c.bound for c in self.constraints if c.metric == metric and c.bound), None)
        rng = np.random.default_rng(len(y))
        closeness = np.abs(y / bound - 1.0) if bound else rng.random(len(y))
        order = np.argsort(closeness, kind="stable")
        near, far = order[: cap // 2], order[cap // 2 :]
        keep = np.sort(np.concatenate([near, rng.choice(far, cap - len(near), replace=False)]))
        return [X[i] for i in keep], y[keep]

    def version(self) -> tuple[Any, ...]:
        """Changes whenever a model's hyperparameters are re-optimized (a screen cached on the models is then stale)."""
        return tuple((m, self._fitted_n.get(m), getattr(model, "n_hyper_fits", self._fitted_n.get(m))) for m, model in sorted(self._models.items()))

    def model_names(self) -> dict[str, str]:
        """metric -> name of its model (``predicted:<name>``), for the metrics with a model now."""
        return {m: model.name for m, model in sorted(self._models.items())}

    # -- screening many candidates (the sampler) ------------------------------------------------
    def _input_columns(self, d: int) -> np.ndarray:
        """Columns of a feature matrix ``(n, d)`` that any of the models reads (each model class says
        which: :meth:`CostModel.input_columns`)."""
        metrics = self.metrics or self.observed_metrics()
        if not metrics:
            return np.arange(d)
        used = [COST_MODELS[self.model_name(m)].input_columns(self.featurizer, d, **self.model_kwargs) for m in metrics]
        return np.unique(np.concatenate(used))

    def distinct(self, F: np.ndarray, cache: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distinct model inputs among the rows of ``F`` ``(n, d)``: ``(F[representatives], inverse)``,
        so that predicting the representatives and indexing by ``inverse`` predicts every row. ``cache``
        (a dict kept with ``F``) stores the result."""
        cols = self._input_columns(F.shape[1])
        key = ("distinct", tuple(cols.tolist()))
        if cache is not None and key in cache:
            return cache[key]
        _, first, inv = np.unique(F[:, cols], axis=0, return_index=True, return_inverse=True)
        out = (F[first], inv.reshape(-1))
        if cache is not None:
            cache[key] = out
        return out

    def features(self, params_list: Sequence[Mapping[str, Any]], validate: bool = True) -> np.ndarray:
        """Feature matrix ``(n, d)`` of candidates, for :meth:`predictive_features` (compute it once
        for candidates screened again and again; ``validate=False`` for candidates drawn from the
        space itself)."""
        return self.featurizer.transform(params_list, validate=validate)

    def predictive_features(self, metric: str, F: np.ndarray) -> PredictiveDistribution | None:
        """Predictive distribution of ``metric`` at a feature matrix ``F`` ``(n, d)``; None while there is no model."""
        m = self.model(metric)
        return None if m is None else m.predictive_features(F)

    def log_prob_feasible(self, F: np.ndarray, constraints: Sequence[Constraint] | None = None) -> np.ndarray:
        """log P(every hardware constraint holds) ``(n,)`` at features ``F``, metrics taken as
        independent; a metric without a model counts as probability 1."""
        out = np.zeros(len(F))
        for c in self.constraints if constraints is None else constraints:
            if METRICS[c.metric].kind != "hardware":
                continue
            pd = self.predictive_features(c.metric, F)
            if pd is not None:
                out += pd.log_prob(c.bound, below=c.op in ("<=", "<"))
        return out

    def predictive(self, params_list: Sequence[Mapping[str, Any]], metric: str) -> PredictiveDistribution | None:
        """Predictive distribution of ``metric`` for candidates, or None while there is no model."""
        m = self.model(metric)
        if m is None:
            return None
        return m.predictive([self.space.hardware_params(p) for p in params_list])

    def prob_constraint(self, params_list: Sequence[Mapping[str, Any]], constraint: Constraint) -> np.ndarray:
        """P(constraint holds) for each candidate, shape (n,); NaN while the metric has no model."""
        pd = self.predictive(params_list, constraint.metric)
        if pd is None:
            return np.full(len(params_list), np.nan)
        p_below = pd.cdf(constraint.bound)
        return p_below if constraint.op in ("<=", "<") else 1.0 - p_below

    def prob_feasible(self, params_list: Sequence[Mapping[str, Any]], constraints: Sequence[Constraint]) -> np.ndarray:
        """P(all hardware constraints hold), shape (n,), treating metrics as independent.

        Constraints on quality metrics are ignored; a metric without a model counts as probability 1
        (so nothing is screened out on no evidence).
        """
        p = np.ones(len(params_list))
        for c in constraints:
            if METRICS[c.metric].kind != "hardware":
                continue
            pc = self.prob_constraint(params_list, c)
            p *= np.where(np.isnan(pc), 1.0, pc)
        return p

    def should_skip(self, params: Mapping[str, Any], constraints: Sequence[Constraint], threshold: float | None = None) -> bool:
        """Whether a candidate is so surely over budget that measuring it is a waste.

        True when P(all hardware constraints hold) < ``threshold`` (default :attr:`skip_threshold`).
        """
        t = self.skip_threshold if threshold is None else float(threshold)
        hw = [c for c in constraints if METRICS[c.metric].kind == "hardware"]
        if any(self.n_observations(c.metric) < self.skip_min_observations for c in hw):
            return False
        return bool(self.prob_feasible([params], hw)[0] < t)

    def predictions(self, params: Mapping[str, Any], metrics: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Predictions of one candidate as measurement dicts (``Measurement.to_dict`` layout).

        Each has ``source`` ``predicted:<model>``, ``value`` the median, ``ci_low``/``ci_high`` the 95 %
        predictive interval, and ``extra`` with ``mean``, ``std``, ``n_observations`` and ``device``.
        Metrics without a model are left out.
        """
        out: dict[str, dict[str, Any]] = {}
        for metric in metrics if metrics is not None else (self.metrics or self.observed_metrics()):
            m = self.model(metric)
            if m is None:
                continue
            pd = m.predictive([self.space.hardware_params(params)])
            lo, hi = pd.interval(PREDICTION_LEVEL)
            mean, std = pd.mean_std()
            extra: dict[str, Any] = {"mean": float(mean[0]), "std": float(std[0]), "n_observations": m.n_observations}
            if self.device:
                extra["device"] = self.device
            out[metric] = {
                "metric": metric,
                "value": float(pd.median()[0]),
                "unit": METRICS[metric].unit,
                "source": f"predicted:{m.name}",
                "ci_low": float(lo[0]),
                "ci_high": float(hi[0]),
                "note": f"{PREDICTION_LEVEL:.0%} predictive interval",
                "extra": extra,
            }
        return out

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data: device, space, settings and every observation (models are refitted on load)."""
        return {
            "format": DEVICE_FORMAT,
            "device": self.device,
            "space": self.space.to_dict(),
            "metrics": self.metrics,
            "model": self.model_spec,
            "model_kwargs": self.model_kwargs,
            "min_observations": self.min_observations,
            "skip_threshold": self.skip_threshold,
            "derived_name": self.featurizer.derived_name,
            "observations": {m: [{"params": p, "value": v} for p, v in obs] for m, obs in self._obs.items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write the device's measurements and settings as JSON; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))
        tmp.replace(p)  # never leave a half-written file behind
        return p

    @classmethod
    def load(
        cls,
        path: str | Path,
        space: SearchSpace | None = None,
        *,
        device: str | None = None,
        derived: DerivedFn | None = None,
        source: Source | Mapping[str, Source] | None = None,
    ) -> "DeviceCostModels":
        """Read a file written by :meth:`save`, for a later study on the same device and space.

        Args:
            path: the file.
            space: the new study's space; its hardware-relevant params must equal the saved ones.
            device: the new study's device label; must equal the saved one when both are given.
            derived: the derived-feature callable (required when the saved models used one).
            source: other devices' costs, for transfer models.

        Raises:
            CostModelError: unreadable file, or a different space, device or derived features.
        """
        p = Path(path)
        data = read_json(p, "device cost file", "device cost file")
        if data.get("format") != DEVICE_FORMAT:
            raise CostModelError(f"{p} is not a device cost file (format {data.get('format')!r}).")
        saved_space = space_from_dict(data["space"])
        if space is not None:
            mine = {n: space.to_dict()[n] for n in space.hardware_names()}
            theirs = {n: data["space"][n] for n in saved_space.hardware_names()}
            if mine != theirs:
                raise CostModelError(
                    f"{p} was saved for other hardware-relevant params ({sorted(theirs)}) than this study's "
                    f"({sorted(mine)}), or with other ranges; costs do not carry over. Start a new file."
                )
        else:
            space = saved_space
        if device and data.get("device") and device != data["device"]:
            raise CostModelError(f"{p} holds measurements of device {data['device']!r}, not {device!r}.")
        if data.get("derived_name") and derived is None:
            raise CostModelError(f"{p} was built with derived features {data['derived_name']!r}; pass derived= the same function.")
        out = cls(
            space,
            data.get("metrics"),
            data.get("model") or "auto",
            derived=derived,
            source=source,
            device=device or data.get("device"),
            min_observations=int(data.get("min_observations", 3)),
            skip_threshold=float(data.get("skip_threshold", DEFAULT_SKIP_THRESHOLD)),
            model_kwargs=data.get("model_kwargs") or {},
        )
        for metric, obs in (data.get("observations") or {}).items():
            for o in obs:
                out.observe(o["params"], {metric: o["value"]})
        return out
