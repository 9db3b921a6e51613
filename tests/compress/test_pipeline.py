"""A trial's compressions in the loop's order, on a real small CNN and the digits (issue 14, part 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwtune.compress import CompressionPlan, compress_trained, evaluate_compressed, measure_int8, shape_untrained, sparsity_report
from hwtune.train import get_family, load_dataset, train_classifier

pytest.importorskip("torch_pruning")


def _cnn(filters: int = 16, dense: int = 32) -> torch.nn.Module:
    return get_family("cnn").build({"conv_layers": 2, "filters": filters, "dense_units": dense}, (1, 8, 8), 10)


def _widths(m: torch.nn.Module) -> list[int]:
    return [x.out_channels if isinstance(x, torch.nn.Conv2d) else x.out_features for x in m.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear))]


def test_shaping_the_untrained_network_prunes_a_copy_and_zeros_by_magnitude() -> None:
    model = _cnn()
    shaped = shape_untrained(model, CompressionPlan(prune_ratio=0.5, sparsity=0.4), torch.zeros(1, 1, 8, 8))
    assert _widths(model) == [16, 16, 32, 10]  # untouched
    assert _widths(shaped) == [8, 8, 16, 10]  # the output layer keeps its width
    assert sparsity_report(shaped).sparsity == pytest.approx(0.4, abs=0.01)
    assert not any(n.endswith("_orig") for n, _ in shaped.named_parameters())  # masks folded in: a plain network
    assert shaped(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, object]:
    data = load_dataset("digits", seed=0)
    model = _cnn()
    train_classifier(model, data, {"epochs": 3, "lr": 0.1, "batch_size": 64}, seed=0, options={"amp": False, "channels_last": False, "compile": False})
    return model, data


def test_compressing_a_trained_network_fine_tunes_a_smaller_student_and_keeps_the_teacher(trained: tuple) -> None:
    model, data = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = CompressionPlan(prune_ratio=0.5, sparsity=0.3, distill_beta=0.5, finetune_epochs=2)
    student, info = compress_trained(model, plan, data, seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the teacher is untouched
    assert _widths(student) == [8, 8, 16, 10]
    assert info["sparsity"] == pytest.approx(0.3, abs=0.01)  # the masks held through fine-tuning
    assert len(info["finetune"]["losses"]) == 2 and info["finetune"]["beta"] == 0.5
    assert info["compressed_size_mb"] > 0
    errors = evaluate_compressed(student, plan, data)
    assert 0.0 <= errors["error"] < 0.5  # fine-tuned on real digits: far better than chance (0.9)


def test_int8_errors_come_from_the_int8_model_and_stay_close_to_float(trained: tuple) -> None:
    pytest.importorskip("onnxruntime")
    model, data = trained
    f32 = evaluate_compressed(model, CompressionPlan(), data)
    q = evaluate_compressed(model, CompressionPlan(quantize="int8"), data)
    assert abs(q["error"] - f32["error"]) < 0.05


def test_an_int8_plan_is_measured_on_the_int8_runtime_with_its_own_label() -> None:
    pytest.importorskip("onnxruntime")
    report = measure_int8(_cnn(), torch.zeros(1, 1, 8, 8), None, ["latency_ms", "params", "size_mb"], max_time_s=0.2)
    lat = report.measurements["latency_ms"]
    assert lat.source.endswith("[onnxruntime-int8]") and lat.extra["runtime"] == "onnxruntime-int8"
    assert "calibration" in lat.extra
    assert report.measurements["params"].source == "counted"
    assert np.isfinite(lat.value) and lat.value > 0
