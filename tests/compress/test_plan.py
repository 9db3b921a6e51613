"""The compression params of a trial: names, roles, checks naming the field (issue 14, part 5)."""

from __future__ import annotations

import pytest

from hwtune.compress import COMPRESSION_PARAMS, CompressionPlan, compression_plan, compression_roles
from hwtune.exceptions import ConfigError


def test_no_compression_param_is_no_plan_and_zeros_are_inactive() -> None:
    assert compression_plan({"filters_0": 8, "lr": 0.1}) is None
    plan = compression_plan({"prune_ratio": 0.0, "quantize": "none", "sparsity": 0})
    assert plan is not None and not plan.active and not plan.fine_tunes


def test_a_plan_reads_every_param() -> None:
    plan = CompressionPlan.from_params({"prune_ratio": 0.5, "quantize": "int8", "sparsity": 0.3, "prune_importance": "l2",
                                        "distill_beta": 0.7, "distill_T": 2, "finetune_epochs": 3, "finetune_lr": 0.01})
    assert (plan.prune_ratio, plan.sparsity, plan.quantize, plan.prune_importance) == (0.5, 0.3, "int8", "l2")
    assert (plan.distill_beta, plan.distill_T, plan.finetune_epochs, plan.finetune_lr) == (0.7, 2.0, 3, 0.01)
    assert plan.active and plan.int8 and plan.prunes_channels and plan.prunes_weights and plan.fine_tunes


def test_cost_changing_params_are_compression_the_others_training() -> None:
    roles = compression_roles(list(COMPRESSION_PARAMS) + ["filters_0"])
    assert {n for n, r in roles.items() if r == "compression"} == {"prune_ratio", "prune_alpha", "sparsity", "quantize"}
    assert "filters_0" not in roles


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"prune_ratio": 1.0}, "prune_ratio"),
        ({"prune_ratio": -0.1}, "prune_ratio"),
        ({"prune_ratio": "half"}, "prune_ratio"),
        ({"prune_ratio": float("nan")}, "prune_ratio"),
        ({"prune_alpha": True}, "prune_alpha"),
        ({"sparsity": 1.5}, "sparsity"),
        ({"prune_alpha": 0.1, "sparsity": 0.5}, "sparsity"),
        ({"quantize": "int4"}, "quantize"),
        ({"prune_importance": "l3"}, "prune_importance"),
        ({"distill_beta": 2}, "distill_beta"),
        ({"distill_T": 0}, "distill_T"),
        ({"finetune_epochs": -1}, "finetune_epochs"),
        ({"finetune_epochs": 1.5}, "finetune_epochs"),
        ({"finetune_lr": 0}, "finetune_lr"),
    ],
)
def test_a_bad_value_names_its_field_and_the_fix(params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        CompressionPlan.from_params(params, field_prefix="space.")
    assert e.value.field == f"space.{field}"
    assert e.value.fix
