"""Quantization-aware fine-tuning (issue 14, part 3's option): a trained float network fine-tuned with
fake quantization that mimics what :func:`hwtune.compress.quantize_int8` (ONNX Runtime static QDQ)
will do to it, so its weights settle where int8 rounding hurts least; then it is quantized by that
same ONNX Runtime path, unchanged.

What is simulated, read from ``_quantize.quantize_int8``'s settings and ONNX Runtime's
``compute_scale_zp`` (onnxruntime 1.32):

- weights of every ``Conv``/``Linear``: int8 **symmetric per output channel**, the range
  ``[-127, 127]``, scale ``max|w| / 127``, zero point 0 (``WeightSymmetric``, ``per_channel``);
- the input of every ``Conv``/``Linear`` (the network's input, and each ReLU / pooling / sum output
  that feeds a layer): int8 **asymmetric per tensor**, ``[-128, 127]``, range ``[min(lo, 0),
  max(hi, 0)]``, scale ``range / 255``, zero point ``round(-128 - lo / scale)``
  (``ActivationSymmetric: False``); the same for the network's output (the logits), with ``lo, hi`` the MinMax calibration ranges **on the same
  calibration batches** the quantizer will use (seeded training inputs), recomputed on the float
  network every :data:`RECALIBRATE_EVERY` steps as the weights move;
- the straight-through estimator (gradients pass the rounding, are zero where a value is clipped).

BatchNorm layers are kept in eval mode (running statistics frozen) through the fine-tuning: the export
folds them into the preceding convolution, and with frozen statistics the training graph is the
folded inference graph (per-channel symmetric quantization commutes with the per-channel scale a fold
applies). Dropout still drops. Not simulated: the extra quantize/dequantize pairs ONNX Runtime puts on
a ``Conv`` (or BatchNorm) output before a residual ``Add`` or a concatenation, a BatchNorm that no
convolution precedes (ONNX Runtime quantizes its parameters; ``nb201``'s last one), the int32 bias (errors of a few
parts in 10^4 of the activation scale), and the saturation of ONNX Runtime's fused x86 int8 kernels on
CPUs without VNNI (AVX2 only: int16 pair sums; on one such machine the fused model's logits were 0.89
away from its own QDQ graph's on average, 98.9 % of predictions the same); the test suite checks that the simulated network's
predictions agree with the int8 ONNX Runtime model's.

Backend: PyTorch's core ``torch.fake_quantize_per_channel_affine`` /
``torch.fake_quantize_per_tensor_affine`` in forward pre-hooks of the layers, in the same
distillation loop as the fine-tuning after pruning (:func:`hwtune.compress.distill`), not the
deprecated eager ``torch.ao.quantization`` flow, and not torchao's PT2E QAT: PT2E's x86 quantizer
refuses the built-in ``cnn`` family's ``Conv2d(padding="same")`` (measured for PTQ, see
``_quantize``; QAT annotates with the same quantizer), it would simulate the x86 Inductor kernels
rather than ONNX Runtime's that run the delivered model, and torchao is not a dependency. The hooks
work on any network of ``Conv``/``Linear`` layers, magnitude-pruned ones included (they sit after
``torch.nn.utils.prune``'s mask hook, so pruned weights stay zero and are quantized as zeros).

Measured (docs/benchmarks.md, "Quantization-aware fine-tuning"): on small CNNs / NB201 cells trained
on MNIST and CIFAR-10, PTQ costs nothing measurable and QAT's gains are its extra training; on a
trained MNIST CNN with outlier channels, where PTQ costs 16.6 points, two QAT epochs bring the int8
model within 0.25 points of the float one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["QAT_LR", "RECALIBRATE_EVERY", "fake_quantized", "quant_aware_finetune"]

RECALIBRATE_EVERY = 50
"""Steps between two recalibrations of the activation ranges (on the calibration batches)."""

_W_QMIN, _W_QMAX = -127, 127  # int8 symmetric (ONNX Runtime's ONNX_INT_TYPE_SYMMETRIC_RANGE)
_A_QMIN, _A_QMAX = -128, 127  # int8 asymmetric activations


def _layers(model: nn.Module) -> list[nn.Module]:
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def _fq_weight(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to per-output-channel symmetric int8 (scale ``max|w| / 127``), straight-through."""
    import torch

    absmax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).float()
    scale = torch.where(absmax > 0, absmax / _W_QMAX, torch.ones_like(absmax))  # an all-zero channel stays zero
    zp = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, _W_QMIN, _W_QMAX)


def _act_qparams(lo: float, hi: float) -> tuple[float, int]:
    """ONNX Runtime's (scale, zero point) of an asymmetric int8 tensor with calibrated range [lo, hi]."""
    lo32, hi32 = np.float32(min(lo, 0.0)), np.float32(max(hi, 0.0))
    scale = float((np.float64(hi32) - np.float64(lo32)) / (_A_QMAX - _A_QMIN))
    if np.float32(scale) < np.finfo(np.float32).tiny:
        return 1.0, 0
    scale = float(np.float32(scale))
    return scale, int(np.round(_A_QMIN - lo32 / np.float32(scale)))


class _Sim:
    """The hooks on a network's layers: activation ranges (calibrated), and whether to fake-quantize."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = _layers(model)
        self.ranges: dict[int, tuple[float, float]] = {}
        self.quantize = True
        self.observe = False
        self.handles: list[Any] = []

    def pre_hook(self, idx: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            import torch

            x = args[0]
            if self.observe:
                lo, hi = float(x.detach().min()), float(x.detach().max())
                old = self.ranges.get(idx)
                self.ranges[idx] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
                return None
            if not self.quantize:
                return None
            # after torch.nn.utils.prune's hook (registered first): module.weight is the masked tensor
            module.weight = _fq_weight(module.weight)
            if idx in self.ranges:
                scale, zp = _act_qparams(*self.ranges[idx])
                x = torch.fake_quantize_per_tensor_affine(x, scale, zp, _A_QMIN, _A_QMAX)
            return (x, *args[1:])

        return hook

    def out_hook(self, module: nn.Module, args: Any, out: Any) -> Any:
        """The network's output (logits), quantized too by ONNX Runtime (the last layer's output)."""
        import torch

        if self.observe:
            lo, hi = float(out.detach().min()), float(out.detach().max())
            old = self.ranges.get(-1)
            self.ranges[-1] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
            return None
        if not self.quantize or -1 not in self.ranges:
            return None
        scale, zp = _act_qparams(*self.ranges[-1])
        return torch.fake_quantize_per_tensor_affine(out, scale, zp, _A_QMIN, _A_QMAX)


def _calibrate(model: nn.Module, sim: _Sim, batches: list[np.ndarray], device: Any) -> None:
    """MinMax ranges of every layer's input on ``batches``, on the float network in eval mode (what
    ONNX Runtime's calibrator sees); the network's modes are restored."""
    import torch

    modes = {m: m.training for m in model.modules()}
    model.eval()
    sim.ranges, sim.observe = {}, True
    try:
        with torch.no_grad():
            for b in batches:
                model(torch.as_tensor(b, dtype=torch.float32, device=device))
    finally:
        sim.observe = False
        for m, t in modes.items():
            m.training = t


class _FrozenBatchNorm:
    """A view of a network whose ``train()`` keeps BatchNorm layers in eval mode (statistics frozen)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, *a: Any, **k: Any) -> Any:
        return self.model(*a, **k)

    def train(self, mode: bool = True) -> Any:
        from torch import nn

        self.model.train(mode)
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


class _Recalibrating:
    """Training batches that recalibrate the activation ranges every ``every`` steps (and first)."""

    def __init__(self, batches: Any, model: nn.Module, sim: _Sim, calibration: list[np.ndarray], device: Any, every: int) -> None:
        self.batches, self.model, self.sim, self.calibration, self.device, self.every = batches, model, sim, calibration, device, every
        self.steps = 0

    def __iter__(self) -> Iterator[Any]:
        for b in self.batches:
            if self.steps % self.every == 0:
                _calibrate(self.model, self.sim, self.calibration, self.device)
            self.steps += 1
            yield b


def _install(model: nn.Module, sim: _Sim) -> None:
    from torch.nn.utils import prune

    for i, m in enumerate(sim.layers):
        if not hasattr(m, "weight_orig"):
            prune.identity(m, "weight")  # weight becomes a computed tensor that the hook may replace
        sim.handles.append(m.register_forward_pre_hook(sim.pre_hook(i)))
    sim.handles.append(model.register_forward_hook(sim.out_hook))


class fake_quantized:
    """Context in which ``model`` runs as its int8 ONNX Runtime model would (simulated), with ranges
    calibrated on ``calibration``; on exit the hooks go and the weights are the float ones again
    (identity masks stay until :func:`hwtune.compress.make_permanent`)."""

    def __init__(self, model: nn.Module, calibration: list[np.ndarray], device: Any = "cpu") -> None:
        self.model, self.calibration, self.device = model, calibration, device
        self.sim = _Sim(model)

    def __enter__(self) -> _Sim:
        _install(self.model, self.sim)
        _calibrate(self.model, self.sim, self.calibration, self.device)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        import torch

        for h in self.sim.handles:
            h.remove()
        self.sim.handles.clear()
        for m in self.sim.layers:  # a plain forward recomputes weight from weight_orig * mask
            if hasattr(m, "weight_orig"):
                with torch.no_grad():
                    m.weight = m.weight_orig * m.weight_mask


def quant_aware_finetune(
    student: nn.Module, teacher: nn.Module, batches: Any, calibration: list[np.ndarray], *, epochs: int, lr: float | None,
    beta: float, T: float, seed: int = 0, device: Any = "cpu",
) -> dict[str, Any]:
    """Fine-tune ``student`` in place for ``epochs`` passes over ``batches`` with its weights and layer
    inputs fake-quantized as ONNX Runtime's int8 model will have them, by :func:`hwtune.compress.distill`
    (loss ``(1 - beta) CE + beta T^2 KL`` against ``teacher``, the float network; Adam, ``lr``
    default :data:`QAT_LR`). The student keeps float weights (identity prune masks are left for
    :func:`hwtune.compress.make_permanent`); quantize it with :func:`hwtune.compress.quantize_int8`
    on the same ``calibration`` batches.

    Returns:
        The settings and per-epoch loss, for the trial's record.
    """
    from hwtune.compress._distill import distill

    rate = QAT_LR if lr is None else float(lr)
    with fake_quantized(student, calibration, device) as sim:
        loader = _Recalibrating(batches, student, sim, calibration, device, RECALIBRATE_EVERY)
        res = distill(_FrozenBatchNorm(student), teacher, loader, epochs=epochs, lr=rate, beta=beta, T=T, optimizer="adam", seed=seed, device=device)  # type: ignore[arg-type]
    return {
        **res.settings, "losses": [round(v, 6) for v in res.losses], "steps": res.steps,
        "simulates": "ONNX Runtime static QDQ int8: weights per-channel symmetric [-127, 127], layer inputs per-tensor asymmetric int8 (MinMax on the calibration batches)",
        "batchnorm": "frozen (eval mode)", "recalibrate_every": RECALIBRATE_EVERY,
    }


QAT_LR = 1e-4
"""Adam's rate for quantization-aware fine-tuning when ``finetune_lr`` is not given: a tenth of Adam's
default, since the network starts trained and only needs nudging off the int8 rounding boundaries."""
