"""``hwtune deploy check DIR``: load an exported Pareto bundle, run every model, and print the front
as the run-time selector (:class:`hwtune.deploy.AdaptiveModel`) sees it. A thin layer over
``hwtune.deploy``: the checks are ``check_bundle``'s, the pick is ``AdaptiveModel.select``'s.

Exit codes: 0 all models verified; 1 a model runs but fails verification (non-finite outputs, wrong
shapes, the manifest's verification failed); 2 the manifest or a model file is missing or invalid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hwtune.exceptions import ConfigError

__all__ = ["check_command", "deploy_app"]

deploy_app = typer.Typer(
    help="Serve an exported Pareto bundle: check it and see which model the run-time selector picks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _fail(e: ConfigError) -> None:
    body = f"{e.field}: {e.problem}" + (f" Fix: {e.fix}" if e.fix else "")
    Console(stderr=True).print(Text.assemble(("error", "bold red"), " ", body), highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _print(console: Console, model: Any, checks: list[Any], state: dict[str, Any]) -> None:
    b = model.bundle
    study = b.study.get("name") or b.study.get("study") or "?"
    say = lambda text: console.print(Text(text), highlight=False, soft_wrap=True)  # plain text: never Rich markup
    say(f"bundle {b.folder}: study {study}, {len(b.models)} models, input (batch, {', '.join(map(str, b.input_shape))}), batch sizes {list(b.batch_sizes)}")
    dev = b.device
    if dev:
        say(f"measured on: {dev.get('type', '?')}: {dev.get('model', '?')}, {dev.get('threads', '?')} threads")
    t = Table(title="the front as the selector sees it (by error)", title_justify="left")
    for col in ("trial", "file", "error", "latency ms [95% CI]", "source", "now ms", "energy mJ", "fits", "check"):
        t.add_column(col, overflow="fold")
    rows = {r["trial"]: r for r in state["models"]}
    for c in checks:
        m, r = c.model, rows[c.model.trial]
        if m.latency:
            lat = f"{m.latency.value:.4g}" + (f" [{m.latency.ci_low:.4g}, {m.latency.ci_high:.4g}]" if m.latency.ci_low is not None and m.latency.ci_high is not None else "")
            src = f"{m.latency.origin}: {m.latency.source}" + (f" @b{m.latency.batch_size}" if m.latency.batch_size else "")
            if m.study_latency is not None:
                src += f" (study: {m.study_latency.value:.4g})"
        else:
            lat, src = "not measured", "-"
        energy = f"{m.energy.value:.4g}" if m.energy else "not measured"
        t.add_row(
            Text(f"{m.trial}" + (" *" if r["serving"] else "")), Text(m.file), Text(f"{m.error:.4g}"), Text(lat), Text(src),
            Text(_fmt(r["predicted_ms"])), Text(energy), Text("yes" if r["fits"] else "no"), Text("ok" if c.ok else "FAILED"),
        )
    console.print(t)
    sources = lambda xs: ", ".join(sorted(set(xs))) or "-"
    say(f"(* = the pick now; error: {sources(m.error_source for m in b.models)}; energy: {sources(m.energy.source for m in b.models if m.energy)}; "
        "now ms: the latency the selector predicts now, at the policy's percentile)")
    serving = state["serving"]
    say(f"pick now: trial {serving['trial']} ({serving['file']}): {state['reason']}" if serving else "pick now: none")
    for r in state["models"]:
        if not r["fits"]:
            say(f"  trial {r['trial']} does not fit: {r['why_not']}")
    say("checks:")
    for c in checks:
        verdict = "ok" if c.ok else "FAILED: " + "; ".join(c.problems)
        say(f"  trial {c.model.trial} ({c.model.file}): {verdict}: ran at batch {', '.join(map(str, c.batches))}, output (batch, {', '.join(map(str, c.output_shape or []))}); manifest verification: {c.manifest_verification}")
    say("budget:")
    for name, part in state["budget"].items():
        reason = part["reason"]
        say(f"  {name}: {reason}" if reason.startswith("inactive") else f"  {name}: {'active' if part['active'] else 'inactive'}: {reason}")
    say("sensors:")
    for name, r in state["sensors"].items():
        if r.get("missing"):
            say(f"  {name}: missing ({r['missing']})")
        else:
            say(f"  {name}: {r['value']}{(' ' + r['unit']) if r.get('unit') else ''} ({r.get('source', '')})")
    say(f"observed latency: {state['observed']['note']}")


def check_command(
    folder: Annotated[Path, typer.Argument(help="The bundle folder (manifest.json and the ONNX files), as written by `hwtune export --pareto`.")],
    latency_ms: Annotated[float | None, typer.Option("--latency-ms", help="Latency SLA per request (ms) for the pick shown.")] = None,
    percentile: Annotated[float, typer.Option("--percentile", help="Share of requests (%) that must meet the SLA.")] = 99.0,
    energy_mj: Annotated[float | None, typer.Option("--energy-mj", help="Energy cap per inference (mJ).")] = None,
    preference: Annotated[float, typer.Option("--preference", help="0 = most accurate model that fits, 1 = fastest.")] = 0.0,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Request batch size for the pick (default: the manifest's first).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="ONNX Runtime threads (default: the manifest device's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random input batches.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks and the selector's state as JSON.")] = False,
) -> None:
    """Load a bundle, run every model on a random batch of its input shape (shapes, finite outputs,
    the manifest's verification), and print the front as the selector sees it: error, latency with
    its source, energy, the model the policy picks now and why, and which sensors are present."""
    from hwtune.deploy import AdaptiveModel, Policy, open_session, read_bundle
    from hwtune.deploy._check import check_bundle

    logging.getLogger("hwtune.deploy").setLevel(logging.WARNING)
    try:
        policy = Policy(latency_ms=latency_ms, latency_percentile=percentile, energy_mj=energy_mj, preference=preference)
        bundle = read_bundle(folder)
        n_threads = threads or bundle.threads or 1
        sessions: dict[Path, Any] = {}

        def session(path: Path) -> Any:
            if path not in sessions:
                sessions[path] = open_session(path, n_threads)
            return sessions[path]

        checks = check_bundle(bundle, lambda m: session(m.path), seed=seed)
        model = AdaptiveModel(bundle, policy, session_factory=session)
        model.select(batch or bundle.batch_sizes[0])
        state = model.state()
    except ConfigError as e:
        _fail(e)
        return
    if as_json:
        out = {
            "folder": str(bundle.folder),
            "checks": [{"trial": c.model.trial, "file": c.model.file, "ok": c.ok, "problems": c.problems, "batches": c.batches,
                        "output_shape": list(c.output_shape or []), "manifest_verification": c.manifest_verification} for c in checks],
            "state": state,
        }
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        _print(Console(), model, checks, state)
    failed = [c for c in checks if not c.ok]
    if failed:
        Console(stderr=True).print(Text(f"verification failed for {', '.join(f'trial {c.model.trial} ({c.model.file})' for c in failed)}: re-export these models, or leave them out of the bundle."), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


deploy_app.command("check")(check_command)
