"""Checking a bundle's models before serving them (``hwtune deploy check``).

Each model is opened in ONNX Runtime and run on a seeded random batch of the manifest's input shape
at batch 1 and at each of the manifest's batch sizes: the output must have the request's batch size,
the same per-sample shape as the other models of the front, and only finite values. The manifest's
own verification (written at export: the exported model against PyTorch on real inputs) is read and
shown; one that says it failed fails the check too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwtune.deploy._bundle import Bundle, BundleModel
from hwtune.exceptions import ConfigError

__all__ = ["ModelCheck", "check_bundle", "verification_summary"]

_FIX_BATCH = "export with a dynamic batch dimension (hwtune export does; torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))."


@dataclass
class ModelCheck:
    """What the check found for one model; ``problems`` empty means it passed."""

    model: BundleModel
    batches: list[int] = field(default_factory=list)
    output_shape: tuple[int, ...] | None = None
    """Per-sample output shape (without the batch dimension)."""
    problems: list[str] = field(default_factory=list)
    manifest_verification: str = "none in the manifest"

    @property
    def ok(self) -> bool:
        return not self.problems


_FAILED_KEYS = ("passed", "ok", "verified")


def verification_summary(v: Mapping[str, Any]) -> tuple[str, str | None]:
    """(text for the table, problem or ``None``) from a model's ``verification`` entry."""
    if not v:
        return "none in the manifest", None
    bits, problem = [], None
    for k in _FAILED_KEYS:
        if k in v:
            bits.append(f"{k}={v[k]}")
            if v[k] is False:
                problem = f"the manifest's verification failed ({k}=false)"
    for k, val in v.items():
        if k in _FAILED_KEYS or isinstance(val, (dict, list)):
            continue
        bits.append(f"{k}={val:.3g}" if isinstance(val, float) else f"{k}={val}")
        if isinstance(val, float) and not math.isfinite(val):
            problem = problem or f"the manifest's verification has a non-finite {k}"
    return ", ".join(bits[:6]), problem


def _declared_shape_problem(sess: Any, shape: tuple[int, ...]) -> str | None:
    dims = list(sess.get_inputs()[0].shape)
    if len(dims) != len(shape) + 1:
        return f"its input has {len(dims)} dimensions {dims}; the manifest's input shape needs {len(shape) + 1} (batch, {', '.join(map(str, shape))})"
    for got, want in zip(dims[1:], shape):
        if isinstance(got, int) and got != want:
            return f"its input is {dims}; the manifest says (batch, {', '.join(map(str, shape))})"
    return None


def check_bundle(bundle: Bundle, session: Callable[[BundleModel], Any], *, seed: int = 0, max_batch: int = 1024) -> list[ModelCheck]:
    """Run every model of ``bundle`` (``session(model)`` opens it) and check its outputs.

    Raises:
        ConfigError: a model file cannot be loaded, or cannot run on the manifest's input shape at
            one of its batch sizes (a file that does not belong in this bundle as it is).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = sorted({1, *(b for b in bundle.batch_sizes if b <= max_batch)})
    checks: list[ModelCheck] = []
    for m in bundle.models:
        sess = session(m)
        where = str(m.path)
        bad = _declared_shape_problem(sess, bundle.input_shape)
        if bad:
            raise ConfigError(where, f"does not fit the manifest: {bad}.", "re-export the bundle with `hwtune export --pareto --format onnx --out DIR`.")
        c = ModelCheck(m)
        c.manifest_verification, problem = verification_summary(m.verification)
        if problem:
            c.problems.append(problem)
        inp = sess.get_inputs()[0]
        dtype = {"tensor(float16)": np.float16, "tensor(double)": np.float64}.get(getattr(inp, "type", ""), np.float32)
        for b in batches:
            x = rng.random((b, *bundle.input_shape), dtype=np.float32).astype(dtype)
            try:
                out = sess.run(None, {inp.name: x})[0]
            except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise ConfigError(where, f"fails on a batch of {b} of the manifest's input shape {list(bundle.input_shape)} ({first}).", _FIX_BATCH) from None
            out = np.asarray(out)
            c.batches.append(b)
            if out.ndim < 1 or out.shape[0] != b:
                c.problems.append(f"batch {b} gave an output of shape {tuple(out.shape)} (first dimension must be {b})")
                continue
            if c.output_shape is None:
                c.output_shape = tuple(int(d) for d in out.shape[1:])
            elif tuple(out.shape[1:]) != c.output_shape:
                c.problems.append(f"output per sample changes with the batch: {c.output_shape} vs {tuple(out.shape[1:])}")
            if not np.all(np.isfinite(out)):
                n = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
                c.problems.append(f"batch {b}: {n} of {out.size} outputs are NaN or infinite")
        checks.append(c)
    shapes = {c.output_shape for c in checks if c.output_shape is not None}
    if len(shapes) > 1:
        common = max(shapes, key=lambda s: sum(c.output_shape == s for c in checks))
        for c in checks:
            if c.output_shape is not None and c.output_shape != common:
                c.problems.append(f"outputs {c.output_shape} per sample where the other models give {common}: not the same task")
    return checks
