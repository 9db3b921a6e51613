"""``hwtune show``: the summary of a stored study, without running anything or writing anything.

The same summary ``hwtune run`` prints (``report.print_summary``): counts by status, the best feasible
network or the Pareto front with every objective and constraint metric and its source, and where the
trained weights are kept.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from hwtune.exceptions import ConfigError

__all__ = ["show_command"]


def _fail(e: ConfigError) -> None:
    """``error <field>: <problem> Fix: <fix>`` on stderr as plain text (user values are never markup), exit 2."""
    def clip(t: str) -> str:
        return t if len(t) <= 500 else t[:500] + "..."

    body = f"{e.field}: {clip(e.problem)}" + (f" Fix: {clip(e.fix)}" if e.fix else "")
    Console(stderr=True).print(Text.assemble(("error", "bold red"), " ", body), highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def show_command(
    study: str | None = typer.Argument(None, metavar="[STUDY]", help="Study name (default: the only study in the storage)."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL of the storage (default: sqlite:///hwtune.db, as hwtune run)."),
) -> None:
    """Summarise a stored study: counts, the best network or the Pareto front, and where its models are.

    Reads only: a storage or study that does not exist is an error (exit 2), never created.
    """
    try:
        import optuna

        from hwtune.report import print_summary
        from hwtune.study import stored_study

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        st = stored_study(study, storage, study_field="STUDY", storage_field="--storage")
        summary = st.summary()
    except ConfigError as e:
        _fail(e)
        return
    print_summary(summary, Console())
