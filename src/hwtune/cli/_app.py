"""The ``hwtune`` command line: a thin layer over the Python API (no logic of its own)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

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


def _fail(e: ConfigError) -> None:
    err.print(f"[bold red]error[/bold red] {e}", highlight=False)
    raise typer.Exit(code=2)


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run (or resume) a hardware-constrained network search and print the best feasible network."""
    import optuna

    from hwtune.report import StudyProgress, print_summary
    from hwtune.study import default_study_file, load_study_file, study_from_file

    try:
        spec = load_study_file(study_file) if study_file else default_study_file()
        overrides = {k: v for k, v in (("sampler", sampler), ("seed", seed)) if v is not None}
        if overrides:
            spec = spec.model_copy(update=overrides)
        budget = spec.budget.model_copy(update={k: v for k, v in (("trials", trials), ("trained", trained), ("minutes", minutes)) if v is not None})
        for field, v in (("budget.trials", budget.trials), ("budget.trained", budget.trained)):
            if v is not None and v < 1:
                raise ConfigError(field, f"must be a positive integer, got {v}.")
        if budget.minutes is not None and budget.minutes <= 0:
            raise ConfigError("budget.minutes", f"must be positive, got {budget.minutes}.")
        study, build, train = study_from_file(spec, storage=storage, name=name)
        # failed trials are counted live and explained in the summary (tracebacks are stored with them)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        timeout = budget.minutes * 60 if budget.minutes else None
        total = budget.trials
        with StudyProgress(study, total, console=err if not quiet else Console(quiet=True)) as progress:
            summary = study.optimize(
                build, train, n_trials=budget.trials, n_trained=budget.trained, timeout=timeout,
                callbacks=[progress], n_workers=workers,
            )
    except ConfigError as e:
        _fail(e)
        return
    print_summary(summary, Console())


from hwtune.cli._profile_cmd import profile_command  # noqa: E402

app.command("profile")(profile_command)

from hwtune.cli._costmodel_cmd import costmodel_app  # noqa: E402

app.add_typer(costmodel_app, name="costmodel")

from hwtune.bench._bench_cli import bench_command  # noqa: E402

app.command("bench")(bench_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # completed trials are already stored
        err.print("interrupted; completed trials are stored and `hwtune run` resumes the study.")
        sys.exit(130)
