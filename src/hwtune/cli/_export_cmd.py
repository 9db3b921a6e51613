"""``hwtune export``: write a study's trained networks as ONNX or TorchScript files, verified and
re-measured, with ``manifest.json`` (a thin layer over :func:`hwtune.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hwtune.exceptions import ConfigError

__all__ = ["export_command"]


def _which(trial: list[int] | None, best: bool, pareto: bool) -> Any:
    chosen = [name for name, on in (("--trial", bool(trial)), ("--best", best), ("--pareto", pareto)) if on]
    if len(chosen) > 1:
        raise ConfigError(" / ".join(chosen), "choose one of --trial N, --best and --pareto.", "e.g. --pareto for the whole front, --best for one model.")
    if trial:
        return list(trial)
    return "pareto" if pareto else "best"


def _fmt(v: Any, digits: int = 4) -> str:
    return "?" if v is None else f"{v:.{digits}g}"


def _lines(manifest: dict[str, Any], out: Path) -> list[str]:
    """One paragraph per exported model: file, verification, the two latencies side by side."""
    lines: list[str] = []
    tag = " (best feasible)" if len(manifest["study"]["objectives"]) == 1 else " (on the Pareto front)"
    for m in manifest["models"]:
        v = m["verification"]
        agree = v.get("argmax_agreement")
        verdict = "verified" if v.get("passed") else "VERIFICATION FAILED"
        err = ""
        if "error_pytorch" in v:
            trained = "Keras" if m.get("format") in ("keras", "tflite", "tflite-int8") else "PyTorch"  # the trained network's framework
            err = f"; error on them {v['error_pytorch']:.4f} ({trained}) / {v['error_exported']:.4f} (exported)"
        lines.append(
            f"trial {m['trial']} -> {out / m['file']}{tag if m.get('pareto') else ''}: {verdict} on {v['n_inputs']} {v['inputs']} inputs "
            f"(max |difference| {_fmt(v.get('max_abs_diff'), 3)}, argmax agreement {'?' if agree is None else f'{agree:.1%}'}{err})"
        )
        lat = (m.get("exported") or {}).get("latency_ms")
        if lat:
            lines.append(
                f"  latency of the exported file: {_fmt(lat['value'])} ms [{_fmt(lat['ci_low'])}, {_fmt(lat['ci_high'])}] at batch {lat.get('batch_size')} "
                f"({lat['source']}); the study measured {_fmt(lat.get('study_value'))} ms"
                + (f" [{_fmt(lat['study_ci'][0])}, {_fmt(lat['study_ci'][1])}] ({lat.get('study_source')})" if lat.get("study_ci") else "")
                + (": inside the study's interval" if lat.get("within_study_interval") else "")
            )
            rt = lat.get("study_retest")
            if rt:
                lines.append(
                    f"  the study's retest interval (where one more measurement falls, from its {rt['pairs']} "
                    f"{'(first, closing retest)' if rt.get('pair_kind') == 'closing_retest' else 'before/after-training'} pairs): "
                    f"[{_fmt(rt['ci_low'])}, {_fmt(rt['ci_high'])}] ms: {'inside' if lat.get('within_study_retest_interval') else 'outside'}"
                )
            if lat.get("comparison"):
                lines.append(f"  note: {lat['comparison']}")
    return lines


def export_command(
    study: Annotated[str | None, typer.Argument(metavar="[STUDY]", help="Study name (default: the only study in the storage).")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="SQLAlchemy URL of the storage (default: sqlite:///hwtune.db, as hwtune run).")] = None,
    trial: Annotated[list[int] | None, typer.Option("--trial", help="Export this trial (repeatable).")] = None,
    best: Annotated[bool, typer.Option("--best", help="Export the best feasible trained trial (the default).")] = False,
    pareto: Annotated[bool, typer.Option("--pareto", help="Export the feasible Pareto front (a bundle for hwtune deploy).")] = False,
    format: Annotated[str, typer.Option("--format", "-f", help="onnx (ONNX Runtime, dynamic batch) or torchscript (traced); for a study of framework keras: keras (.keras), tflite (float) or tflite-int8 (full-integer int8, calibrated on training inputs; both need TensorFlow).")] = "onnx",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the model files and manifest.json (created).")] = ...,  # type: ignore[assignment]
    n_inputs: Annotated[int, typer.Option("--n-inputs", min=1, help="Validation inputs the verification compares outputs on.")] = 256,
    no_measure: Annotated[bool, typer.Option("--no-measure", help="Skip re-measuring each exported file's latency.")] = False,
    target_ci: Annotated[float, typer.Option("--target-ci", min=0.001, max=0.99, help="Re-measurement: stop when the 95% CI of the median is within ± this share.")] = 0.05,
    max_time: Annotated[float, typer.Option("--max-time", min=0.01, help="Re-measurement: time cap of one latency window, seconds.")] = 3.0,
) -> None:
    """Export trained networks of a study (their kept weights), verify each file against the PyTorch
    network on validation inputs, re-measure its latency on the study's device, and write manifest.json.

    Exits 1 when an export's outputs differ from the trained network's, 2 on a bad argument.
    """
    import logging

    import optuna

    from hwtune.deploy import export
    from hwtune.hardware import ExportError
    from hwtune.study import stored_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hwtune.hardware").setLevel(logging.ERROR)
    try:
        which = _which(trial, best, pareto)
        if format not in ("onnx", "torchscript", "keras", "tflite", "tflite-int8"):
            raise ConfigError("--format", f"unknown format {format!r}.", "use onnx or torchscript (keras, tflite or tflite-int8 for a study of framework keras).")
        st = stored_study(study, storage, study_field="STUDY", storage_field="--storage")
        manifest = export(
            st, trials=which, format=format, out=out, n_inputs=n_inputs, remeasure=not no_measure,
            latency_rel_ci=target_ci, latency_max_time_s=max_time,
        )
    except ConfigError as e:
        field = {"trials": "--trial", "format": "--format", "inputs": "STUDY", "out": "--out", "n_inputs": "--n-inputs"}.get(e.field, e.field)
        typer.echo(f"error {field}: {e.problem}" + (f" Fix: {e.fix}" if e.fix else ""), err=True)
        raise typer.Exit(code=2) from None
    except ExportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    for line in _lines(manifest, out):
        typer.echo(line)
    typer.echo(f"manifest: {out / 'manifest.json'}")
    failed = [m["trial"] for m in manifest["models"] if not m["verification"].get("passed")]
    if failed:
        typer.echo(f"error: the exported outputs of trial(s) {', '.join(map(str, failed))} differ from the trained network's (see the manifest's verification).", err=True)
        raise typer.Exit(code=1)
