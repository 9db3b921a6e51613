"""The report's sortable trial table and device description, as HTML.

One row per trial: status, the quality metric, each hardware metric of the study (measured, with its
source; the prediction made before measuring beneath, labelled so), each constraint's verdict, the
params and the duration. A missing value reads "not measured", never 0. Each sortable cell carries its
raw value in ``data-v`` (the page's small script sorts on it).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from hwtune.report._data import MARKS, ReportData, ReportTrial, Value
from hwtune.report._tables import metric_label

__all__ = ["trial_table_html", "device_html", "NOT_MEASURED"]

NOT_MEASURED = "not measured"


def _esc(s: Any) -> str:
    return html.escape(str(s))


def _cell(v: Value | None, pred: Value | None = None) -> str:
    if v is None and pred is None:
        return f'<td data-v="">{NOT_MEASURED}</td>'
    parts = []
    sort = ""
    if v is not None:
        parts.append(f'{v.value:.4g}{" " + _esc(v.unit) if v.unit else ""}<small>{_esc(v.source)}</small>')
        sort = repr(v.value)
    else:
        parts.append(NOT_MEASURED)
    if pred is not None:
        interval = f" [{pred.low:.3g}, {pred.high:.3g}]" if pred.low is not None and pred.high is not None else ""
        parts.append(f"<small>predicted {pred.value:.4g}{interval} ({_esc(pred.source)})</small>")
        sort = sort or repr(pred.value)
    title = "; ".join(x.text() for x in (v, pred) if x is not None)
    return f'<td data-v="{sort}" title="{_esc(title)}">{"".join(parts)}</td>'


def _constraint_cell(t: ReportTrial, name: str) -> str:
    v = t.stored.constraints.get(name)
    if v is None:
        return '<td data-v="">not checked</td>'
    verdict = "within" if v <= 0 else f"over by {v:.3g}"
    return f'<td data-v="{v!r}" title="violation {v:.4g} (Optuna\'s convention: feasible when &lt;= 0)">{_esc(verdict)}</td>'


def _params(t: ReportTrial) -> str:
    items = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.stored.params.items())
    return f'<td data-v="{_esc(items)}">{_esc(items)}</td>'


def trial_table_html(data: ReportData) -> str:
    """The whole table (``<table class="trials">``) in a scrolling box."""
    q = data.quality_metric
    hw = data.hardware_metrics
    constraint_names: list[str] = []
    for t in data.trials:
        for k in t.stored.constraints:
            if k not in constraint_names:
                constraint_names.append(k)
    head = ["trial", "status", f"{q}"] + [f"{m}" for m in hw] + [f"constraint: {c}" for c in constraint_names] + ["params", "duration (s)"]
    titles = ["Optuna's trial number", "hwtune's status", metric_label(q)] + [metric_label(m) for m in hw] + \
        ["violation: feasible when <= 0"] * len(constraint_names) + ["every param, fixed ones included", "start to end"]
    rows = []
    for t in data.trials:
        label = MARKS[t.mark][0] if t.mark in MARKS else t.status
        status = f'<td data-v="{_esc(t.status)}" class="s-{_esc(t.status)}" title="{_esc(t.stored.failure or label)}">{_esc(t.status.replace("_", " "))}'
        if t.status == "pruned" and t.last_error():
            status += f"<small>after epoch {t.last_error()[0]}</small>"  # type: ignore[index]
        status += "</td>"
        cells = [f'<td data-v="{t.number}">{t.number}</td>', status, _cell(t.value(q))]
        cells += [_cell(t.value(m), t.prediction(m)) for m in hw]
        cells += [_constraint_cell(t, c) for c in constraint_names]
        cells.append(_params(t))
        d = t.stored.duration_s
        cells.append(f'<td data-v="{d!r}">{d:.1f}</td>' if d is not None else '<td data-v="">not recorded</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f'<th title="{_esc(ti)}">{_esc(h)}</th>' for h, ti in zip(head, titles))
    return f'<div class="scroll"><table class="trials" id="trial-table"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _when(ts: Any) -> str:
    if isinstance(ts, (int, float)):
        return f"{datetime.fromtimestamp(float(ts), tz=timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    return str(ts)


def device_html(data: ReportData) -> str:
    """The device as measured (``hwtune:device`` of a measured trial) and the study's measuring setup."""
    cfg = data.config
    rows: list[tuple[str, Any]] = []
    for k in ("device", "inference_batch_size", "input_shape", "runtime"):
        if cfg.get(k) is not None:
            rows.append((f"study: {k}", cfg[k]))
    for k, v in data.device.items():
        rows.append((f"measured on: {k}", v))
    speed = data.machine_speed
    if speed:
        stored = speed.get("stored_ms")
        rows.append(("machine speed", f"hwtune's reference network took {speed['min_ms']:.3g}-{speed['max_ms']:.3g} ms in {speed['n']} measurements"
                     + (f"; latencies are at its stored {stored:.3g} ms (measured {_when(speed.get('stored_at'))})" if stored else "")))
    if not rows:
        return '<p class="missing">No device was recorded: no network of the study was measured.</p>'
    cells = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="meta" id="device">{cells}</table>'
