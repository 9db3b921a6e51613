"""``hwtune bench``: the command over :func:`hwtune.bench.run_bench` (no logic of its own)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hwtune.exceptions import ConfigError

__all__ = ["bench_command"]

_MODES = ("constrained", "cheapest", "pareto")


def _pair(median: float, worst: float) -> str:
    """``median / worst`` of a checkpoint (``—`` for a value no run reached)."""
    return " / ".join("—" if math.isnan(v) else f"{v:.3f}" for v in (median, worst))


def _methods_for(mode: str) -> tuple[str, ...]:
    from hwtune.bench._bench import CHEAPEST_METHODS, CONSTRAINED_METHODS, PARETO_METHODS

    return {"constrained": CONSTRAINED_METHODS, "cheapest": CHEAPEST_METHODS, "pareto": PARETO_METHODS}[mode]


def bench_command(
    benchmark: str = typer.Argument("nb201", help="Tabulated benchmark: nb201 (NAS-Bench-201 cells, HELP latencies)."),
    task: str = typer.Option("cifar10", help="Accuracy column: cifar10, cifar100, imagenet16."),
    device: str = typer.Option("pixel3", help="Latency column (e.g. pixel3, fpga, raspi4, titanxp_1, eyeriss...)."),
    limit_ms: Optional[float] = typer.Option(None, "--limit-ms", help="Latency limit in ms (constrained mode)."),
    quantile: Optional[float] = typer.Option(None, help="Latency limit as this quantile of the device's latencies (e.g. 0.10)."),
    mode: str = typer.Option("constrained", help="constrained (best accuracy under the latency limit) | cheapest (lowest latency under an error bound) | pareto (error-latency front)."),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="Error bound (fraction) of the cheapest mode."),
    error_quantile: Optional[float] = typer.Option(None, "--error-quantile", help="Error bound as this quantile of the task's errors (e.g. 0.05 = as good as the best 5 %)."),
    budget: int = typer.Option(100, min=1, help="Trained networks per search."),
    seeds: int = typer.Option(10, min=1, help="Searches per method (seeds 0..N-1); the table shows medians."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods (default: all of the mode). Extra: hwtune-plain."),
    jobs: int = typer.Option(1, min=1, help="Processes running searches side by side."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every run and the summary as JSON to this file ('-': stdout)."),
    plot: Optional[Path] = typer.Option(None, help="Write the median curves (and the seeds' range) against trained networks as an SVG file."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the curves and the table as a self-contained HTML page (needs plotly: pip install 'hwtune[report]')."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Compare hwtune's sampler with random search and Optuna's samplers on a tabulated benchmark,
    through the real study loop (training = table look-up, measuring = table look-up, counted)."""
    from hwtune.bench._bench import EXTRA_METHODS, regret_svg, run_bench

    to_err = json_out is not None and str(json_out) == "-"  # keep stdout pure JSON then
    out = Console(stderr=to_err, width=None if (sys.stderr if to_err else sys.stdout).isatty() else 160)
    err = Console(stderr=True, quiet=quiet)
    try:
        if html_out is not None:
            from hwtune.bench._plot import check_plotly

            check_plotly("--html")
        if benchmark != "nb201":
            raise ConfigError("benchmark", f"unknown benchmark {benchmark!r}.", "use nb201.")
        if mode not in _MODES:
            raise ConfigError("mode", f"unknown mode {mode!r}.", f"use one of {', '.join(_MODES)}.")
        chosen = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else _methods_for(mode)
        known = set(_methods_for(mode)) | set(EXTRA_METHODS)
        bad = [m for m in chosen if m not in known]
        if bad:
            raise ConfigError("methods", f"unknown method(s) {bad} for mode {mode}.", f"use some of {', '.join(sorted(known))}.")
        kwargs: dict = {"task": task, "device": device}
        if mode == "constrained":
            if limit_ms is None and quantile is None:
                raise ConfigError("limit", "the constrained mode needs a latency limit.", "pass --limit-ms or --quantile.")
            kwargs.update(limit_ms=limit_ms, quantile=quantile)
        elif mode == "cheapest":
            if max_error is None and error_quantile is None:
                raise ConfigError("error bound", "the cheapest mode needs an error bound.", "pass --max-error or --error-quantile.")
            kwargs.update(max_error=max_error, error_quantile=error_quantile)

        def progress(r: object) -> None:
            last = r.curve[-1] if r.curve else float("nan")  # type: ignore[attr-defined]
            err.print(f"  {r.method:22s} seed {r.seed:3d}: final {last:.3f}, trained {r.trained}, "  # type: ignore[attr-defined]
                      f"measured {r.measurements}, {r.seconds:.1f} s", highlight=False)  # type: ignore[attr-defined]

        res = run_bench(kwargs, chosen, seeds=list(range(seeds)), budget=budget, mode=mode, jobs=jobs, progress=progress)
    except ConfigError as e:
        err.print(f"[bold red]error[/bold red] {e}", highlight=False)
        raise typer.Exit(code=2)

    metric = {"constrained": "regret (acc. points)", "cheapest": "latency regret (ms)", "pareto": "hypervolume share"}[mode]
    worst = "worst" if seeds <= 10 else "worst-decile"
    table = Table(title=f"{res.problem} — {metric} after N trained: median of {seeds} seeds / {worst} seed", title_justify="left")
    table.add_column("method")
    for n in res.checkpoints:
        table.add_column(f"N={n}", justify="right")
    table.add_column("wasted", justify="right")
    table.add_column("measured", justify="right")
    table.add_column("per trained", justify="right")
    table.add_column("trials", justify="right")
    table.add_column("proposal ms", justify="right")
    for m in res.methods.values():
        s = m.summary(res.checkpoints)
        cells = [_pair(s[f"at_{n}"], s[f"worst_decile_{n}"]) for n in res.checkpoints]
        table.add_row(m.method, *cells, f"{s['wasted']:.0f}", f"{s['measurements']:.0f}", f"{s['measurements_per_trained']:.2f}",
                      f"{s['trials']:.0f}", f"{s['proposal_ms']:.1f}")
    out.print(table)
    exact = ", ".join(f"{k}={v:.6g}" for k, v in res.exact.items() if isinstance(v, (int, float)))
    out.print(f"exact: {exact}", highlight=False)
    if json_out is not None:
        text = json.dumps(res.to_dict(), indent=1, default=float)
        if str(json_out) == "-":
            sys.stdout.write(text + "\n")
        else:
            json_out.write_text(text)
            err.print(f"wrote {json_out}")
    if plot is not None:
        regret_svg(res, str(plot))
        err.print(f"wrote {plot}")
    if html_out is not None:
        from hwtune.bench._plot import regret_html

        regret_html(res, str(html_out))
        err.print(f"wrote {html_out}")
