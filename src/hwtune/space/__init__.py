"""Search spaces, the metric vocabulary, constraints and objectives (no training, no measuring)."""

from hwtune.space._constraints import Constraint, Objective, parse_constraint, parse_constraints, parse_objectives
from hwtune.space._metrics import HARDWARE_METRICS, METRICS, QUALITY_METRICS, MetricInfo, metric_info
from hwtune.space._params import CategoricalParam, Condition, FixedParam, FloatParam, IntParam, Param
from hwtune.space._space import SearchSpace

__all__ = [
    "SearchSpace",
    "IntParam",
    "FloatParam",
    "CategoricalParam",
    "FixedParam",
    "Param",
    "Condition",
    "Constraint",
    "Objective",
    "parse_constraint",
    "parse_constraints",
    "parse_objectives",
    "METRICS",
    "HARDWARE_METRICS",
    "QUALITY_METRICS",
    "MetricInfo",
    "metric_info",
]
