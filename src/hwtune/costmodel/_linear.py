"""Bayesian linear cost models: the HyperPower-style baseline (log target) and the additive model."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from hwtune.costmodel._base import CostModel, Target, standardize, t_dof

__all__ = ["LinearCostModel", "AdditiveCostModel", "BayesLinear"]


class BayesLinear:
    """Bayesian ridge regression (scikit-learn ``BayesianRidge``) on standardized features.

    The prior precision of the weights and the noise precision are chosen by maximizing the evidence;
    the predictive is a Student-t whose degrees of freedom are the observations left after the
    effective number of fitted parameters (``gamma``), which widens intervals when few points fit
    many weights.
    """

    def fit(self, F: np.ndarray, z: np.ndarray) -> "BayesLinear":
        """Fit on F (n, d) and z (n,)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import BayesianRidge

        self.mean_, self.scale_ = standardize(F)
        A = (F - self.mean_) / self.scale_
        # standardize the target too: BayesianRidge starts its evidence search at weight precision 1,
        # so a target in the 1e5 range (a parameter count) falls into the all-noise optimum
        self.z_mean_ = float(np.mean(z))
        self.z_scale_ = float(np.std(z)) if float(np.std(z)) > 1e-12 * max(1.0, abs(self.z_mean_)) else 1.0
        self.model_ = BayesianRidge(fit_intercept=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(A, (z - self.z_mean_) / self.z_scale_)
        lam = float(self.model_.lambda_)
        gamma = A.shape[1] - lam * float(np.trace(self.model_.sigma_))
        self.gamma_ = float(np.clip(gamma, 0.0, A.shape[1]))
        self.dof_ = t_dof(len(z), self.gamma_)
        return self

    def predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent (loc, scale, dof), each (m,), for F (m, d)."""
        A = (F - self.mean_) / self.scale_
        loc, sd = self.model_.predict(A, return_std=True)
        return loc * self.z_scale_ + self.z_mean_, sd * self.z_scale_, np.full(len(loc), self.dof_)

    def params(self) -> dict[str, Any]:
        """Fitted hyperparameters (for reports)."""
        return {
            "noise_std": float(self.z_scale_ / np.sqrt(self.model_.alpha_)),
            "weight_std": float(self.z_scale_ / np.sqrt(self.model_.lambda_)),
            "effective_params": self.gamma_,
            "dof": self.dof_,
        }


class LinearCostModel(CostModel):
    """HyperPower-style baseline: a linear model of log(metric) on the features.

    Bayesian ridge regression (regularization chosen by evidence) on standardized features; the
    predictive is a Student-t in log space, so ``predict`` returns lognormal-style moments and
    ``median`` the point prediction (see :class:`PredictiveDistribution`).
    """

    name: ClassVar[str] = "linear"
    default_target: ClassVar[Target] = "log"

    def _fit(self, F: np.ndarray, z: np.ndarray) -> None:
        self.engine_ = BayesLinear().fit(F, z)

    def _predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.engine_.predict(F)


class AdditiveCostModel(LinearCostModel):
    """A linear model of the metric itself (not its log): costs that add up over layers.

    Latency, energy, FLOPs and parameters of a network are sums over its layers, so with derived
    features that count layers by type (or FLOPs) a linear model of the raw value is close to exact.
    The predictive is a Student-t in metric units. Chosen by measurement on the NB201 table as the
    most accurate single-device model (docs/benchmarks.md).
    """

    name: ClassVar[str] = "additive"
    default_target: ClassVar[Target] = "linear"
