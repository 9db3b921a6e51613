"""Param importance for the quality metric and for each hardware metric separately, with Optuna's own
importance evaluators and plot (``optuna.visualization.plot_param_importances``).

Optuna's evaluators read COMPLETE trials with one value. A hwtune study's over-budget networks are
PRUNED (never trained) yet measured, and they carry most of what is known about the hardware cost; so
each target gets an in-memory Optuna study of its own, one COMPLETE trial per network that has a value
of that metric (measured, never predicted), with the trial's searched params and distributions. A
hardware metric is rated over the architecture and compression params only. The stored study is only
read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwtune.report._data import ReportData, ReportTrial
from hwtune.report._figures import LAYOUT, Missing

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

__all__ = ["target_study", "importances", "importance_figures", "hardware_axes"]

MIN_TRIALS = 4
"""Fewer networks with a value than this: no importance (Optuna's evaluators need a few to fit)."""


def _trials_with(data: ReportData, metric: str) -> list[tuple[ReportTrial, float]]:
    out = []
    for t in data.finished:
        if metric in ("error", "accuracy", "test_error") and t.status != "trained":
            continue  # a pruned network's error is an earlier epoch's: not comparable
        v = t.value(metric)
        if v is not None and not v.predicted and t.searched:
            out.append((t, v.value))
    return out


def target_study(data: ReportData, metric: str) -> "optuna.Study | None":
    """An in-memory study holding one COMPLETE trial per network with a measured ``metric``."""
    import optuna

    rows = _trials_with(data, metric)
    if len(rows) < MIN_TRIALS:
        return None
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.add_trials([optuna.trial.create_trial(params=t.searched, distributions=t.distributions, value=v) for t, v in rows])
    return study


def _params_for(data: ReportData, metric: str, study: "optuna.Study") -> list[str] | None:
    """The params rated for ``metric``: every searched one for a quality metric (``None``: Optuna's
    default, the params all networks share); for a hardware metric only the architecture and
    compression ones all networks share, since a training param cannot change a hardware cost (equal
    hardware keys share one measurement): rating it would only rate noise."""
    from hwtune.space._metrics import METRICS

    if metric not in METRICS or METRICS[metric].kind != "hardware":
        return None
    hw = set(data.hardware_params())
    shared = set.intersection(*(set(t.params) for t in study.trials)) if study.trials else set()
    return [p for p in data.hardware_params() if p in shared and p in hw] or None


def _evaluator() -> Any:
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=0)  # seeded: the same study gives the same report


def importances(data: ReportData, metric: str) -> dict[str, float] | None:
    """param -> importance for ``metric`` (Optuna's fANOVA, seeded), ``None`` with too few networks."""
    import optuna

    study = target_study(data, metric)
    if study is None:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=_evaluator(), params=_params_for(data, metric, study)))
    except (RuntimeError, ValueError):  # e.g. every network has the same params in the shared space
        return None


def hardware_axes(data: ReportData) -> list[str]:
    """The hardware params to map feasibility over: by importance for the first hardware metric, among
    the params every network has (so that every proposal has a point); else in the space's order."""
    hw = data.hardware_params()
    metric = data.hardware_metrics[0] if data.hardware_metrics else None
    ranked: list[str] = []
    if metric is not None:
        imp = importances(data, metric)
        if imp:
            ranked = [p for p, _ in sorted(imp.items(), key=lambda kv: -kv[1]) if p in hw]
    common = [p for p in hw if all(p in t.stored.params for t in data.finished)]
    ordered = ranked + [p for p in common if p not in ranked] + [p for p in hw if p not in ranked and p not in common]
    return ordered[:2]


def importance_figure(data: ReportData, metric: str) -> "go.Figure | Missing":
    """Optuna's importance plot of one target, titled with the metric and how many networks it used."""
    import optuna

    study = target_study(data, metric)
    n = len(_trials_with(data, metric))
    if study is None:
        return Missing(f"{n} network(s) have a measured {metric}; importance needs at least {MIN_TRIALS}.")
    try:
        fig = optuna.visualization.plot_param_importances(study, evaluator=_evaluator(), params=_params_for(data, metric, study), target_name=metric)
    except (RuntimeError, ValueError) as e:
        return Missing(f"Optuna could not rate the params for {metric}: {e}")
    what = "trained networks" if metric in ("error", "accuracy") else "measured networks incl. over budget; hardware params"
    fig.update_yaxes(title_text="", automargin=True)
    n_params = len(fig.data[0].y) if fig.data else 1
    fig.update_layout(**{**LAYOUT, "height": max(260, 150 + 34 * n_params), "showlegend": False},
                      title=dict(text=f"Param importance for {metric} (fANOVA, {n} {what})", x=0.01))
    return fig


def importance_figures(data: ReportData) -> dict[str, "go.Figure | Missing"]:
    """``importance_<metric>`` for the quality metric and each hardware metric of the study."""
    metrics = [data.quality_metric, *[m for m in data.hardware_metrics if m != data.quality_metric]]
    return {f"importance_{m}": importance_figure(data, m) for m in metrics}
