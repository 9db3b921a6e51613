"""Live progress and result tables on the terminal (Rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from hwtune.report._tables import format_params, models_table, record_table
from hwtune.vocabulary import BUDGET_STATUSES

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hwtune.study import Study, StudySummary, TrialRecord

__all__ = ["StudyProgress", "print_summary", "format_params"]


class StudyProgress:
    """A Rich progress bar fed by the study's trial callback.

    Shows trials done against the budget, the best feasible value of the first objective, and how many
    proposals were rejected as over budget without training.
    """

    def __init__(self, study: "Study", total: int | None, console: Console | None = None) -> None:
        self.study = study
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best feasible {task.fields[best]}"),
            TextColumn("| over budget, not trained: {task.fields[over]}"),
            TextColumn("| failed: {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.total = total
        self.task: TaskID | None = None

    def __enter__(self) -> "StudyProgress":
        self.progress.start()
        self.task = self.progress.add_task("trials", total=self.total, best="-", over=0, failed=0)
        self._refresh()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._refresh()
        self.progress.stop()

    def _refresh(self) -> None:
        if self.task is None:
            return
        counts = self.study.counts()
        done = sum(v for k, v in counts.items() if k in BUDGET_STATUSES)
        best = self.study.best_feasible()
        first = self.study.objectives[0].metric
        best_txt = "-" if not best or best[0].values is None else f"{first}={best[0].values[0]:.4g}"
        if len(best) > 1:
            best_txt = f"{len(best)} on the Pareto front"
        over = counts.get("over_budget", 0) + counts.get("predicted_over_budget", 0)
        self.progress.update(self.task, completed=done, best=best_txt, over=over, failed=counts.get("failed", 0))

    def __call__(self, study: "optuna.Study", trial: "FrozenTrial") -> None:
        self._refresh()


def print_summary(summary: "StudySummary", console: Console | None = None) -> None:
    """Counts, failures, and a table per best feasible trial: its hyperparameters, every objective and
    constraint metric of the study, the always-shown measurements, each value with its source.

    Every user value (study name, storage URL, failure messages...) is printed as plain ``Text``: never read as Rich markup."""
    console = console or Console()
    c = summary.counts
    console.print(
        Text.assemble(
            "\n", ("Study", "bold"), f" {summary.name}: {c.get('trained', 0)} trained, "
            f"{c.get('over_budget', 0)} over budget (measured, never trained), "
            f"{c.get('predicted_over_budget', 0)} predicted over budget (neither measured nor trained), {c.get('pruned', 0)} pruned, "
            f"{c.get('failed', 0)} failed, {c.get('interrupted', 0)} interrupted and re-proposed.",
        ),
        soft_wrap=True,
    )
    objectives = ", ".join(map(str, summary.objectives))
    constraints = ", ".join(map(str, summary.constraints)) or "none"
    console.print(Text(f"Objective: {objectives}; constraints: {constraints}"), soft_wrap=True)
    reasons: dict[str, list[int]] = {}
    for r in summary.records:
        if r.status in ("failed", "interrupted") and r.failure:
            reasons.setdefault(r.failure, []).append(r.number)
    for reason, numbers in sorted(reasons.items(), key=lambda kv: -len(kv[1]))[:5]:
        shown = ", ".join(map(str, numbers[:8])) + (" ..." if len(numbers) > 8 else "")
        console.print(Text.assemble(("failed", "red"), f" trials {shown}: {reason[:500]}"), soft_wrap=True, highlight=False)
    if not summary.best:
        console.print("[yellow]No feasible trained network yet.[/yellow]")
    for i, rec in enumerate(summary.best):
        _print_record(rec, summary, console, title="Best feasible network" if len(summary.best) == 1 else f"Pareto-optimal network {i + 1}")
    _print_models(summary, console)
    _print_machine_speed(summary, console)
    _print_compression_check(summary, console)
    _print_closing_check(summary, console)
    if summary.storage == "in-memory":
        console.print("Not stored: the study ran in memory.")
        return
    console.print(Text.assemble("Stored in ", (summary.storage, "bold"), f" (study '{summary.name}'). See it with:"), soft_wrap=True)
    console.print(Text(f"  hwtune report {summary.name} --storage {summary.storage} --out report.html   # every figure, one offline file"),
                  soft_wrap=True, highlight=False)
    console.print(Text(f"  hwtune dashboard --storage {summary.storage}   # optuna-dashboard, with hwtune's constraints"), soft_wrap=True, highlight=False)


def _print_record(rec: "TrialRecord", summary: "StudySummary", console: Console, title: str) -> None:
    console.print(record_table(rec, summary, title))


def _print_models(summary: "StudySummary", console: Console) -> None:
    """How many trained networks are kept, where, and how to load one (when the study keeps models)."""
    models = getattr(summary, "models", None)
    if models is None:
        return
    kept = models.kept
    where = f" in {models.location}" if kept and models.location else ""
    console.print(Text(f"Trained weights (keep_models: {models.mode}): {len(kept)} kept{where}."), soft_wrap=True, highlight=False)
    if not kept:
        return
    console.print(models_table(summary))
    target = "study" if summary.storage == "in-memory" else f"{summary.name!r}"
    storage = "" if summary.storage == "in-memory" else f", storage={summary.storage!r}"
    console.print(Text(f"Load one with hwtune.load_model({target}, trial={kept[0].trial}{storage})"), soft_wrap=True, highlight=False)


def _print_compression_check(summary: "StudySummary", console: Console) -> None:
    """Networks measured again after training (compressed or kept): the first measurement against the second."""
    check = getattr(summary, "compression_check", None) or {}
    parts = []
    for m, c in check.items():
        rho = f"Spearman {c['spearman']:.2f}, " if c.get("spearman") is not None else ""
        inside = f", {c['inside_interval']:.0%} inside the first measurement's interval" if c.get("inside_interval") is not None else ""
        parts.append(f"{m}: {c['n']} networks, {rho}median {c['median_rel_diff']:+.1%} (worst {c['max_abs_rel_diff']:.1%}, trial {c['worst_trial']}){inside}")
    if parts:
        console.print(Text("Networks measured again after training (compressed or kept), first measurement vs second: " + "; ".join(parts) + "."),
                      soft_wrap=True, highlight=False)


def _print_closing_check(summary: "StudySummary", console: Console) -> None:
    """The closing retest (study._closing): networks measured again when the run ended, against their first measurement."""
    c = getattr(summary, "closing_check", None)
    if not c:
        return
    b = c.get("between_rel_sd")  # method of moments over the pairs, floored at 0
    sd = "" if b is None else " no spread beyond their own intervals," if b == 0 else f" ±{b:.1%} per measurement beyond their own intervals (estimated from the pairs),"
    console.print(Text(
        f"Measured again when the run ended (the closing retest), {c['n']} networks: latency_ms median {c['median_rel_diff']:+.1%} "
        f"(worst {c['max_abs_rel_diff']:.1%}, trial {c['worst_trial']}) against the first measurement;{sd} "
        "the spread hwtune export's retest interval uses."), soft_wrap=True, highlight=False)


def _print_machine_speed(summary: "StudySummary", console: Console) -> None:
    """At which machine speed the latencies are reported, and how far the machine drifted from it."""
    ms = getattr(summary, "machine_speed", None)
    if not ms:
        return
    import datetime as _dt

    def at(t: float | None) -> str:
        return _dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else "?"

    span = f"hwtune's reference network took {ms['min_ms']:.3g}-{ms['max_ms']:.3g} ms in the {ms['n']} measurements (slowest at {at(ms['slowest_at'])})"
    if ms.get("stored_ms"):
        head = (f"Latencies are at the machine speed stored with the study ({at(ms.get('stored_at'))}: reference "
                f"{ms['stored_ms']:.3g} ms; source measured:timer/reference); {span}: x{ms['max_ms'] / ms['stored_ms']:.2f} at the slowest.")
    else:
        head = f"Machine speed over the study: {span}."
    console.print(Text(head), soft_wrap=True, highlight=False)

