"""The speed of the study's machine, stored once: every latency of a study is reported at it.

A 2-vCPU VM's speed moved by 2x between two passes over the same 300 networks; the wall-clock
latency then ranked them with a test-retest Spearman of 0.58, the latency relative to hwtune's
reference network (measured in the same windows) with 0.95 (docs/benchmarks.md, "Issue 12"). So a
study measures the reference network once (:func:`hwtune.hardware.measure_reference_speed`), stores
it with its definition (``CONFIG_ATTR["reference"]``: every process and every resume uses the same
number), and its default meter reports ``latency_ms = ratio x stored reference ms``
(source ``measured:timer/reference``; the wall clock's value stays in ``extra["wall_ms"]``). Each
trial's measurement keeps the reference's own time in that window (``extra["ref_ms"]``,
``extra["measured_at"]``): the machine's drift over the study, which the summary shows.

CPU devices only: on a GPU the tiny reference is launch-bound, so its ratio to a network does not
cancel a clock change (not measured here; no GPU was lent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwtune.vocabulary import CONFIG_ATTR

if TYPE_CHECKING:
    import optuna

    from hwtune.study._study import Study

__all__ = [
    "REFERENCE_KEY",
    "adopt_stored_reference",
    "machine_speed",
    "record_reference_speed",
    "resolve_reference_speed",
    "with_reference_speed",
]

REFERENCE_KEY = "reference"
"""Key of the stored reference speed in the study's definition (:data:`hwtune.vocabulary.CONFIG_ATTR`)."""


def _applies(study: Study) -> bool:
    return getattr(study.device, "kind", None) == "cpu" and getattr(study, "reference_speed", True) is not False


def adopt_stored_reference(study: Study, storage: Any) -> None:
    """Take the reference speed stored with the study (if any): a stored one always wins, so every
    process of a study reports latencies at the same speed. Called by ``Study.open``."""
    try:
        study_id = storage.get_study_id_from_name(study.name)
    except KeyError:
        return
    cfg = storage.get_study_user_attrs(study_id).get(CONFIG_ATTR)
    ref = cfg.get(REFERENCE_KEY) if isinstance(cfg, Mapping) else None
    if isinstance(ref, Mapping) and isinstance(ref.get("ms"), (int, float)) and ref["ms"] > 0:
        study._reference = dict(ref)


def record_reference_speed(study: Study, optuna_study: optuna.Study) -> None:
    """Store the reference speed measured in this process with the study's definition (when none is there)."""
    ref = getattr(study, "_reference", None)
    cfg = optuna_study.user_attrs.get(CONFIG_ATTR)
    if ref is not None and isinstance(cfg, Mapping) and REFERENCE_KEY not in cfg:
        optuna_study.set_user_attr(CONFIG_ATTR, {**cfg, REFERENCE_KEY: ref})


def resolve_reference_speed(study: Study) -> dict[str, Any] | None:
    """The study's reference speed: stored, else measured now (about 0.5 s); ``None`` off a CPU."""
    if not _applies(study):
        return None
    if study._reference is None and study.storage_url is not None:
        from hwtune.study._storage import open_storage

        adopt_stored_reference(study, open_storage(study.storage_url))
    if study._reference is None:
        from hwtune.hardware import measure_reference_speed

        study._reference = measure_reference_speed(study.device)
    return study._reference


def with_reference_speed(study: Study, measure: Any) -> Any:
    """The study's default meter set to report at the study's reference speed; other meters as they are."""
    if getattr(measure, "reference_ms", False) is not None:  # not the default meter, or already set
        return measure
    ref = resolve_reference_speed(study)
    return dataclasses.replace(measure, reference_ms=float(ref["ms"])) if ref else measure


def machine_speed(records: Any, reference: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How the machine's speed moved over a study: the reference network's time in each measured
    trial's windows (``extra["ref_ms"]`` at ``extra["measured_at"]``) against the stored speed.

    Returns ``{"stored_ms", "stored_at", "min_ms", "max_ms", "slowest_at", "n"}`` (times in Unix
    seconds), or ``None`` when no measurement carries the reference."""
    seen = []
    for r in records:
        m = (getattr(r, "hardware", None) or {}).get("latency_ms")
        extra = getattr(m, "extra", None) or {}
        if isinstance(extra.get("ref_ms"), (int, float)) and isinstance(extra.get("measured_at"), (int, float)):
            seen.append((float(extra["ref_ms"]), float(extra["measured_at"])))
    if not seen:
        return None
    slowest = max(seen)
    return {
        "stored_ms": float(reference["ms"]) if reference else None,
        "stored_at": reference.get("measured_at") if reference else None,
        "min_ms": min(s[0] for s in seen),
        "max_ms": slowest[0],
        "slowest_at": slowest[1],
        "n": len(seen),
    }
