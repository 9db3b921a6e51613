"""Gaussian-process cost model (scikit-learn ``GaussianProcessRegressor``)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from hwtune.costmodel._base import CostModel, Target, standardize, t_dof
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace

__all__ = ["GPCostModel"]


class GPCostModel(CostModel):
    """A Gaussian process on standardized features: linear kernel + RBF kernel + white noise.

    The linear part carries costs that add up (as in :class:`AdditiveCostModel`), the RBF part the
    interactions a linear model misses; their sizes and the noise are fitted by maximizing the
    marginal likelihood. The predictive is a Student-t whose degrees of freedom are the observations
    left after the effective number of parameters ``n - sigma_noise^2 tr(K^-1)``.

    Args:
        featurizer: a :class:`Featurizer` or a :class:`SearchSpace`.
        target: ``"linear"`` (default) or ``"log"``.
        ard: one RBF length scale per feature (more flexible; needs more observations).
        restarts: extra random starts of the hyperparameter optimizer.
        seed: seed of those restarts.
        derived: derived-feature callable, used only when ``featurizer`` is a space.
    """

    name: ClassVar[str] = "gp"
    default_target: ClassVar[Target] = "linear"

    def __init__(
        self,
        featurizer: Featurizer | SearchSpace,
        *,
        target: Target | None = None,
        ard: bool = False,
        restarts: int = 0,
        seed: int = 0,
        derived: DerivedFn | None = None,
    ) -> None:
        super().__init__(featurizer, target=target, derived=derived)
        if restarts < 0:
            raise ConfigError("restarts", f"must be >= 0, got {restarts}.")
        self.ard = bool(ard)
        self.restarts = int(restarts)
        self.seed = int(seed)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "ard": self.ard, "restarts": self.restarts, "seed": self.seed}

    def _kernel(self, d: int) -> Any:
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, WhiteKernel

        length = np.full(d, 3.0) if self.ard and d > 1 else 3.0
        return (
            ConstantKernel(1.0, (1e-3, 1e3)) * DotProduct(1.0, (1e-2, 1e2))
            + ConstantKernel(0.1, (1e-4, 1e1)) * RBF(length, (1e-1, 1e3))
            + WhiteKernel(1e-2, (1e-6, 1.0))
        )

    def _fit(self, F: np.ndarray, z: np.ndarray) -> None:
        from scipy.linalg import cho_solve
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        self.mean_, self.scale_ = standardize(F)
        A = (F - self.mean_) / self.scale_
        gp = GaussianProcessRegressor(
            self._kernel(A.shape[1]), normalize_y=True, n_restarts_optimizer=self.restarts, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(A, z)
        self.gp_ = gp
        noise = float(gp.kernel_.k2.noise_level)
        k_inv_trace = float(np.trace(cho_solve((gp.L_, True), np.eye(len(z)))))
        self.gamma_ = float(np.clip(len(z) - noise * k_inv_trace, 0.0, len(z)))
        self.dof_ = t_dof(len(z), self.gamma_)

    def _predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        A = (F - self.mean_) / self.scale_
        out_loc = np.empty(len(A))
        out_sd = np.empty(len(A))
        for s in range(0, len(A), 4096):  # bounded memory for large candidate sets
            loc, sd = self.gp_.predict(A[s : s + 4096], return_std=True)
            out_loc[s : s + 4096] = loc
            out_sd[s : s + 4096] = sd
        return out_loc, out_sd, np.full(len(A), self.dof_)

    def params(self) -> dict[str, Any]:
        """Fitted kernel and effective number of parameters (for reports)."""
        return {"kernel": str(self.gp_.kernel_), "effective_params": self.gamma_, "dof": self.dof_}
