"""Compressions of a built network (issue 14): structured channel pruning, magnitude pruning, int8
quantization, distillation — applied to the untrained network to measure its cost before training,
and to the trained one to deliver it. Heavy libraries (torch-pruning, ONNX Runtime) load on first use.
"""

from __future__ import annotations

from hwtune.compress._distill import (
    DistillResult,
    check_distill_params,
    distill,
    distillation_loss,
)
from hwtune.compress._magnitude import (
    SCOPES,
    LayerSparsity,
    SparsityReport,
    compressed_size_mb,
    make_permanent,
    prune_by_alpha,
    prune_to_sparsity,
    sparsity_report,
)
from hwtune.compress._pipeline import (
    compress_trained,
    evaluate_compressed,
    int8_onnx,
    measure_int8,
    random_calibration,
    shape_untrained,
)
from hwtune.compress._plan import (
    COMPRESSION_PARAMS,
    QUANTIZE_CHOICES,
    CompressionPlan,
    check_compression_space,
    check_compression_values,
    compression_plan,
    compression_roles,
)
from hwtune.compress._qat import QAT_LR, fake_quantized, quant_aware_finetune
from hwtune.compress._quantize import (
    INT8_RUNTIME,
    calibration_batches,
    int8_kernels,
    profile_int8,
    quantize_int8,
)
from hwtune.compress._structured import IMPORTANCES, prunable_layers, prune_channels

__all__: list[str] = []
__all__ += ["INT8_RUNTIME", "calibration_batches", "int8_kernels", "profile_int8", "quantize_int8"]  # int8 (issue 14, part 3)
__all__ += ["QAT_LR", "fake_quantized", "quant_aware_finetune"]  # quantization-aware fine-tuning (part 3's option)
__all__ += ["DistillResult", "check_distill_params", "distill", "distillation_loss"]  # distillation (part 4)
__all__ += ["IMPORTANCES", "prunable_layers", "prune_channels"]  # structured channel pruning (part 1)
__all__ += ["SCOPES", "LayerSparsity", "SparsityReport", "compressed_size_mb", "make_permanent", "prune_by_alpha", "prune_to_sparsity", "sparsity_report"]  # magnitude pruning (part 2)
__all__ += ["COMPRESSION_PARAMS", "QUANTIZE_CHOICES", "CompressionPlan", "check_compression_space", "check_compression_values", "compression_plan", "compression_roles"]  # the params of a trial (part 5)
__all__ += ["compress_trained", "evaluate_compressed", "int8_onnx", "measure_int8", "random_calibration", "shape_untrained"]  # in the loop (part 5)
