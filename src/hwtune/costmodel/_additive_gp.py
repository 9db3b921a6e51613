"""The additive-kernel GP cost model: per-layer costs that add up, plus a GP for what does not.

A Gaussian process (:class:`~hwtune.costmodel._numpy_gp.GaussianProcess`, NumPy) with a linear kernel
over its inputs (Bayesian linear regression: the "sum of per-layer costs" of latency lookup tables,
which extrapolates sensibly from a few measurements) plus a Matern-5/2 ARD kernel for interactions.
It models the cost itself, not its logarithm: on the 27 HELP devices of the NB201 table a GP on raw
latency classifies feasibility better than one on log latency, for every device tried
(docs/benchmarks.md, "What was tried": pixel3 at 40 measurements, Brier score 0.073 vs 0.110),
because per-operation latencies add up. It was the sampler's own screen in issue 5 and is now one of
the library's models and the default of a study's one cost model for costs that add up, by
measurement (docs/benchmarks.md, "One cost model").

Inputs: the family's derived features alone when there are any (``inputs="derived"``: with few
measurements, fewer and more telling inputs predict better: cell features beat the one-hot encoding on
NB201, fpga at 15 measurements, Brier 0.033 vs 0.213), else the encoded params; ``inputs="both"``
uses both, each with its own kernel. Derived features are scaled to [0, 1] over the search space (so
that the lengthscale prior means the same whatever their units).

The GP's hyperparameters are re-optimized when the data grew by ``refit_every`` (10 %) since the last
optimization, or below 8 points; in between the model only conditions on the new data (a Cholesky
factorization), which keeps a proposal fast. The predictive is a Student-t whose degrees of freedom
are the observations left after the effective number of fitted parameters (as for the other models).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from hwtune.costmodel._base import CostModel, Target, t_dof
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._numpy_gp import GaussianProcess, GPHyper
from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace

__all__ = ["AdditiveGPCostModel"]

Inputs = Literal["derived", "both", "params"]


class AdditiveGPCostModel(CostModel):
    """GP with a linear (additive) kernel plus Matern-5/2 on the features; raw target by default.

    Args:
        featurizer: a :class:`Featurizer` (with the family's derived features when it has them) or a
            :class:`SearchSpace`.
        target: ``"linear"`` (default) or ``"log"``.
        inputs: ``"derived"`` (derived features alone when there are any, else the params),
            ``"both"`` or ``"params"``.
        refit_every: re-optimize the hyperparameters when the data grew by this share.
        derived: derived-feature callable, used only when ``featurizer`` is a space.
    """

    name: ClassVar[str] = "additive-gp"
    default_target: ClassVar[Target] = "linear"

    def __init__(
        self,
        featurizer: Featurizer | SearchSpace,
        *,
        target: Target | None = None,
        inputs: Inputs = "derived",
        refit_every: float = 0.1,
        derived: DerivedFn | None = None,
    ) -> None:
        super().__init__(featurizer, target=target, derived=derived)
        if inputs not in ("derived", "both", "params"):
            raise ConfigError("inputs", f"unknown value {inputs!r}.", "use 'derived', 'both' or 'params'.")
        if not self.featurizer.include_params and inputs != "derived":
            raise ConfigError("inputs", f"{inputs!r} needs the param columns, but the featurizer leaves them out.", "use inputs='derived'.")
        self.inputs: Inputs = inputs
        self.refit_every = float(refit_every)
        self._gp: GaussianProcess | None = None
        self._hyper: GPHyper | None = None
        self._n_fit = 0
        self.n_hyper_fits = 0
        """How many times the hyperparameters were optimized (a screen cached on this model is stale when it changes)."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "inputs": self.inputs, "refit_every": self.refit_every}

    # -- inputs -------------------------------------------------------------------------------
    @classmethod
    def input_columns(cls, featurizer: Featurizer, d: int, **config: Any) -> np.ndarray:
        n_par = featurizer.n_param_features
        if d > n_par and config.get("inputs", "derived") == "derived":
            return np.arange(n_par, d)  # the derived features alone
        return np.arange(d)

    def _columns(self, F: np.ndarray) -> tuple[np.ndarray, list[int] | None]:
        """GP inputs ``(n, k)`` from featurizer rows ``(n, d)``, and the kernel blocks."""
        fz = self.featurizer
        n_par = fz.n_param_features
        has_derived = F.shape[1] > n_par
        P = F[:, :n_par]
        if not has_derived:
            return P, None
        lo, rg = fz.derived_range()
        D = np.clip((F[:, n_par:] - lo) / rg, -0.5, 1.5)
        if self.inputs == "params" and n_par:
            return P, None
        if self.inputs == "both" and n_par:
            return np.hstack([D, P]), [D.shape[1], n_par]
        return D, None

    # -- fitting and predicting ---------------------------------------------------------------
    def _fit(self, F: np.ndarray, z: np.ndarray) -> None:
        X, blocks = self._columns(np.asarray(F, dtype=float))
        n = len(z)
        gp = GaussianProcess(blocks=blocks, linear=True, noise_prior=1e-3)
        hyper = self._hyper
        if hyper is not None and (hyper.log_ls.shape[0] != X.shape[1] or len(hyper.log_sf2) != len(blocks or [0])):
            hyper = None
        if hyper is None or n < 8 or n >= self._n_fit + max(2, self.refit_every * self._n_fit):
            gp.fit(X, z, warm=hyper)
            self._hyper, self._n_fit = gp.hyper, n
            self.n_hyper_fits += 1
        else:
            gp.fit_fixed(X, z, hyper)
        self._gp = gp
        # effective number of fitted parameters n - noise * tr(K^-1) (tr(K^-1) = |L^-1|_F^2): the
        # predictive is a Student-t with the observations left as degrees of freedom, so that with few
        # measurements its tails are honest (k = 10 on NB201: 90 % intervals held 77 % of the values
        # with a Gaussian; see docs/benchmarks.md "One cost model")
        noise = float(np.exp(gp.hyper.log_sn2)) + gp.min_noise  # type: ignore[union-attr]
        gamma = float(np.clip(n - noise * float(np.sum(gp._Linv**2)), 0.0, n))
        self.dof_ = t_dof(n, gamma)

    def _predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._gp is not None
        X, _ = self._columns(np.asarray(F, dtype=float))
        mu, sd = self._gp.predict(X)
        return mu, np.sqrt(sd * sd + self._gp.noise_var), np.full(len(mu), self.dof_)

    def params(self) -> dict[str, Any]:
        """Fitted hyperparameters (for reports)."""
        if self._gp is None or self._gp.hyper is None:
            return {}
        h = self._gp.hyper
        return {"lengthscales": np.exp(h.log_ls).tolist(), "noise_var": self._gp.noise_var, "linear": h.log_lin is not None}
