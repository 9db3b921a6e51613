"""Did measuring before training tell the truth? (issue 14) The hardware measured on the untrained
network (what the budget was decided on) against the trained network measured again after training
(``hwtune:final_hardware``: every compressed network, and every kept one), over a study's trained
trials. For an uncompressed network the two are a retest of the same cost (``study._retest``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["CHECKED_METRICS", "compression_agreement"]

CHECKED_METRICS: tuple[str, ...] = ("latency_ms", "size_mb", "params", "energy_mj", "peak_mem_mb")


def _value(m: Any) -> float | None:
    v = getattr(m, "value", None)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _inside(before: Any, after: float) -> bool | None:
    lo, hi = before.ci_low, before.ci_high
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)):
        return None
    return float(lo) <= after <= float(hi)


def compression_agreement(records: Iterable[Any], metrics: Iterable[str] = CHECKED_METRICS) -> dict[str, dict[str, Any]]:
    """Per metric, over trained trials that carry both measurements (``TrialRecord``s, ``Study.records()``):
    ``n``, ``spearman`` (rank correlation; ``None`` under 3 pairs or constant values), ``median_rel_diff``
    ((after - before) / before, median), ``max_abs_rel_diff`` and its ``worst_trial``, ``inside_interval``
    (share of after-values inside the before-measurement's interval, where it has one), the sources.
    Metrics with no pair are left out; an empty dict when the study compresses nothing."""
    pairs: dict[str, list[tuple[int, float, float, bool | None, str, str]]] = {m: [] for m in metrics}
    for r in records:
        if r.status != "trained" or not r.final_hardware:
            continue
        for m in pairs:
            b, a = r.hardware.get(m), r.final_hardware.get(m)
            vb, va = _value(b), _value(a)
            if vb is None or va is None or vb == 0:
                continue
            pairs[m].append((r.number, vb, va, _inside(b, va), str(b.source), str(a.source)))
    out: dict[str, dict[str, Any]] = {}
    for m, ps in pairs.items():
        if not ps:
            continue
        rel = [(a - b) / b for _, b, a, _, _, _ in ps]
        worst = max(range(len(ps)), key=lambda i: abs(rel[i]))
        inside = [p[3] for p in ps if p[3] is not None]
        rho: float | None = None
        before, after = [p[1] for p in ps], [p[2] for p in ps]
        if len(ps) >= 3 and len(set(before)) > 1 and len(set(after)) > 1:
            from scipy.stats import spearmanr

            rho = float(spearmanr(before, after).statistic)
        srt = sorted(rel)
        mid = len(srt) // 2
        out[m] = {
            "n": len(ps),
            "spearman": rho,
            "median_rel_diff": srt[mid] if len(srt) % 2 else (srt[mid - 1] + srt[mid]) / 2,
            "max_abs_rel_diff": abs(rel[worst]),
            "worst_trial": ps[worst][0],
            "inside_interval": sum(inside) / len(inside) if inside else None,
            "sources": sorted({p[4] for p in ps} | {p[5] for p in ps}),
        }
    return out
