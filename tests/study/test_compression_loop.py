"""Compression in the loop (issue 14, part 5): a compressed network is measured before training, one
over budget is never trained, and a trained one carries both measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hwtune.exceptions import ConfigError
from hwtune.study import load_model, parse_study_file, study_from_file
from hwtune.vocabulary import COMPRESSION_ATTR, FINAL_HARDWARE_ATTR, read_trial
from tests._tiny_digits import tiny_digits_spec

pytest.importorskip("torch_pruning")


def _spec(tmp_path: Path, **space: Any) -> dict[str, Any]:
    s = tiny_digits_spec(tmp_path / "c.db", "compress", trials=4, keep_models="all", runtime="onnxruntime")
    s["space"] = {"conv_layers": 1, "filters_0": 24, "kernel_0": 3, "dense_units": 32, "lr": 0.1, "batch_size": 64, "epochs": 1,
                  "prune_ratio": {"type": "categorical", "choices": [0.0, 0.75]}, "finetune_epochs": 1, "distill_beta": 0.5, **space}
    # the full network has 12,890 parameters, the one with 75 % of its channels pruned 926
    s["constraints"] = ["params <= 5000"]
    return s


def test_an_over_budget_compressed_network_is_never_trained_and_a_trained_one_carries_both_measurements(tmp_path: Path) -> None:
    study, build, trainer = study_from_file(parse_study_file(_spec(tmp_path)))
    trained_params: list[dict[str, Any]] = []
    plans: list[Any] = []

    def train(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
        trained_params.append(dict(params))
        plans.append(ctx.compression)
        return trainer(model, params, ctx)

    opt = study.open()
    for r in (0.0, 0.75, 0.0, 0.75):
        opt.enqueue_trial({"prune_ratio": r})
    study.optimize(build, train, n_trials=4)
    stored = [read_trial(t) for t in study.optuna_study.trials]
    assert [s.status for s in stored] == ["over_budget", "trained", "over_budget", "trained"]
    assert [p["prune_ratio"] for p in trained_params] == [0.75, 0.75]  # the trainer never saw an unpruned (over-budget) network
    assert plans[0] is not None and plans[0].prune_ratio == 0.75
    over, ok = stored[0], stored[1]
    assert over.hardware["params"]["value"] == 12890 and ok.hardware["params"]["value"] == 926  # measured compressed, untrained
    t = study.optuna_study.trials[1]
    final = t.user_attrs[FINAL_HARDWARE_ATTR]
    assert final["params"]["value"] == 926 and final["latency_ms"]["source"].startswith("measured:")
    comp = t.user_attrs[COMPRESSION_ATTR]
    assert comp["plan"]["prune_ratio"] == 0.75 and "error_before" in comp and len(comp["finetune"]["losses"]) == 1
    assert ok.metrics["error"] != comp["error_before"] or ok.metrics["test_error"] != comp["test_error_before"]
    summary = study.summary()
    assert summary.compression_check["params"]["n"] == 2
    assert summary.compression_check["params"]["max_abs_rel_diff"] == 0.0
    model = load_model(study, 1)  # rebuilt with the pruned widths, the kept weights loaded
    assert sum(p.numel() for p in model.parameters()) == 926


def test_the_cost_features_describe_the_pruned_network(tmp_path: Path) -> None:
    import torch

    from hwtune.compress import prune_channels
    from hwtune.train import FamilyCostFeatures, get_family

    for family, params, shape in (("cnn", {"conv_layers": 2, "filters_0": 13, "filters_1": 7, "dense_units": 33}, (1, 8, 8)),
                                  ("mlp", {"hidden_layers": 2, "units_0": 50, "units_1": 9}, (64,))):
        feats = FamilyCostFeatures(family, shape, 10)
        for r in (0.25, 0.3, 0.5, 0.9):
            net = prune_channels(get_family(family).build(params, shape, 10), torch.zeros(1, *shape), r)
            assert feats({**params, "prune_ratio": r})["params"] == sum(p.numel() for p in net.parameters()), (family, r)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prune_ratio": {"type": "float", "low": 0.0, "high": 1.0}}, "space.prune_ratio"),
        ({"quantize": {"type": "categorical", "choices": ["none", "int4"]}}, "space.quantize"),
        ({"distill_beta": 1.5}, "space.distill_beta"),
        ({"finetune_epochs": -2}, "space.finetune_epochs"),
    ],
)
def test_bad_compression_params_in_a_study_file_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file(_spec(tmp_path, **change)))
    assert e.value.field == field
    assert not (tmp_path / "c.db").exists()  # nothing written


def test_int8_needs_the_onnxruntime_runtime(tmp_path: Path) -> None:
    s = _spec(tmp_path, quantize={"type": "categorical", "choices": ["none", "int8"]})
    s["runtime"] = "torch"
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file(s))
    assert e.value.field == "runtime" and "onnxruntime" in str(e.value.fix)


def test_a_study_that_may_quantize_gives_its_cost_model_what_int8_changes(tmp_path: Path) -> None:
    import pickle

    from hwtune.train import FamilyCostFeatures

    study, _, _ = study_from_file(parse_study_file(_spec(tmp_path, quantize={"type": "categorical", "choices": ["none", "int8"]})))
    feats = study.cost_features
    assert feats.int8 and pickle.loads(pickle.dumps(feats)).int8
    p = {"conv_layers": 1, "filters_0": 24, "dense_units": 32}
    f32, q8 = feats({**p, "quantize": "none"}), feats({**p, "quantize": "int8"})
    assert f32["int8_layers"] == 0 and f32["int8_macs"] == 0
    assert q8["int8_layers"] == 2 and q8["int8_macs"] == q8["macs"] > 0  # one conv layer and the dense part
    assert "int8_layers" not in FamilyCostFeatures("cnn", (1, 8, 8), 10)(p)  # studies without int8: unchanged


def test_hwtune_costmodel_evaluate_uses_the_int8_features_of_a_study_that_may_quantize(tmp_path: Path) -> None:
    from hwtune.cli._costmodel_cmd import family_cost_features

    study, _, _ = study_from_file(parse_study_file(_spec(tmp_path, quantize={"type": "categorical", "choices": ["none", "int8"]})))
    assert family_cost_features(study.definition()).int8
    plain, _, _ = study_from_file(parse_study_file(_spec(tmp_path)))
    assert not family_cost_features(plain.definition()).int8
