"""The ``hwtune`` command line: a thin layer over the Python API (no logic of its own)."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.text import Text

from hwtune.study._storage import safe_url
from hwtune.exceptions import ConfigError

app = typer.Typer(
    name="hwtune",
    help="Find the most accurate neural network that fits a hardware budget on the device where it will run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """hwtune: hardware-constrained neural network search."""


ECHO_LIMIT = 500
"""Characters of an error message's problem or fix printed (they echo user input, which can be huge)."""


def _clip(text: Any, limit: int = ECHO_LIMIT) -> str:
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _error_text(e: BaseException) -> Text:
    """``error <field>: <problem> Fix: <fix>`` as plain text: user values are never read as Rich markup."""
    if isinstance(e, ConfigError):
        body = f"{_clip(e.field, 200)}: {_clip(e.problem)}" + (f" Fix: {_clip(e.fix)}" if e.fix else "")
    else:
        body = _clip(e, 2 * ECHO_LIMIT)
    return Text.assemble(("error", "bold red"), " ", body)


def _fail(e: ConfigError) -> None:
    err.print(_error_text(e), highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


class _CtrlC:
    """``hwtune run``'s SIGINT handling: the first Ctrl-C raises ``KeyboardInterrupt`` (the running trial
    is abandoned: marked interrupted and queued to run first next time); a second one exits at once."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"\nsecond Ctrl-C: exiting at once; the next run recovers the trial that was running.\n")
            os._exit(130)
        raise KeyboardInterrupt

    def check(self, *_: Any) -> None:
        """A trial callback: an interrupt something swallowed still ends the run after the trial."""
        if self.count:
            raise KeyboardInterrupt


def _resume_command(study_file: Optional[Path]) -> str:
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    if argv0 in ("hwtune", "__main__.py") and len(sys.argv) > 1:
        return "hwtune " + shlex.join(sys.argv[1:])
    return "hwtune run" + (f" {shlex.quote(str(study_file))}" if study_file else "")


def _report_interrupt(study: Any, study_file: Optional[Path]) -> None:
    """What an interrupted run kept, and how to resume it."""
    from hwtune.vocabulary import BUDGET_STATUSES

    if study is None:
        err.print("interrupted before the study started: nothing was run or written.", highlight=False)
        return
    try:
        counts = study.counts()
        done = sum(v for k, v in counts.items() if k in BUDGET_STATUSES)
        waiting = counts.get("waiting", 0)
        kept = (
            f"{done} finished trials ({counts.get('trained', 0)} trained) are kept in {safe_url(study.storage_url) if study.storage_url else 'memory'} "
            f"(study '{study.name}')"
            + (f"; {waiting} interrupted trial{'s' * (waiting != 1)} queued to run first next time, with the same params." if waiting else ".")
        )
    except Exception as e:  # the storage itself may be what failed
        kept = f"finished trials are stored in {safe_url(study.storage_url)} (study '{study.name}'), but counting them failed: {_clip(e, 200)}"
    err.print(Text(f"\ninterrupted. {kept}"), soft_wrap=True, highlight=False)
    if study.storage_url:
        err.print(Text(f"Resume with the same command: {_resume_command(study_file)}"), soft_wrap=True, highlight=False)


@app.command()
def run(
    study_file: Optional[Path] = typer.Argument(None, help="YAML study file; without it, the embedded default study runs."),
    storage: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the storage (default: the study file's, else sqlite:///hwtune.db)."),
    name: Optional[str] = typer.Option(None, help="Study name (an existing study of this name is resumed)."),
    trials: Optional[int] = typer.Option(None, help="Trials the study should hold when done (overrides budget.trials)."),
    trained: Optional[int] = typer.Option(None, help="Trained networks the study should hold when done (overrides budget.trained)."),
    minutes: Optional[float] = typer.Option(None, help="Wall-clock limit of this run in minutes (overrides budget.minutes)."),
    sampler: Optional[str] = typer.Option(None, help="hwtune | tpe | random (overrides the study file)."),
    seed: Optional[int] = typer.Option(None, help="Seed of proposals and training (overrides the study file)."),
    workers: int = typer.Option(1, min=1, help="Worker processes sharing the study through the storage."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the trials on Ray: auto (the cluster `ray start` began here), ADDRESS (ray://host:10001), or local (start one here); pip install 'hwtune[ray]'."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run (or resume) a hardware-constrained network search and print the best feasible network.

    Ctrl-C abandons the running trial (marked interrupted, queued to run first next time), says what
    was kept and how to resume, and exits 130; a second Ctrl-C exits at once.
    """
    try:
        with _CtrlC() as ctrl_c:
            _run_study(study_file, storage, name, trials, trained, minutes, sampler, seed, workers, quiet, ctrl_c, ray)
    except ConfigError as e:
        _fail(e)
    except KeyboardInterrupt as e:
        _report_interrupt(getattr(e, "__study__", None), study_file)
        raise typer.Exit(code=130) from None


def _run_study(
    study_file: Optional[Path], storage: Optional[str], name: Optional[str], trials: Optional[int], trained: Optional[int],
    minutes: Optional[float], sampler: Optional[str], seed: Optional[int], workers: int, quiet: bool, ctrl_c: _CtrlC,
    ray: Optional[str] = None,
) -> None:
    """``hwtune run`` inside its Ctrl-C handling; a ``KeyboardInterrupt`` carries the study out as ``__study__``."""
    import optuna

    from hwtune.report import StudyProgress, print_summary
    from hwtune.study import default_study_file, load_study_file, study_from_file

    study = None
    try:
        spec = load_study_file(study_file) if study_file else default_study_file()
        overrides = {k: v for k, v in (("sampler", sampler), ("seed", seed)) if v is not None}
        if overrides:
            spec = spec.model_copy(update=overrides)
        budget = spec.budget.model_copy(update={k: v for k, v in (("trials", trials), ("trained", trained), ("minutes", minutes)) if v is not None})
        for field, v in (("budget.trials", budget.trials), ("budget.trained", budget.trained)):
            if v is not None and v < 1:
                raise ConfigError(field, f"must be a positive integer, got {v}.")
        if budget.minutes is not None and not (0 < budget.minutes < float("inf")):  # NaN too
            raise ConfigError("budget.minutes", f"must be a positive number, got {budget.minutes}.", "give e.g. --minutes 2.5.")
        study, build, train = study_from_file(spec, storage=storage, name=name)
        if ray is not None:  # --ray ADDRESS: the study file's executor settings, on that cluster
            from hwtune.study._ray_executor import executor_from_spec

            study.executor = executor_from_spec(spec.executor, address=ray)  # type: ignore[attr-defined]
        # a relative limit (latency_ms <= q40): measured once, stored; on Ray the executor measures it on the device
        calibration = study.calibrate(build) if getattr(study, "executor", None) is None else None
        if calibration is not None and not quiet:
            err.print(Text(calibration.describe()), highlight=False, soft_wrap=True)
        # failed trials are counted live and explained in the summary (tracebacks are stored with them)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        timeout = budget.minutes * 60 if budget.minutes else None
        total = budget.trials
        with StudyProgress(study, total, console=err if not quiet else Console(quiet=True)) as progress:
            summary = study.optimize(
                build, train, n_trials=budget.trials, n_trained=budget.trained, timeout=timeout,
                callbacks=[ctrl_c.check, progress], n_workers=workers,
            )
        if ctrl_c.count:  # interrupted where nothing raised (e.g. after the last trial)
            raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        e.__study__ = study  # type: ignore[attr-defined]
        raise
    print_summary(summary, Console())


from hwtune.cli._profile_cmd import profile_command  # noqa: E402

app.command("profile")(profile_command)

from hwtune.cli._show_cmd import show_command  # noqa: E402

app.command("show")(show_command)

from hwtune.cli._export_cmd import export_command  # noqa: E402

app.command("export")(export_command)

from hwtune.cli._report_cmd import dashboard_command, report_command  # noqa: E402

app.command("report")(report_command)
app.command("dashboard")(dashboard_command)

from hwtune.cli._costmodel_cmd import costmodel_app  # noqa: E402

app.add_typer(costmodel_app, name="costmodel")

from hwtune.cli._deploy_cmd import deploy_app  # noqa: E402

app.add_typer(deploy_app, name="deploy")

from hwtune.cli._agent_cmd import agent_app  # noqa: E402

app.add_typer(agent_app, name="agent")

from hwtune.bench._bench_cli import bench_command  # noqa: E402

app.command("bench")(bench_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # completed trials are already stored
        err.print("interrupted; completed trials are stored and `hwtune run` resumes the study.", highlight=False)
        sys.exit(130)
