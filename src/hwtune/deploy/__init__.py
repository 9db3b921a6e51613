"""Deliver what a study found: export (ONNX, TorchScript) with verification and re-measurement,
and the run-time choice among the Pareto models (:class:`AdaptiveModel`).

Above ``study`` (DESIGN.md): it reads stored trials and their kept weights; nothing below imports it.
"""

from __future__ import annotations

__all__: list[str] = []
