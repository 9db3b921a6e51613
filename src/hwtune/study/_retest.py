"""Where a later re-measurement of a stored cost will fall: the study's retest interval.

A measurement's own interval (``ci_low``, ``ci_high``) is the precision of its median at the time it was
taken: its windows span about a second. A re-measurement minutes or hours later, e.g. of the exported
file, also sees how the machine's speed moved in between (on a shared VM, by several per cent even at
a stored reference speed: docs/benchmarks.md, issues 12 and 13), so it falls outside that interval far
more often than 5 % of the time. Calling that interval "where the latency is" would not be honest.

A study measures every network it keeps before training (the budget's decision), again after training
(``hwtune:final_hardware``), and once more when its run ends (the closing retest,
:mod:`hwtune.study._closing`). The pairs of the whole study show how far two measurements of the same
network taken apart in time differ beyond their own intervals. :func:`retest_interval` turns them into a
95 % interval for one more measurement of a network, in log space:

- the pairs: (first, closing retest) where the study has them, since they span from each trial to the
  end of the run; else (before, after training), a training apart;
- each measurement's standard error from its own interval (``ln(hi / lo) / (2 x 1.96)``);
- the between-time variance per measurement ``s_b^2 = max(0, mean(d^2 - se_1^2 - se_2^2)) / 2`` over the
  pairs' log differences ``d`` (method of moments; a pair hit by a burst of load widens it);
- the network's centre: the mean of its two log values (or its one);
- a new measurement minus that centre has variance ``se_new^2 + s_b^2 + var(centre)``; the interval is
  the centre +- Student's t with as many degrees of freedom as pairs (few pairs: a wide interval).

It is only as honest as the study's pairs are representative: a machine that drifts more over longer
spans, or under another load, than it did within the study puts later measurements outside it
(measured: docs/benchmarks.md, "Runtime and export").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwtune.hardware._windows import t_quantile_975

__all__ = ["RetestInterval", "retest_interval", "retest_pairs"]

_Z = 1.959964


@dataclass(frozen=True)
class RetestInterval:
    """A 95 % interval for one more measurement of a network's ``metric`` on the study's device.

    Attributes:
        value: the network's centre (geometric mean of its measurements).
        low, high: the interval.
        pairs: how many pairs of the study it rests on.
        pair_kind: ``closing_retest`` (first measurement, closing retest at the end of the run) or
            ``after_training`` (before, after training).
        between_rel_sd: the between-time spread of one measurement (relative, ~ ``s_b``).
        how: one sentence, for manifests and reports.
    """

    metric: str
    value: float
    low: float
    high: float
    pairs: int
    between_rel_sd: float
    how: str
    pair_kind: str = "after_training"

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "pairs": self.pairs, "pair_kind": self.pair_kind,
                "between_rel_sd": round(self.between_rel_sd, 5), "how": self.how}


def _log_and_se(m: Any) -> tuple[float, float] | None:
    """(ln value, standard error of ln value) of a measurement with a positive value and interval."""
    if m is None or not getattr(m, "available", False):
        return None
    v, lo, hi = m.value, m.ci_low, m.ci_high
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (v, lo, hi)) or v <= 0 or lo <= 0 or hi < lo:
        return None
    return math.log(v), math.log(hi / lo) / (2 * _Z)


def retest_pairs(
    records: Iterable[Any], metric: str = "latency_ms", closing: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """((ln, se) first, (ln, se) later) of every trial measured twice (``TrialRecord``s): with
    ``closing`` (trial -> metric -> measurement, :func:`hwtune.study._closing.closing_hardware`), each
    trial of any status with a closing retest; else each trained trial measured again after training."""
    out = []
    for r in records:
        if not closing and getattr(r, "status", None) != "trained":
            continue
        a = _log_and_se(r.hardware.get(metric))
        b = _later(r, metric, closing)
        if a is not None and b is not None:
            out.append((a, b))
    return out


def _later(r: Any, metric: str, closing: Mapping[int, Mapping[str, Any]] | None) -> tuple[float, float] | None:
    if closing:
        return _log_and_se((closing.get(r.number) or {}).get(metric))
    return _log_and_se((getattr(r, "final_hardware", None) or {}).get(metric))


def _own_later(r: Any, metric: str, closing: Mapping[int, Mapping[str, Any]] | None) -> tuple[float, float] | None:
    """The later measurement of ``r``'s network: its own, or, when its first measurement was reused
    from another trial of the same network (``reused_from_trial``), that trial's closing retest."""
    later = _later(r, metric, closing)
    first = r.hardware.get(metric)
    source = (getattr(first, "extra", None) or {}).get("reused_from_trial")
    if later is None and closing and isinstance(source, int):
        later = _log_and_se((closing.get(source) or {}).get(metric))
    return later


def _between_variance(pairs: Sequence[tuple[tuple[float, float], tuple[float, float]]]) -> float:
    if not pairs:
        return math.nan
    excess = [(b[0] - a[0]) ** 2 - a[1] ** 2 - b[1] ** 2 for a, b in pairs]
    return max(0.0, sum(excess) / len(excess)) / 2


def retest_interval(
    record: Any, records: Iterable[Any], metric: str = "latency_ms", closing: Mapping[int, Mapping[str, Any]] | None = None,
) -> RetestInterval | None:
    """The 95 % interval for a later measurement of ``record``'s ``metric`` (a ``TrialRecord``), from
    its own measurements and the study's pairs (``records``: the study's trials). ``closing``: the
    study's closing retest (trial -> metric -> measurement): when it holds any pair, the pairs are
    (first measurement, closing one), which span the whole run; else (before, after training).
    ``None`` when the trial has no measurement with an interval or the study has no pair yet."""
    first = _log_and_se(record.hardware.get(metric))
    if first is None:
        return None
    records = list(records)
    pairs = retest_pairs(records, metric, closing) if closing else []
    if not pairs:  # no closing pair of this metric: the pairs after training
        closing = None
        pairs = retest_pairs(records, metric)
    if not pairs:
        return None
    s2 = _between_variance(pairs)
    second = _own_later(record, metric, closing)
    own = [first] + ([second] if second is not None else [])
    centre = sum(x for x, _ in own) / len(own)
    var_centre = (sum(se**2 for _, se in own) + len(own) * s2) / len(own) ** 2
    se_new2 = sum(se**2 for _, se in own) / len(own)  # a re-measurement as precise as the study's
    half = t_quantile_975(len(pairs)) * math.sqrt(se_new2 + s2 + var_centre)
    kind = "(first, closing retest at the end of the run)" if closing else "before/after training"
    how = (
        f"95 % interval for one more measurement if the machine drifts as it did within the study: the trial's {len(own)} "
        f"measurement{'s' if len(own) > 1 else ''} and the between-time spread of {len(pairs)} {kind} "
        f"pair{'s' if len(pairs) > 1 else ''} of the study (±{math.sqrt(s2) * 100:.1f} % per measurement beyond their own "
        f"intervals), Student's t with {len(pairs)} degrees of freedom"
    )
    return RetestInterval(metric, math.exp(centre), math.exp(centre - half), math.exp(centre + half), len(pairs), math.sqrt(s2), how,
                          "closing_retest" if closing else "after_training")
