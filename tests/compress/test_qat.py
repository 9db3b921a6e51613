"""Quantization-aware fine-tuning (issue 14, part 3's option): the simulation matches ONNX Runtime's
int8 model, QAT changes only the trial's student, the exported int8 file is the evaluated model, QAT
repairs a network that post-training quantization hurts, and bad values name their field."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hwtune.compress import (
    CompressionPlan,
    calibration_batches,
    check_compression_space,
    compress_trained,
    compression_plan,
    evaluate_compressed,
    fake_quantized,
    int8_onnx,
)
from hwtune.compress._pipeline import CALIBRATION_SEED
from hwtune.exceptions import ConfigError

ort = pytest.importorskip("onnxruntime")


def _int8_logits(model: torch.nn.Module, data: Any, x: np.ndarray, *, fused: bool = True) -> np.ndarray:
    """Logits of ``model``'s int8 ONNX Runtime model, calibrated as the study calibrates it.

    ``fused=False`` runs the QDQ graph as written (no graph optimizations): its arithmetic, which the
    simulation reproduces. With them (the default, as deployed) ONNX Runtime fuses QLinearConv /
    QGemm kernels whose x86 code on CPUs without VNNI (AVX2 only) multiplies with VPMADDUBSW, which
    saturates int16 pair sums (ONNX Runtime's quantization docs): measured on an AVX2 EPYC here, the
    fused model's logits differ from the graph's by 0.89 on average, the simulation's by 0.0014."""
    with tempfile.TemporaryDirectory() as tmp:
        path = int8_onnx(model.eval(), torch.as_tensor(data.x_train[:1]), tmp, calibration_batches(data.x_train, seed=CALIBRATION_SEED))
        opts = ort.SessionOptions()
        if not fused:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _float_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.as_tensor(x)).numpy()


def test_the_simulation_is_the_int8_onnx_runtime_model_and_leaves_float_weights(digits: Any, trained_cnn: Any) -> None:
    net = copy.deepcopy(trained_cnn)
    x = digits.x_val
    fl, q = _float_logits(net, x), _int8_logits(net, digits, x, fused=False)
    with fake_quantized(net, calibration_batches(digits.x_train, seed=CALIBRATION_SEED)):
        sim = _float_logits(net, x)
    assert np.array_equal(_float_logits(net, x), fl)  # out of the context: the float network again
    assert (sim.argmax(1) == q.argmax(1)).mean() >= 0.99
    # the simulated network is far closer to ONNX Runtime's int8 model than the float one is
    assert np.abs(sim - q).mean() < 0.3 * np.abs(fl - q).mean()
    # as deployed (fused kernels), it predicts what the graph does, up to the kernels' saturation on
    # CPUs without VNNI (see _int8_logits): 98.9 % on an AVX2 EPYC, 99 %+ where the kernels are exact
    assert (sim.argmax(1) == _int8_logits(net, digits, x).argmax(1)).mean() >= 0.98


def test_qat_changes_only_the_trials_student_and_plain_ptq_changes_nothing(digits: Any, trained_cnn: Any) -> None:
    teacher = copy.deepcopy(trained_cnn)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ptq, info0 = compress_trained(teacher, CompressionPlan(quantize="int8"), digits)
    assert "qat" not in info0 and all(torch.equal(before[k], v) for k, v in ptq.state_dict().items())
    qat, info = compress_trained(teacher, CompressionPlan(quantize="int8", qat_epochs=1, distill_beta=0.5), digits)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the float teacher is untouched
    assert set(qat.state_dict()) == set(before)  # a plain network: no masks, hooks or _orig left
    assert not qat._forward_pre_hooks and not any(m._forward_pre_hooks for m in qat.modules())
    assert any(not torch.equal(before[k], v) for k, v in qat.state_dict().items())
    assert len(info["qat"]["losses"]) == 1 and info["qat"]["beta"] == 0.5 and info["qat"]["steps"] > 0


def test_pruned_weights_stay_zero_through_qat(digits: Any, trained_cnn: Any) -> None:
    plan = CompressionPlan(sparsity=0.5, quantize="int8", qat_epochs=1, finetune_epochs=0)
    _, info = compress_trained(copy.deepcopy(trained_cnn), plan, digits)
    assert info["sparsity"] == pytest.approx(0.5, abs=0.01) and info["qat"]["steps"] > 0


def test_the_evaluated_int8_error_is_the_exported_files(digits: Any, trained_cnn: Any) -> None:
    from hwtune.deploy._int8 import export_int8

    plan = CompressionPlan(quantize="int8", qat_epochs=1)
    student, _ = compress_trained(copy.deepcopy(trained_cnn), plan, digits)
    errors = evaluate_compressed(student, plan, digits)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_int8(student, torch.as_tensor(digits.x_train[:1]), Path(tmp), 0, None, calibration=digits.x_train)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {sess.get_inputs()[0].name: digits.x_val})[0]
    assert errors["error"] == pytest.approx(float((out.argmax(1) != digits.y_val).mean()), abs=1e-12)


def _outlier_channels(net: torch.nn.Module, k: float = 300.0) -> torch.nn.Module:
    """``net`` with two channels of its first convolution scaled by ``k`` and the next convolution's
    inputs from them by ``1 / k``: the same function in float (ReLU and max-pooling commute with a
    positive scale), but one activation tensor's range is ``k`` times wider — per-tensor int8 then
    rounds the other channels coarsely. (Outlier channels are what makes int8 PTQ fail in practice.)"""
    net = copy.deepcopy(net)
    with torch.no_grad():
        for c in range(2):
            net[0].weight[c] *= k
            net[0].bias[c] *= k
            net[3].weight[:, c] /= k
    return net.eval()


def test_qat_repairs_a_network_that_post_training_quantization_hurts(digits: Any, trained_cnn: Any) -> None:
    net = _outlier_channels(trained_cnn)
    x = digits.x_val
    ref = _float_logits(trained_cnn, x).argmax(1)
    assert (_float_logits(net, x).argmax(1) == ref).mean() >= 0.99  # the same network in float
    float_err = evaluate_compressed(net, CompressionPlan(), digits)["error"]
    ptq_plan = CompressionPlan(quantize="int8")
    ptq, _ = compress_trained(net, ptq_plan, digits)
    ptq_err = evaluate_compressed(ptq, ptq_plan, digits)["error"]
    qat_plan = CompressionPlan(quantize="int8", qat_epochs=2, finetune_lr=1e-3)
    qat, _ = compress_trained(net, qat_plan, digits)
    qat_err = evaluate_compressed(qat, qat_plan, digits)["error"]
    assert ptq_err >= float_err + 0.04  # the case: PTQ hurts
    assert qat_err <= ptq_err - 0.02  # QAT takes back a good part of it
    disagree = lambda m: float((_int8_logits(m, digits, x).argmax(1) != ref).mean())
    assert disagree(qat) < disagree(ptq)


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", 1001])
def test_a_bad_qat_epochs_names_the_field(value: Any) -> None:
    with pytest.raises(ConfigError) as e:
        CompressionPlan.from_params({"quantize": "int8", "qat_epochs": value}, field_prefix="space.")
    assert e.value.field == "space.qat_epochs" and e.value.fix


def test_qat_epochs_needs_int8_in_the_space_and_in_the_params() -> None:
    from hwtune.space import SearchSpace

    for space in ({"qat_epochs": 1}, {"qat_epochs": {"type": "int", "low": 0, "high": 2}, "quantize": "none"}):
        with pytest.raises(ConfigError) as e:
            check_compression_space(SearchSpace.from_dict(space), "onnxruntime")
        assert e.value.field == "space.qat_epochs" and "quantize" in e.value.fix
    check_compression_space(SearchSpace.from_dict({"qat_epochs": 0}), "onnxruntime")  # 0 is plain PTQ: fine
    check_compression_space(SearchSpace.from_dict({"qat_epochs": 2, "quantize": {"type": "categorical", "choices": ["none", "int8"]}}), "onnxruntime")
    with pytest.raises(ConfigError) as e:
        compression_plan({"qat_epochs": 2})
    assert e.value.field == "qat_epochs"
    plan = compression_plan({"qat_epochs": 2, "quantize": "none"})  # a trial of a space that may quantize
    assert plan is not None and not plan.quant_aware and not plan.active
    assert compression_plan({"qat_epochs": 2, "quantize": "int8"}).quant_aware  # type: ignore[union-attr]


def test_a_study_file_fine_tunes_its_int8_trials_aware_of_quantization(tmp_path: Path) -> None:
    from hwtune.study import parse_study_file, study_from_file
    from hwtune.vocabulary import COMPRESSION_ATTR
    from tests._tiny_digits import tiny_digits_spec

    s = tiny_digits_spec(tmp_path / "q.db", "qat", trials=1, runtime="onnxruntime")
    s["space"].update({"quantize": "int8", "qat_epochs": 1, "distill_beta": 0.5})
    study, build, train = study_from_file(parse_study_file(s))
    study.optimize(build, train, n_trials=1)
    t = study.optuna_study.trials[0]
    qat = t.user_attrs[COMPRESSION_ATTR]["qat"]
    assert len(qat["losses"]) == 1 and qat["beta"] == 0.5  # the study loop ran QAT with no special case
    bad = tiny_digits_spec(tmp_path / "b.db", "bad", runtime="onnxruntime")
    bad["space"]["qat_epochs"] = 1
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file(bad))
    assert e.value.field == "space.qat_epochs"
    assert not (tmp_path / "b.db").exists()
