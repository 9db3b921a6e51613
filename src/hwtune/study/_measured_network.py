"""The network a trial measures: the built one, with the cost-changing compressions of its params
applied (issue 14) — channels pruned, weights zeroed by magnitude — so that it is measured as it will
run. One function for the loop and for the calibration of relative limits, so both measure alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwtune.compress._plan import CompressionPlan, compression_plan
from hwtune.exceptions import ConfigError

__all__ = ["RemoteCompressedMeter", "measured_network"]


def measured_network(study: Any, model: Any, params: dict[str, Any]) -> tuple[Any, CompressionPlan | None]:
    """``(network to measure, the trial's compression plan or None)``. int8 is applied by the meter
    (it runs the network in ONNX Runtime's int8 kernels); ``model`` itself is left untouched."""
    plan = compression_plan(params)
    if plan is None or not (plan.prunes_channels or plan.prunes_weights):
        return model, plan
    import torch

    from hwtune.compress import shape_untrained

    if study.input_shape is None:
        raise ConfigError("input_shape", "pruning a network needs the shape of one input sample (to trace its layers).", "pass input_shape=(C, H, W) to the Study.")
    return shape_untrained(model, plan, torch.zeros((1, *study.input_shape))), plan


@dataclass
class RemoteCompressedMeter:
    """A remote device's meter (``hardware.RemoteMeter``) that sends an ``int8`` trial's network as its
    int8 ONNX model (labelled ``onnxruntime-int8``), as the local default meter measures it; other
    trials as they are. Picklable for worker processes."""

    meter: Any

    def __call__(self, model: Any, params: dict[str, Any] | None = None) -> Any:
        plan = compression_plan(params or {})
        if plan is not None and plan.int8:
            from hwtune.compress import INT8_RUNTIME, int8_onnx

            return self.meter(model, params, export=int8_onnx, runtime_label=INT8_RUNTIME)
        return self.meter(model, params)

    def after_trial(self, study: Any, trial: Any) -> None:
        self.meter.after_trial(study, trial)
