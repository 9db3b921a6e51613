"""The closing retest: when a study's run ends, its kept networks (and a few others) are measured once more.

A kept network is measured before training (the budget's decision) and again right after training
(``hwtune:final_hardware``): two measurements a training apart, seconds on small data. The network is
then exported and re-measured minutes or hours later, and a machine's speed, even at the stored
reference speed, moves over minutes more than over seconds (docs/benchmarks.md, "Runtime and export":
the same networks measured 24-30 % slower ten minutes after a study on the shared VM). Pairs taken
seconds apart cannot show that spread, so an interval built on them is too narrow.

So when :meth:`~hwtune.study.Study.optimize` finishes its budget with the study's own meter (the
default one: a custom ``measure`` is left alone) and keeps any network, every kept network whose
latency was timed is measured once more with that meter, at the study's reference speed, and so are
up to :data:`OTHER_NETWORKS` more of the study's measured networks (any status), spread from its first
trial to its last. Each is rebuilt untrained, as its trial first measured it: a network's cost depends
on its architecture, not its weights (and the measurement after training checks that for the kept
ones). Each pair (first measurement, closing one) spans from its trial's time to the end of the run:
the whole study's drift. :func:`hwtune.study._retest.retest_interval` prefers these pairs.

The measurements are stored as study user attributes ``hwtune:closing_hardware:<trial>`` (a finished
trial's own attributes cannot change), metric -> measurement as ``hwtune:hardware``, each with the time
it was taken. A later run of the same study overwrites them (the newest end of the study). A network
that fails to build or measure is logged and skipped: the closing retest never fails a study, and an
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

__all__ = ["OTHER_NETWORKS", "closing_agreement", "closing_hardware", "measure_again"]

log = logging.getLogger("hwtune")

OTHER_NETWORKS = 8
"""Networks measured at the close besides the kept ones: a default study keeps one network, and one
pair gives Student's t one degree of freedom (an interval 12.7 standard deviations wide)."""


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
    """A latency of its own (not reused from another trial of the same network), timed, finite."""
    d = hardware.get("latency_ms")
    v = d.get("value") if isinstance(d, Mapping) else None
    extra = d.get("extra") if isinstance(d, Mapping) else None
    reused = isinstance(extra, Mapping) and "reused_from_trial" in extra
    return isinstance(d, Mapping) and str(d.get("source", "")).startswith("measured") and isinstance(v, (int, float)) and math.isfinite(v) and not reused


def _measured_as(n: int, stored: Mapping[int, Any]) -> int:
    """The trial whose measurement trial ``n`` carries: itself, or the trial of the same network it
    was reused from (``reused_from_trial``: the same architecture, other training params)."""
    d = stored[n].hardware.get("latency_ms")
    extra = d.get("extra") if isinstance(d, Mapping) else None
    source = extra.get("reused_from_trial") if isinstance(extra, Mapping) else None
    return source if isinstance(source, int) and source in stored else n


def _spread(numbers: list[int], k: int) -> list[int]:
    """Up to ``k`` of ``numbers`` (sorted), evenly spaced from the first to the last."""
    if len(numbers) <= k:
        return numbers
    if k <= 1:
        return numbers[:k]
    return sorted({numbers[round(i * (len(numbers) - 1) / (k - 1))] for i in range(k)})


def measure_again(
    study: Any, measure: Callable[[Any, dict[str, Any]], Any], build: Callable[[dict[str, Any]], Any], others: int = OTHER_NETWORKS,
) -> list[int]:
    """Measure every kept, latency-timed trained network of ``study`` once more with ``measure`` (the
    study's meter, at its reference speed; a kept trial whose measurement was reused from another
    trial of the same network: that trial), and up to ``others`` more of the study's measured networks
    spread over the run; store them (``hwtune:closing_hardware:<trial>``). Nothing when no network is
    kept (nothing to export).

    Each network is rebuilt untrained with ``build`` and shaped as the trial measured it first
    (``measured_network``: pruning applied; int8 by the meter): cost depends on the architecture, not
    the weights, so the pair is a retest of the same measurement. Returns the trials measured."""
    from hwtune.study._measured_network import measured_network
    from hwtune.vocabulary import read_trial

    ost = study.optuna_study
    stored = {t.number: read_trial(t) for t in ost.get_trials(deepcopy=False)}
    timed = sorted(n for n, s in stored.items() if _timed_latency(s.hardware))
    kept_set = {n for n, r in study.model_keeper.summary(study).records.items() if r.kept and n in stored and stored[n].status == "trained"}
    kept = sorted({m for n in kept_set if (m := _measured_as(n, stored)) in timed})
    if not kept:
        return []
    extra = _spread([n for n in timed if n not in kept], others)
    done: list[int] = []
    for n in sorted(kept + extra):
        params = dict(stored[n].params)
        try:
            report = measure(measured_network(study, build(params), params)[0], params)
            entry: dict[str, Any] = {k: m.to_dict() for k, m in report.measurements.items()}
        except Exception as e:  # noqa: BLE001 - a network that cannot be measured again keeps its stored values
            log.warning("hwtune: the closing retest of trial %d failed (%s: %s); its stored measurements stand", n, type(e).__name__, str(e)[:200])
            continue
        entry["measured_at"] = time.time()
        ost.set_user_attr(CLOSING_HARDWARE_PREFIX + str(n), entry)
        done.append(n)
    if done:
        log.info("hwtune: measured %d network(s) again at the end of the run (the closing retest)", len(done))
    return done


def closing_agreement(records: Any, closing: Mapping[int, Mapping[str, Measurement]], metric: str = "latency_ms") -> dict[str, Any] | None:
    """How the closing retest compares with the first measurements (``TrialRecord``s), for the summary:
    ``{n, median_rel_diff, max_abs_rel_diff, worst_trial, between_rel_sd}`` (relative differences,
    closing / first - 1; ``between_rel_sd``: the spread the retest interval uses), or ``None``."""
    from hwtune.study._retest import _between_variance, retest_pairs

    diffs = []
    for r in records:
        first, last = r.hardware.get(metric), (closing.get(r.number) or {}).get(metric)
        if first is not None and last is not None and first.available and last.available and first.value and last.value is not None:
            diffs.append((last.value / first.value - 1.0, r.number))
    if not diffs:
        return None
    rel = sorted(d for d, _ in diffs)
    worst = max(diffs, key=lambda dn: abs(dn[0]))
    s2 = _between_variance(retest_pairs(records, metric, closing))
    return {"n": len(diffs), "median_rel_diff": rel[len(rel) // 2], "max_abs_rel_diff": abs(worst[0]), "worst_trial": worst[1],
            "between_rel_sd": math.sqrt(s2) if math.isfinite(s2) else None}
