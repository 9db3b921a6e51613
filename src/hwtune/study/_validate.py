"""Checks of a study's arguments that need no storage: run before anything is written.

Each function raises :class:`ConfigError` naming the argument and the fix. ``Study.__init__`` calls
:func:`check_study_args`, ``Study.optimize`` :func:`check_workers`, the loop :func:`check_metrics`
on what ``train_and_evaluate`` returned.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError, TrialFailure

__all__ = [
    "MAX_INFERENCE_BATCH",
    "check_cost_model_file",
    "check_metrics",
    "check_objectives_and_constraints",
    "check_study_args",
    "check_workers",
]

MAX_INFERENCE_BATCH = 65_536
"""Largest inference batch a study measures with (a zero batch of this many samples is allocated)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_study_args(
    *,
    device: Any = "cpu",
    input_shape: Any = None,
    inference_batch_size: Any = 1,
    seed: Any = 0,
    latency_rel_ci: Any = 0.05,
    latency_max_time_s: Any = 3.0,
    cost_model_file: Any = None,
    objectives: Any = None,
    constraints: Any = None,
) -> None:
    """Check ``Study(...)``'s arguments (types, ranges, the cost-model file, objectives vs constraints)."""
    if device is not None and not isinstance(device, str) and not hasattr(device, "describe"):
        raise ConfigError("device", f"expected text such as 'cpu', 'cpu:1' or 'cuda:0', got {device!r}.", f"write device='cuda:{device}'." if _is_int(device) else "write device='cpu' or 'cuda:0'.")
    if input_shape is not None and (
        isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or not input_shape or not all(_is_int(s) and s >= 1 for s in input_shape)
    ):
        raise ConfigError("input_shape", f"expected a tuple of positive integers (one sample, no batch dimension), got {input_shape!r}.", "pass e.g. input_shape=(1, 28, 28).")
    if not _is_int(inference_batch_size) or not (1 <= inference_batch_size <= MAX_INFERENCE_BATCH):
        raise ConfigError("inference_batch_size", f"must be an integer from 1 to {MAX_INFERENCE_BATCH:,}, got {inference_batch_size!r}.", "use the batch size the deployed network will see, e.g. 1 or 64.")
    if not _is_int(seed) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {seed!r}.", "use e.g. seed: 0.")
    if isinstance(latency_rel_ci, bool) or not isinstance(latency_rel_ci, numbers.Real) or not (0 < latency_rel_ci < 1):
        raise ConfigError("latency_rel_ci", f"must be in (0, 1), got {latency_rel_ci!r}.", "use e.g. 0.05 (the median's 95 % CI within ±5 %).")
    if isinstance(latency_max_time_s, bool) or not isinstance(latency_max_time_s, numbers.Real) or not (0 < latency_max_time_s < math.inf):
        raise ConfigError("latency_max_time_s", f"must be a positive number of seconds, got {latency_max_time_s!r}.", "use e.g. 3.0.")
    if cost_model_file is not None:
        check_cost_model_file(cost_model_file)
    if objectives is not None or constraints is not None:
        from hwtune.space import parse_constraints, parse_objectives

        objs = parse_objectives(objectives if objectives is not None else "minimize: error")
        cons = parse_constraints(constraints)
        check_objectives_and_constraints(objs, cons)


def check_cost_model_file(path: Any, field: str = "cost_model_file") -> None:
    """A cost-model file that exists must be a readable JSON object; a missing one is created later."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ConfigError(field, f"expected a file path, got {path!r}.", "give a .json path (created when missing).")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(field, f"{str(p)!r} is a directory.", "give the path of a .json file (created when missing), e.g. costs/cpu1.json.")
    if not p.exists():
        return  # written (with its folder) after the study
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(field, f"{str(p)!r} is not a cost-model file (bad JSON: {e}).", "delete it or give another path; hwtune writes it after a study.") from None
    except OSError as e:
        raise ConfigError(field, f"cannot read {str(p)!r}: {e.strerror or e}.", "check the file's permissions or give another path.") from None
    if not isinstance(raw, dict):
        raise ConfigError(field, f"{str(p)!r} holds a JSON {type(raw).__name__}, not a cost-model file.", "delete it or give another path; hwtune writes it after a study.")


def check_objectives_and_constraints(objectives: Sequence[Any], constraints: Sequence[Any], field: str = "constraints") -> None:
    """Refuse objectives that optimize the wrong way and constraints no network can meet."""
    from hwtune.space._metrics import METRICS

    for o in objectives:
        info = METRICS[o.metric]
        wrong = (o.direction == "minimize") == (info.better == "higher")
        if wrong:
            if o.metric in ("accuracy", "error"):
                fix = "write 'maximize: accuracy' or 'minimize: error'."
            else:
                fix = f"write '{'minimize' if info.better == 'lower' else 'maximize'}: {o.metric}' ({o.metric} is better {info.better})."
            raise ConfigError("objective", f"'{o.direction}: {o.metric}' searches for the worst network.", fix)
    upper: dict[str, Any] = {}
    lower: dict[str, Any] = {}
    for i, c in enumerate(constraints):
        bound = getattr(c, "bound", None)
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
            continue  # e.g. a relative limit resolved later
        if c.op in ("<=", "<"):
            if bound < 0 or (bound == 0 and c.op == "<"):
                raise ConfigError(f"{field}[{i}]", f"'{c}' can never hold: {c.metric} is never negative.", f"give a positive limit, e.g. '{c.metric} {c.op} 5'.")
            upper[c.metric] = (i, c)
        else:
            lower[c.metric] = (i, c)
    for metric, (i, up) in upper.items():
        if metric in lower:
            j, lo = lower[metric]
            if up.bound < lo.bound or (up.bound == lo.bound and (up.op == "<" or lo.op == ">")):
                raise ConfigError(
                    f"{field}[{max(i, j)}]",
                    f"'{up}' and '{lo}' contradict each other: no network can meet both.",
                    f"make the lower bound of {metric} smaller than its upper bound, or drop one.",
                )


def check_workers(storage_url: Any, n_workers: Any) -> None:
    """``n_workers`` is a positive integer; several workers need a storage other processes can open."""
    if not _is_int(n_workers) or n_workers < 1:
        raise ConfigError("n_workers", f"must be a positive integer, got {n_workers!r}.", "use 1 (this process only) or more.")
    if n_workers > 1:
        url = "" if storage_url is None else str(storage_url)
        if not url or url.startswith("sqlite://") and (url in ("sqlite://", "sqlite:///") or ":memory:" in url or "mode=memory" in url):
            raise ConfigError("storage", f"{n_workers} workers need a storage every process can open, got {url or 'in memory'!r}.", "use a file (sqlite:///hwtune.db) or a server URL, or 1 worker.")


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """What ``train_and_evaluate`` returned, as plain floats.

    NumPy scalars, 0-d arrays and 0-d tensors are accepted (converted with ``float()``); anything
    else that is not a finite real number, or an ``error`` / ``accuracy`` outside [0, 1], raises
    :class:`TrialFailure` naming the metric.
    """
    if not isinstance(metrics, Mapping):
        raise TrialFailure(f"train_and_evaluate must return a dict of metrics, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for k, v in metrics.items():
        value: float | None = None
        if not isinstance(v, (bool, str, bytes)):
            shape = getattr(v, "shape", ())
            if isinstance(v, numbers.Real) or (hasattr(v, "__float__") and tuple(shape) in ((), (1,))):
                try:
                    value = float(v)
                except (TypeError, ValueError):
                    value = None
        if value is None or not math.isfinite(value):
            raise TrialFailure(f"train_and_evaluate returned {k}={v!r}; every metric must be a finite number (a float, or a NumPy / tensor scalar)")
        if k in ("error", "accuracy") and not (0.0 <= value <= 1.0):
            raise TrialFailure(f"train_and_evaluate returned {k}={value!r}; {k} is a share in [0, 1] (return 0.03, not 3 %)")
        out[str(k)] = value
    return out
