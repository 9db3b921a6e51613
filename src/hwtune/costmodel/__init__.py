"""Cost models: predict a candidate's hardware costs from its hardware-relevant params, with uncertainty.

``costmodel`` never measures: it learns from measurements the study hands it (and from other devices'
costs of the same candidates), predicts the cost of new candidates as a distribution, and reports its
own accuracy. Every prediction is labelled ``predicted:<model name>``.

``hwtune costmodel ...`` lives in the CLI layer (:mod:`hwtune.cli._costmodel_cmd`).
"""

from __future__ import annotations

from hwtune.costmodel._additive_gp import AdditiveGPCostModel
from hwtune.costmodel._base import CostModel, CostModelError, PredictiveDistribution
from hwtune.costmodel._evaluate import cross_validate, feasibility_errors, prediction_metrics, spearman
from hwtune.costmodel._factory import COST_MODELS, load_cost_model, make_cost_model, model_from_dict, space_from_dict
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._gp import GPCostModel
from hwtune.costmodel._numpy_gp import GaussianProcess, GPHyper
from hwtune.costmodel._linear import AdditiveCostModel, LinearCostModel
from hwtune.costmodel._nb201 import (
    NB201_DERIVED_FULL_KEYS,
    NB201_DERIVED_KEYS,
    nb201_derived,
    nb201_derived_full,
    nb201_params,
    nb201_space,
)
from hwtune.costmodel._online import DEFAULT_SKIP_THRESHOLD, DeviceCostModels, default_model_for
from hwtune.costmodel._transfer import CachedSource, ModelSource, Source, TableSource, TransferCostModel

__all__ = [
    "CostModel",
    "CostModelError",
    "PredictiveDistribution",
    "Featurizer",
    "DerivedFn",
    "LinearCostModel",
    "AdditiveCostModel",
    "GPCostModel",
    "AdditiveGPCostModel",
    "GaussianProcess",
    "GPHyper",
    "TransferCostModel",
    "TableSource",
    "ModelSource",
    "CachedSource",
    "Source",
    "COST_MODELS",
    "make_cost_model",
    "model_from_dict",
    "load_cost_model",
    "space_from_dict",
    "cross_validate",
    "prediction_metrics",
    "feasibility_errors",
    "spearman",
    "DeviceCostModels",
    "DEFAULT_SKIP_THRESHOLD",
    "default_model_for",
    "nb201_space",
    "nb201_params",
    "nb201_derived",
    "nb201_derived_full",
    "NB201_DERIVED_KEYS",
    "NB201_DERIVED_FULL_KEYS",
]
