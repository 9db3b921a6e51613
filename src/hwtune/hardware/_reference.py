"""hwtune's fixed reference network: the same small work measured in every latency window, so a
slow-down of the whole machine can be told apart from a network's own cost.

The latency relative to the reference (``rel_to_ref``) stays put while the machine's speed drifts
(measured on a 2-vCPU VM whose speed moved by 2x between passes: test-retest Spearman 0.95 for the
ratio against 0.58 for the wall-clock latency, docs/benchmarks.md "Issue 12"). A study stores the
reference's speed once (:func:`measure_reference_speed`) and reports every latency at that speed
(``profile(..., reference_ms=...)``), so its decisions do not move with the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hwtune.hardware._latency import time_call

__all__ = [
    "REFERENCE_NAME",
    "measure_reference_speed",
    "reference_call",
]

REFERENCE_NAME = "hwtune-ref-3conv16@1x3x32x32"
"""The reference network's name in every measurement's ``extra`` (change it whenever the network changes)."""

_REFERENCES: dict[str, tuple[Any, Any]] = {}


def _build_reference() -> Any:
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def reference_call(device: Any) -> Callable[[], object]:
    """One inference of hwtune's fixed reference network on ``device`` (built once per process and device).

    Three 16-channel 3x3 convolutions on a 1x3x32x32 input (about 0.5-1 ms on one CPU thread): small
    enough to bracket every window, the same work in every window of every study on that device.
    """
    import torch

    spec = device.to_spec()
    if spec not in _REFERENCES:
        dev = torch.device(device.torch_device)
        net = _build_reference().to(dev)
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dev)
        _REFERENCES[spec] = (net, x)
    net, x = _REFERENCES[spec]

    def run() -> object:
        with torch.inference_mode():
            return net(x)

    return run


def measure_reference_speed(device: Any, seconds: float = 1.0, windows: int = 20) -> dict[str, Any]:
    """The reference network's latency on ``device`` at the machine's quick speed: the 10th
    percentile of ``windows`` window medians over about ``seconds`` (after a warm-up).

    A low percentile, not the median: a study that starts while another process shares the core
    would otherwise store a slow speed and report every latency of the study that much higher (an
    export re-measured later on a quiet machine ran 2-3x faster than its study said). The fastest
    tenth of the windows is the machine when it had the core to itself.

    Returns ``{"reference", "ms", "median_ms", "p90_ms", "windows", "device", "measured_at"}``: what
    a study stores once and scales every later latency to (``profile(..., reference_ms=...)``).
    """
    call = reference_call(device)
    sync = device.sync if getattr(device, "kind", "cpu") == "cuda" else None
    with device.activate():
        for _ in range(5):
            call()
        meds = []
        per = max(seconds / max(windows, 1), 0.005)
        for _ in range(max(windows, 1)):
            xs: list[float] = []
            t0 = time.perf_counter()
            while len(xs) < 3 or time.perf_counter() - t0 < per:
                xs.append(time_call(call, sync, time.perf_counter, None))
            meds.append(float(np.median(xs)))
    m = np.asarray(meds)
    when = time.time()
    return {
        "reference": REFERENCE_NAME,
        "ms": float(np.percentile(m, 10)),
        "median_ms": float(np.median(m)),
        "p90_ms": float(np.percentile(m, 90)),
        "windows": int(m.size),
        "device": device.to_spec(),
        "measured_at": round(when, 3),
    }
