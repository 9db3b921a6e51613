"""Deliver what a study found: export (ONNX, TorchScript) with verification and re-measurement,
and the run-time choice among the Pareto models (:class:`AdaptiveModel`).

Above ``study`` (DESIGN.md): it reads stored trials and their kept weights; nothing below imports it.
"""

from __future__ import annotations

__all__: list[str] = []

# export with verification and re-measurement (issue 13, item 3): light (torch and onnxruntime on first use)
from hwtune.deploy._export import FORMATS, export, verify_export
from hwtune.deploy._manifest import (
    FORMAT_VERSION,
    MANIFEST,
    missing_keys,
    read_manifest,
)

__all__ += ["FORMATS", "FORMAT_VERSION", "MANIFEST", "export", "missing_keys", "read_manifest", "verify_export"]

# run-time choice among the Pareto models (issue 13, item 5): light (no torch; onnxruntime on first use)
from hwtune.deploy._adaptive import AdaptiveModel, open_session  # noqa: E402
from hwtune.deploy._bundle import Bundle, BundleModel, Cost, read_bundle  # noqa: E402
from hwtune.deploy._policy import Budget, Candidate, Decision, Hysteresis, Policy, choose  # noqa: E402
from hwtune.deploy._sensors import Reading, Sensors, StaticSensors, SystemSensors  # noqa: E402

__all__ += [
    "AdaptiveModel", "Policy", "Hysteresis", "Sensors", "SystemSensors", "StaticSensors", "Reading",
    "Bundle", "BundleModel", "Cost", "read_bundle", "open_session", "Budget", "Candidate", "Decision", "choose",
]
