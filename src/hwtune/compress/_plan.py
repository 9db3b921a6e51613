"""The compression params of a trial (issue 14, part 5): their names, roles and checks, read from the
trial's params into one :class:`CompressionPlan`.

Names (reserved: a study whose space holds one of them compresses its networks):

========================  =======================================================  ===============
param                     what it does                                             default role
========================  =======================================================  ===============
``prune_ratio``           structured channel pruning: share of each layer's        compression
                          output channels removed (0: none) -> a smaller dense net
``prune_alpha``           magnitude pruning: zero ``|w| < alpha * max|w|`` per     compression
                          layer (0: none)
``sparsity``              magnitude pruning to a global share of zero weights       compression
                          (0: none; exclusive with ``prune_alpha``)
``quantize``              ``none`` or ``int8`` (static post-training, ONNX Runtime  compression
                          QDQ, per-channel weights)
``prune_importance``      ``l1`` / ``l2``: channel ranking of the trained network   training
``distill_beta``          weight of the teacher's term in the fine-tuning loss      training
``distill_T``             temperature of the teacher's term                         training
``finetune_epochs``       epochs of fine-tuning after pruning (default 1)           training
``finetune_lr``           its learning rate (default: Adam's 0.001)                  training
``qat_epochs``            epochs of quantization-aware fine-tuning of an ``int8``   training
                          trial before it is quantized (default 0: plain
                          post-training quantization; needs ``quantize``)
========================  =======================================================  ===============

The first four change what runs on the device (fewer channels, int8 kernels, fewer nonzero weights in
the stored file), so they are *hardware-relevant* (``role: compression``): they enter the hardware
key, the cost models and the sampler's screen, and the untrained network is measured compressed. The
others change only how the trained network is compressed and fine-tuned, not its cost: as
``training`` params they let one measurement serve every fine-tuning setting of the same network.
A study file may still give any of them another role.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = [
    "COMPRESSION_PARAMS",
    "QUANTIZE_CHOICES",
    "CompressionPlan",
    "check_compression_space",
    "check_compression_values",
    "compression_plan",
    "compression_roles",
]

QUANTIZE_CHOICES: tuple[str, ...] = ("none", "int8")

COMPRESSION_PARAMS: dict[str, str] = {
    "prune_ratio": "compression",
    "prune_alpha": "compression",
    "sparsity": "compression",
    "quantize": "compression",
    "prune_importance": "training",
    "distill_beta": "training",
    "distill_T": "training",
    "finetune_epochs": "training",
    "finetune_lr": "training",
    "qat_epochs": "training",
}
"""Every compression param and its default role (see the module docstring)."""


def compression_roles(names: list[str]) -> dict[str, str]:
    """The default role of each compression param among ``names`` (others are left out)."""
    return {n: COMPRESSION_PARAMS[n] for n in names if n in COMPRESSION_PARAMS}


def _share(value: Any, field: str, meaning: str, *, upper: float = 1.0) -> float:
    """A number in [0, upper) (0: the compression is off), else a ConfigError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"{field} must be a number in [0, 1) ({meaning}); got {value!r}.", f"write {field}: 0.5, say (0 turns it off).")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v < upper:
        raise ConfigError(field, f"{field} must be in [0, {upper:g}) ({meaning}); got {value!r}.", f"choose {field} in [0, {upper:g}), e.g. 0.25 or 0.5 (0 turns it off).")
    return v


def check_compression_values(name: str, values: list[Any], field_prefix: str = "space.") -> None:
    """Check every value a param of the space can take (its bounds or choices) before any trial runs;
    errors name ``<field_prefix><name>``."""
    for v in values:
        CompressionPlan.from_params({name: v}, field_prefix=field_prefix)


def _values_of(p: Any) -> list[Any]:
    """The values a param of the space can take at its extremes (bounds, choices, or its one value)."""
    for attrs in (("low", "high"), ("choices",), ("value",)):
        if all(hasattr(p, a) for a in attrs):
            if attrs == ("choices",):
                return list(p.choices)
            return [getattr(p, a) for a in attrs]
    return []


def check_compression_space(space: Any, runtime: str, field: str = "space") -> None:
    """Every compression param of ``space`` checked at its extremes, before any trial runs; an int8
    choice needs the study's runtime to be ONNX Runtime (fp32 and int8 networks timed in one runtime).

    Raises:
        ConfigError: naming ``space.<param>`` (or ``runtime``) and the fix.
    """
    names = [n for n in space if n in COMPRESSION_PARAMS]
    for name in names:
        check_compression_values(name, _values_of(space[name]), field_prefix=f"{field}.")
    if "qat_epochs" in names and max((v for v in _values_of(space["qat_epochs"]) if isinstance(v, int)), default=0) > 0 and (
        "quantize" not in names or "int8" not in _values_of(space["quantize"])
    ):
        raise ConfigError(
            f"{field}.qat_epochs", "qat_epochs fine-tunes int8 networks with simulated quantization, but the space never quantizes to int8.",
            "add quantize: int8 (or {type: categorical, choices: [none, int8]}) to the space, or leave qat_epochs out.",
        )
    if "quantize" in names and "int8" in _values_of(space["quantize"]) and runtime != "onnxruntime":
        raise ConfigError(
            "runtime", f"quantize: int8 networks run in ONNX Runtime, but the study's runtime is {runtime!r}: fp32 and int8 networks would be timed in different runtimes.",
            "set runtime: onnxruntime (the default) or leave int8 out of quantize.",
        )


@dataclass(frozen=True)
class CompressionPlan:
    """What one trial compresses, read from its params (:func:`compression_plan`).

    Attributes:
        prune_ratio: share of output channels removed per prunable layer (0: none).
        prune_importance: ``l1`` / ``l2`` channel importance of the trained network.
        prune_alpha: magnitude threshold factor (0: none).
        sparsity: global share of zero weights (0: none).
        quantize: ``none`` / ``int8``.
        distill_beta, distill_T: the fine-tuning loss (beta 0: plain cross-entropy).
        finetune_epochs, finetune_lr: the fine-tuning after pruning (lr ``None``: Adam's default).
        qat_epochs: epochs of quantization-aware fine-tuning of an int8 trial (0: plain post-training
            quantization; ``finetune_lr``, else ``hwtune.compress._qat.QAT_LR``, is its rate).
    """

    prune_ratio: float = 0.0
    prune_importance: str = "l1"
    prune_alpha: float = 0.0
    sparsity: float = 0.0
    quantize: str = "none"
    distill_beta: float = 0.0
    distill_T: float = 4.0
    finetune_epochs: int = 1
    finetune_lr: float | None = None
    qat_epochs: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any], field_prefix: str = "") -> CompressionPlan:
        """The plan of ``params`` (missing names take the defaults); a bad value is a ``ConfigError``
        naming ``<field_prefix><param>`` and the fix."""
        p = field_prefix
        kw: dict[str, Any] = {}
        if "prune_ratio" in params:
            kw["prune_ratio"] = _share(params["prune_ratio"], p + "prune_ratio", "share of each layer's output channels removed")
        if "prune_alpha" in params:
            kw["prune_alpha"] = _share(params["prune_alpha"], p + "prune_alpha", "weights below alpha * max|w| of their layer are zeroed")
        if "sparsity" in params:
            kw["sparsity"] = _share(params["sparsity"], p + "sparsity", "global share of zero weights")
        if kw.get("prune_alpha", 0.0) > 0 and kw.get("sparsity", 0.0) > 0:
            raise ConfigError(p + "sparsity", "prune_alpha and sparsity both prune by magnitude; a trial can use one.", "search one of them (or fix the other to 0).")
        if "quantize" in params:
            q = params["quantize"]
            if q is None or q is False:
                q = "none"
            if q not in QUANTIZE_CHOICES:
                raise ConfigError(p + "quantize", f"unknown quantization {q!r}.", f"use one of {', '.join(QUANTIZE_CHOICES)} (or {{type: categorical, choices: [none, int8]}}).")
            kw["quantize"] = str(q)
        if "prune_importance" in params:
            imp = params["prune_importance"]
            if imp not in ("l1", "l2"):
                raise ConfigError(p + "prune_importance", f"unknown channel importance {imp!r}.", "use l1 or l2.")
            kw["prune_importance"] = str(imp)
        if "distill_beta" in params or "distill_T" in params:
            from hwtune.compress._distill import check_distill_params

            try:
                kw["distill_beta"], kw["distill_T"] = check_distill_params(params.get("distill_beta", 0.0), params.get("distill_T", 4.0))
            except ConfigError as e:
                raise ConfigError(p + e.field, e.problem, e.fix) from None
        if "finetune_epochs" in params:
            e = params["finetune_epochs"]
            if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= 1000:
                raise ConfigError(p + "finetune_epochs", f"finetune_epochs must be a whole number in [0, 1000]; got {e!r}.", "write finetune_epochs: 1, say (0: no fine-tuning after pruning).")
            kw["finetune_epochs"] = int(e)
        if "finetune_lr" in params:
            lr = params["finetune_lr"]
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < float(lr) < 10) or math.isnan(float(lr)):
                raise ConfigError(p + "finetune_lr", f"finetune_lr must be a positive learning rate below 10; got {lr!r}.", "write finetune_lr: 0.001, say.")
            kw["finetune_lr"] = float(lr)
        if "qat_epochs" in params:
            e = params["qat_epochs"]
            if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= 1000:
                raise ConfigError(p + "qat_epochs", f"qat_epochs must be a whole number in [0, 1000]; got {e!r}.", "write qat_epochs: 1, say (0: plain post-training quantization).")
            kw["qat_epochs"] = int(e)
        return cls(**kw)

    @property
    def prunes_channels(self) -> bool:
        return self.prune_ratio > 0

    @property
    def prunes_weights(self) -> bool:
        return self.prune_alpha > 0 or self.sparsity > 0

    @property
    def int8(self) -> bool:
        return self.quantize == "int8"

    @property
    def quant_aware(self) -> bool:
        """An int8 trial fine-tuned with simulated quantization before it is quantized."""
        return self.int8 and self.qat_epochs > 0

    @property
    def active(self) -> bool:
        """Whether anything is compressed (a plan of zeros and ``none`` leaves the network as built)."""
        return self.prunes_channels or self.prunes_weights or self.int8

    @property
    def fine_tunes(self) -> bool:
        """Fine-tuning follows pruning (it cannot help int8 post-training quantization alone)."""
        return (self.prunes_channels or self.prunes_weights) and self.finetune_epochs > 0

    def describe(self) -> dict[str, Any]:
        """The plan as plain data (stored with the trial)."""
        return asdict(self)


def compression_plan(params: Mapping[str, Any]) -> CompressionPlan | None:
    """The trial's :class:`CompressionPlan`, or ``None`` when its params name no compression param."""
    if not any(n in params for n in COMPRESSION_PARAMS):
        return None
    plan = CompressionPlan.from_params(params)
    if plan.qat_epochs > 0 and "quantize" not in params:
        raise ConfigError("qat_epochs", "qat_epochs fine-tunes int8 networks with simulated quantization, but the params have no quantize.", "add quantize: int8, or leave qat_epochs out.")
    return plan
