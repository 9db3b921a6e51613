"""The sampler's own cost model: a GP fitted on the study's measurements of one hardware metric.

``HwSampler`` uses it by default rather than ``hwtune.costmodel``'s models because it measured better
inside the search (docs/benchmarks.md, "What was tried": the library's additive model was better on pixel3,
much worse on fpga at 50 trained, at 5x the proposal time); ``HwSampler(cost_model="additive" | "linear" | "gp")`` uses those.

Interface (shared with ``hwtune.costmodel`` models, so that one can replace the other):

- ``fit(configs, y)``: ``configs`` a list of n param dicts (hardware-relevant params at least), ``y``
  shape ``(n,)`` measured values of one hardware metric;
- ``predict(configs) -> (mean, std)``, each shape ``(m,)``, in the metric's unit;
- ``prob_below(configs, bound) -> (m,)``: probability that the cost is at most ``bound``.

The GP models the cost itself, not its logarithm: on the 27 HELP devices of the NB201 table, a GP on
the raw latency classifies feasibility better than one on log latency, for every device tried
(docs/benchmarks.md, "What was tried": pixel3 at 40 measurements, Brier score 0.073 vs 0.110),
because per-operation latencies add up.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from scipy.special import ndtr

from hwtune.search._candidates import Encoder
from hwtune.search._gp import GaussianProcess, GPHyper
from hwtune.space import SearchSpace

__all__ = ["CostModel", "MeasuredCostModel"]


class CostModel(Protocol):
    """What the sampler needs from a cost model of one hardware metric."""

    def fit(self, configs: Sequence[Mapping[str, Any]], y: np.ndarray) -> Any: ...

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]: ...


class MeasuredCostModel:
    """GP regression of one hardware metric on the encoded hardware-relevant params.

    Args:
        space: the search space (its ``architecture``/``compression`` params are the inputs).
        refit_every: refit hyperparameters when the data grew by this share since the last fit
            (otherwise only condition on the new data; keeps a proposal fast).
    """

    source = "predicted:hwtune-gp"

    def __init__(self, space: SearchSpace, *, refit_every: float = 0.1, linear: bool = True) -> None:
        self.linear = linear
        names = space.hardware_names() or list(space)
        self.encoder = Encoder(space, names)
        self.refit_every = refit_every
        self._gp: GaussianProcess | None = None
        self._hyper: GPHyper | None = None
        self._n_fit = 0

    @property
    def n(self) -> int:
        return 0 if self._gp is None else self._gp.n

    def fit_encoded(self, X: np.ndarray, y: np.ndarray, blocks: list[int] | None = None) -> "MeasuredCostModel":
        """Fit on already encoded inputs ``(n, d)`` (the sampler's fast path; ``blocks``: kernel blocks)."""
        n = len(y)
        gp = GaussianProcess(blocks=blocks, linear=self.linear, noise_prior=1e-3)
        if self._hyper is not None and (self._hyper.log_ls.shape[0] != X.shape[1] or len(self._hyper.log_sf2) != len(blocks or [0])):
            self._hyper = None
        if self._hyper is None or n >= self._n_fit + max(2, self.refit_every * self._n_fit) or n < 8:
            gp.fit(X, y, warm=self._hyper)
            self._hyper, self._n_fit = gp.hyper, n
        else:
            gp.fit_fixed(X, y, self._hyper)
        self._gp = gp
        return self

    def fit(self, configs: Sequence[Mapping[str, Any]], y: np.ndarray) -> "MeasuredCostModel":
        return self.fit_encoded(self.encoder.encode(configs), np.asarray(y, dtype=float))

    def predict_encoded(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(m,)`` (noise included) at encoded inputs ``(m, d)``."""
        assert self._gp is not None, "fit the cost model first"
        mu, sd = self._gp.predict(X)
        return mu, np.sqrt(sd * sd + self._gp.noise_var)

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_encoded(self.encoder.encode(configs))

    def prob_below(self, configs: Sequence[Mapping[str, Any]], bound: float) -> np.ndarray:
        mu, sd = self.predict(configs)
        return ndtr((bound - mu) / np.maximum(sd, 1e-12))
