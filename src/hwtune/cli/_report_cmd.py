"""``hwtune report``: a stored study as one self-contained HTML file (and PNG figures), read-only;
``hwtune dashboard``: optuna-dashboard on a stored study, with hwtune's constraints shown.

No logic of its own: :func:`hwtune.report.write_html` / :func:`hwtune.report.write_png` and
:func:`hwtune.study._dashboard.dashboard_storage`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from hwtune.cli._show_cmd import _fail
from hwtune.exceptions import ConfigError

__all__ = ["report_command", "dashboard_command"]


def report_command(
    study: Annotated[str | None, typer.Argument(metavar="[STUDY]", help="Study name (default: the only study in the storage).")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="SQLAlchemy URL of the storage (default: sqlite:///hwtune.db, as hwtune run).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write (self-contained: opens offline).")] = Path("report.html"),
    png: Annotated[Path | None, typer.Option("--png", help="Also write every figure as a PNG image into this folder (needs kaleido and Chrome/Chromium).")] = None,
) -> None:
    """Write an HTML report of a stored study: the front with the constraints, the best feasible
    network over trained networks and wall time, where the budget cut the space, the cost model's
    calibration, param importance, learning curves, every trial with its sources, the device.

    Reads only: a storage or study that does not exist is an error (exit 2), never created.
    """
    try:
        import optuna

        from hwtune.report import build_report, check_plotly, write_html, write_png
        from hwtune.study import stored_study

        check_plotly("report")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        st = stored_study(study, storage, study_field="STUDY", storage_field="--storage")
        report = build_report(st)
        if png is not None:
            written = write_png(report, png)  # first: a missing kaleido is reported before anything is written
        write_html(report, out)
    except ConfigError as e:
        _fail(e)
        return
    err = Console(stderr=True)
    drawn = len(report.figures)
    missing = [f"{k}: {f.reason}" for s in report.sections for k, f in s.figures.items() if k not in report.figures]  # type: ignore[attr-defined]
    err.print(Text(f"wrote {out} ({drawn} figures; opens offline)"), highlight=False)
    for m in missing:
        err.print(Text(f"  not drawn: {m}"), highlight=False)
    if png is not None:
        err.print(Text(f"wrote {len(written)} PNG images to {png}"), highlight=False)


def dashboard_command(
    storage: Annotated[str | None, typer.Option("--storage", help="SQLAlchemy URL of the storage (default: sqlite:///hwtune.db).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
) -> None:
    """Serve optuna-dashboard on a hwtune storage, each trial's hwtune constraints shown as the
    dashboard's constraints (feasible and infeasible trials told apart in its plots).

    The storage is served as it is (the dashboard may write its notes to it); the constraints are
    added to what the dashboard reads, never written.
    """
    try:
        from hwtune.study._dashboard import dashboard_storage

        view = dashboard_storage(storage or "sqlite:///hwtune.db", field_name="--storage")
        from optuna_dashboard import run_server
    except ConfigError as e:
        _fail(e)
        return
    Console(stderr=True).print(Text(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C stops it)"), highlight=False)
    run_server(view, host=host, port=port)
