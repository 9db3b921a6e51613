"""The closing retest: when a study's run ends, its kept networks are measured once more.

A kept network is measured before training (the budget's decision) and again right after training
(``hwtune:final_hardware``): two measurements a training apart, seconds on small data. The network is
then exported and re-measured minutes or hours later, and a machine's speed, even at the stored
reference speed, moves over minutes more than over seconds (docs/benchmarks.md, "Runtime and export":
the same networks measured 24-30 % slower ten minutes after a study on the shared VM). Pairs taken
seconds apart cannot show that spread, so an interval built on them is too narrow.

So when :meth:`~hwtune.study.Study.optimize` finishes its budget, every kept network whose latency was
timed is loaded and measured once more with the study's own meter, at the study's reference speed. The
pair (first measurement, closing one) spans from the trial's time to the end of the run: the whole
study's drift. :func:`hwtune.study._retest.retest_interval` prefers these pairs.

The measurements are stored as study user attributes ``hwtune:closing_hardware:<trial>`` (a finished
trial's own attributes cannot change), metric -> measurement as ``hwtune:hardware``, each with the time
it was taken. A later run of the same study overwrites them (the newest end of the study). A network
that fails to load or measure is logged and skipped: the closing retest never fails a study, and an
interrupt during it loses nothing already stored.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from hwtune.hardware import Measurement
from hwtune.vocabulary import CLOSING_HARDWARE_PREFIX

__all__ = ["closing_hardware", "measure_kept_again"]

log = logging.getLogger("hwtune")


def closing_hardware(study_user_attrs: Mapping[str, Any]) -> dict[int, dict[str, Measurement]]:
    """trial number -> metric -> its closing measurement, read from a study's user attributes."""
    out: dict[int, dict[str, Measurement]] = {}
    for k, v in study_user_attrs.items():
        tail = k[len(CLOSING_HARDWARE_PREFIX):] if k.startswith(CLOSING_HARDWARE_PREFIX) else ""
        if not tail.isdigit() or not isinstance(v, Mapping):
            continue
        out[int(tail)] = {
            m: Measurement.from_dict({"metric": m, **d}) for m, d in v.items() if isinstance(d, Mapping) and m != "measured_at"
        }
    return out


def _timed_latency(hardware: Mapping[str, Any]) -> bool:
    d = hardware.get("latency_ms")
    v = d.get("value") if isinstance(d, Mapping) else None
    return isinstance(d, Mapping) and str(d.get("source", "")).startswith("measured") and isinstance(v, (int, float)) and math.isfinite(v)


def measure_kept_again(study: Any, measure: Callable[[Any, dict[str, Any]], Any], load: Callable[[Any, int], Any]) -> list[int]:
    """Measure every kept, latency-timed trained network of ``study`` once more with ``measure`` (the
    study's meter, at its reference speed) and store it (``hwtune:closing_hardware:<trial>``).

    ``load(study, trial_number)`` gives the kept network. Returns the trials measured."""
    from hwtune.vocabulary import read_trial

    ost = study.optuna_study
    by_number = {t.number: t for t in ost.get_trials(deepcopy=False)}
    kept = sorted(n for n, r in study.model_keeper.summary(study).records.items() if r.kept and n in by_number)
    done: list[int] = []
    for n in kept:
        stored = read_trial(by_number[n])
        if stored.status != "trained" or not _timed_latency(stored.hardware):
            continue
        try:
            report = measure(load(study, n), dict(stored.params))
            entry: dict[str, Any] = {k: m.to_dict() for k, m in report.measurements.items()}
        except Exception as e:  # noqa: BLE001 - a network that cannot be measured again keeps its stored values
            log.warning("hwtune: the closing retest of trial %d failed (%s: %s); its stored measurements stand", n, type(e).__name__, str(e)[:200])
            continue
        entry["measured_at"] = time.time()
        ost.set_user_attr(CLOSING_HARDWARE_PREFIX + str(n), entry)
        done.append(n)
    if done:
        log.info("hwtune: measured %d kept network(s) again at the end of the run (the closing retest)", len(done))
    return done
