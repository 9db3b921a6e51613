"""A trial's compressions in the order of the loop (issue 14, part 5).

1. :func:`shape_untrained` — the cost-changing compressions of the *untrained* network (channels
   pruned: a smaller dense copy; weights zeroed by magnitude), so it is measured as it will run, before
   any training. On random weights the channel ranking is arbitrary: only the widths matter here.
2. :func:`measure_int8` — an ``int8`` plan is measured on the int8 ONNX Runtime model itself
   (quantized with random calibration inputs: the graph and its kernels, hence the time, do not depend
   on the calibration ranges; the error is computed on a model calibrated on real data).
3. :func:`compress_trained` — after training: channels ranked by the trained weights and pruned,
   magnitude masks, fine-tuning with self-distillation from the trained network (the teacher); for an
   int8 plan with ``qat_epochs``, quantization-aware fine-tuning (:mod:`hwtune.compress._qat`) with
   the calibration batches the quantizer will use; masks folded in.
4. :func:`evaluate_compressed` — validation and test error of the delivered form (int8: ONNX Runtime
   on a model calibrated on training batches).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwtune.compress._magnitude import (
    compressed_size_mb,
    make_permanent,
    prune_by_alpha,
    prune_to_sparsity,
    sparsity_report,
)
from hwtune.compress._plan import CompressionPlan
from hwtune.compress._quantize import INT8_RUNTIME, calibration_batches, quantize_int8

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["compress_trained", "evaluate_compressed", "int8_onnx", "measure_int8", "random_calibration", "shape_untrained"]

CALIBRATION_SEED = 0
"""Seed of the calibration batches drawn from the training split: the study's int8 error and an
export's int8 file come from the same batches, so the exported file is the evaluated one."""


def _mask(model: nn.Module, plan: CompressionPlan) -> None:
    if plan.prune_alpha > 0:
        prune_by_alpha(model, plan.prune_alpha)
    elif plan.sparsity > 0:
        prune_to_sparsity(model, plan.sparsity, scope="global")


def shape_untrained(model: nn.Module, plan: CompressionPlan, example_input: torch.Tensor) -> nn.Module:
    """The untrained ``model`` compressed as its trained form will be (``model`` is left untouched):
    channels pruned by ``prune_ratio`` (a smaller dense network), weights below the magnitude rule
    zeroed (``prune_alpha`` / ``sparsity``, made permanent). Also the skeleton that kept weights of a
    channel-pruned network load into (the widths depend on the ratio only, not on the weights)."""
    from hwtune.compress._structured import prune_channels

    out = prune_channels(model, example_input, plan.prune_ratio, importance=plan.prune_importance) if plan.prunes_channels else model
    if plan.prunes_weights:
        out = copy.deepcopy(out) if out is model else out
        _mask(out, plan)
        make_permanent(out)
    return out


def random_calibration(example_input: torch.Tensor, n_batches: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Standard-normal batches of the example's shape: enough to build an int8 graph for timing."""
    rng = np.random.default_rng(seed)
    shape = (max(1, int(example_input.shape[0])), *tuple(example_input.shape[1:]))
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n_batches)]


def int8_onnx(model: nn.Module, example_input: torch.Tensor, folder: str | Path, calibration: list[Any] | None = None) -> Path:
    """``model`` quantized to an int8 ONNX file in ``folder`` (``calibration``: real batches; ``None``:
    :func:`random_calibration`, for timing only)."""
    batches = calibration if calibration is not None else random_calibration(example_input)
    return quantize_int8(model, example_input, batches, Path(folder) / "int8.onnx")


def measure_int8(model: nn.Module, example_input: torch.Tensor, device: Any, metrics: Any, **profile_kwargs: Any) -> Any:
    """``hardware.profile_in_runtime`` of ``model`` quantized to int8 and run by ONNX Runtime: latency,
    throughput, energy and size of the int8 file (``measured:...[onnxruntime-int8]``); parameters,
    FLOPs and peak memory counted on the float network, as for every runtime."""
    from hwtune.hardware import profile_in_runtime

    report = profile_in_runtime(
        model, example_input, device, metrics, runtime="onnxruntime",
        export=lambda m, x, folder: int8_onnx(m, x, folder), runtime_label=INT8_RUNTIME, **profile_kwargs,
    )
    from hwtune.hardware import HardwareReport

    def said(m: Any) -> Any:  # how the timed int8 graph was calibrated, on every value it gave
        if m.extra.get("runtime") != INT8_RUNTIME:
            return m
        return dataclasses.replace(m, extra={**m.extra, "calibration": "random inputs (the int8 graph's time does not depend on its ranges)"})

    return HardwareReport({k: said(m) for k, m in report.measurements.items()}, report.device,
                          {b: {k: said(m) for k, m in ms.items()} for b, ms in report.batches.items()}, list(report.warnings))


class _Batches:
    """Shuffled ``(x, y)`` tensor batches of the training split, re-iterable, seeded per pass."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed, self._pass = x, y, int(batch_size), int(seed), 0

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        order = np.random.default_rng(self.seed + self._pass).permutation(len(self.y))
        self._pass += 1
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield torch.as_tensor(self.x[idx], dtype=torch.float32), torch.as_tensor(self.y[idx], dtype=torch.int64)


def compress_trained(
    model: nn.Module, plan: CompressionPlan, data: Any, *, seed: int = 0, device: str = "cpu", batch_size: int = 64
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained ``model`` compressed by ``plan`` and fine-tuned (``model`` itself is untouched: it is
    the teacher).

    Channels are ranked by the trained weights' ``prune_importance`` norm and pruned; magnitude masks
    are applied; then, when anything was pruned and ``finetune_epochs > 0``, the network is fine-tuned
    on the training split with ``(1 - distill_beta) CE + distill_beta T^2 KL(teacher || student)``
    (Adam, ``finetune_lr``; masks hold through the updates). An int8 plan with ``qat_epochs > 0`` is
    then fine-tuned ``qat_epochs`` more epochs with simulated int8 (:func:`hwtune.compress._qat.
    quant_aware_finetune`, same loss, the trained float network as teacher, calibrated on the batches
    :func:`evaluate_compressed` and an export quantize with). The masks are folded in. int8 is not
    applied here (see :func:`evaluate_compressed`): the returned network is the float one that is kept,
    and quantizing it is the evaluated int8 model.

    Returns:
        ``(network, info)``: ``info`` holds the plan, the global sparsity, the deflate-compressed size in
        MB (measured by writing it), the fine-tuning's settings and per-epoch loss (``qat``: the
        quantization-aware fine-tuning's).
    """
    import torch

    from hwtune.compress._distill import distill
    from hwtune.compress._structured import prune_channels

    model.eval()
    example = torch.as_tensor(np.ascontiguousarray(data.x_train[:2]), dtype=torch.float32).to(device)
    student = prune_channels(model, example, plan.prune_ratio, importance=plan.prune_importance) if plan.prunes_channels else copy.deepcopy(model)
    if plan.prunes_weights:
        _mask(student, plan)
    info: dict[str, Any] = {"plan": plan.describe(), "teacher": "self (the trained network before compression)"}
    if plan.fine_tunes:
        res = distill(
            student, model, _Batches(data.x_train, data.y_train, batch_size, seed), epochs=plan.finetune_epochs,
            lr=plan.finetune_lr, beta=plan.distill_beta, T=plan.distill_T, optimizer="adam", seed=seed, device=device,
        )
        info["finetune"] = {**res.settings, "losses": [round(v, 6) for v in res.losses]}
    if plan.quant_aware:
        from hwtune.compress._qat import quant_aware_finetune

        info["qat"] = quant_aware_finetune(
            student, model, _Batches(data.x_train, data.y_train, batch_size, seed + 1), calibration_batches(data.x_train, seed=CALIBRATION_SEED),
            epochs=plan.qat_epochs, lr=plan.finetune_lr, beta=plan.distill_beta, T=plan.distill_T, seed=seed, device=device,
        )
    make_permanent(student)
    student.eval()
    info["sparsity"] = round(sparsity_report(student).sparsity, 6)
    info["compressed_size_mb"] = round(compressed_size_mb(student), 6)
    info["compressed_size_source"] = "measured:deflate(state_dict)"
    return student, info


def _ort_error(path: Path, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    wrong = 0
    for i in range(0, len(y), batch):
        out = sess.run(None, {name: np.ascontiguousarray(x[i : i + batch], dtype=np.float32)})[0]
        wrong += int((out.argmax(axis=1) != y[i : i + batch]).sum())
    return wrong / max(1, len(y))


def evaluate_compressed(model: nn.Module, plan: CompressionPlan, data: Any, *, device: str = "cpu") -> dict[str, float]:
    """Validation and test error of the delivered form: the network itself, or for ``quantize: int8``
    its int8 ONNX Runtime model calibrated on training batches (:func:`calibration_batches`)."""
    import torch

    from hwtune.train import evaluate_error

    if not plan.int8:
        xv, yv = (torch.as_tensor(np.ascontiguousarray(a)) for a in (data.x_val, data.y_val))
        xt, yt = (torch.as_tensor(np.ascontiguousarray(a)) for a in (data.x_test, data.y_test))
        return {
            "error": evaluate_error(model, xv.float(), yv.long(), device=device),
            "test_error": evaluate_error(model, xt.float(), yt.long(), device=device),
        }
    model = model.to("cpu").eval()
    example = torch.as_tensor(np.ascontiguousarray(data.x_train[:1]), dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="hwtune-int8-eval-") as tmp:
        path = int8_onnx(model, example, tmp, calibration_batches(data.x_train, seed=CALIBRATION_SEED))
        return {"error": _ort_error(path, data.x_val, data.y_val), "test_error": _ort_error(path, data.x_test, data.y_test)}
