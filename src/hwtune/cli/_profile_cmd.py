"""``hwtune profile``: measure one model's hardware cost on this machine (a thin layer over
:func:`hwtune.hardware.profile`)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hwtune.exceptions import ConfigError

__all__ = ["profile_command"]

_NB201_INPUT = (3, 32, 32)


def _parse_ints(text: str, field: str) -> list[int]:
    try:
        vals = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(field, f"{text!r} is not a comma-separated list of integers.", "write e.g. 1,32,256.") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(field, f"{text!r} must list positive integers.", "write e.g. 1,32,256.")
    return vals


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_params(pairs: list[str] | None, params_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as e:
            raise ConfigError("--params", f"not valid JSON: {e}.", "write e.g. --params '{\"conv_layers\": 2}'.") from None
        if not isinstance(loaded, dict):
            raise ConfigError("--params", "must be a JSON object.", "write e.g. --params '{\"conv_layers\": 2}'.")
        params.update(loaded)
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--param", f"{p!r} is not key=value.", "write e.g. --param filters_0=32.")
        params[key.strip()] = _parse_value(value.strip())
    return params


def _get_family(name: str) -> Any:
    """The family from ``hwtune.train``'s registry; NB201 falls back to the builder here until the
    registry knows it."""
    try:
        from hwtune.train import get_family
    except ImportError:
        get_family = None
    if get_family is not None:
        try:
            return get_family(name, field="model")
        except ConfigError:
            if name != "nb201":
                raise
    if name == "nb201":
        return _NB201Family()
    raise ConfigError("model", f"unknown model family {name!r} (the family registry is not available).", "use nb201, or a .pt / .onnx file.")


class _NB201Family:
    name = "nb201"
    default_input_shape = _NB201_INPUT

    def build(self, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
        from hwtune.train._nb201 import build_nb201

        if "arch" not in params:
            raise ConfigError("--param arch", "the nb201 family needs an architecture string.", "pass --arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...|'.")
        return build_nb201(params["arch"], C=int(params.get("C", 16)), N=int(params.get("N", 5)), num_classes=num_classes, in_channels=input_shape[0])


def _check_fixed_batch(runner: Any, batches: list[int]) -> None:
    """An ONNX file whose batch dimension is a fixed number runs only that batch: say so, and how to fix
    it, before ONNX Runtime fails with its own traceback."""
    from hwtune.hardware import OnnxModel

    model = getattr(runner, "model", None)
    if not isinstance(model, OnnxModel):
        return
    shape = model.input_shape()
    fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
    bad = [b for b in batches if fixed is not None and b != fixed]
    if bad:
        raise ConfigError(
            "-b/--batch-sizes",
            f"{model.path.name} has a fixed batch size of {fixed} (its input is declared {shape}): it cannot run batch size{'s' * (len(bad) > 1)} "
            f"{', '.join(map(str, bad))}.",
            f"measure it with -b {fixed}, or export the model with a dynamic batch dimension: `hwtune export` does, "
            "as does torch.onnx.export(model, x, path, dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}}).",
        )


def _load(model: str, params: dict[str, Any], input_shape: tuple[int, ...] | None, num_classes: int) -> tuple[Any, tuple[int, ...], dict[str, Any]]:
    """(model or runner, one sample's shape, description of the model for the JSON output)."""
    from hwtune.hardware import OnnxModel, load_model

    path = Path(model)
    looks_like_file = path.suffix.lower() in (".onnx", ".pt", ".pth", ".ts", ".torchscript") or path.exists()
    if looks_like_file:
        if params:
            raise ConfigError("--param", f"params apply to built-in families, not to the file {model!r}.", "drop --param / --params / --arch.")
        runner = load_model(path)
        if input_shape is None:
            if isinstance(getattr(runner, "model", None), OnnxModel):
                dims = runner.model.input_shape()[1:]  # type: ignore[union-attr]
                if not all(isinstance(d, int) and d > 0 for d in dims):
                    raise ConfigError("--input-shape", f"{path.name} declares input dimensions {dims} that are not all fixed.", "give one sample's shape, e.g. --input-shape 3,32,32.")
                input_shape = tuple(int(d) for d in dims)
            else:
                raise ConfigError("--input-shape", f"a TorchScript file does not record its input shape ({path.name}).", "give one sample's shape, e.g. --input-shape 3,32,32.")
        return runner, input_shape, {"file": str(path), "format": runner.kind}
    family = _get_family(model)
    if input_shape is None:
        input_shape = getattr(family, "default_input_shape", None) or (_NB201_INPUT if model == "nb201" else None)
        if input_shape is None:
            raise ConfigError("--input-shape", f"family {model!r} has no default input shape.", "give one sample's shape, e.g. --input-shape 1,28,28.")
        input_shape = tuple(input_shape)
    try:
        net = family.build(params, input_shape, num_classes)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a family that cannot build these params
        raise ConfigError("--param", f"family {model!r} could not build {params}: {type(e).__name__}: {e}.", "check the family's params.") from None
    return net, input_shape, {"family": model, "params": params}


def profile_command(
    model: Annotated[str, typer.Argument(help="A built-in family (nb201, cnn, mlp), or a TorchScript (.pt) or ONNX (.onnx) file.")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Family param as key=value (repeatable), e.g. -p conv_layers=2 -p filters_0=32.")] = None,
    params: Annotated[Optional[str], typer.Option("--params", help="Family params as one JSON object.")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="nb201 architecture string (same as -p arch=...).")] = None,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="One sample's shape, e.g. 3,32,32 (default: the family's, or the ONNX file's).")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", min=1, help="Classifier outputs of a built-in family.")] = 10,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", "-b", help="Inference batch sizes, e.g. 1,32,256.")] = "1",
    device: Annotated[str, typer.Option("--device", "-d", help="cpu, cpu:<threads>, cuda or cuda:<index> (honours CUDA_VISIBLE_DEVICES).")] = "cpu",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="(Host) threads; default: every CPU this process may use.")] = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", help="Comma-separated subset of the metrics (default: all).")] = None,
    target_ci: Annotated[float, typer.Option("--target-ci", min=0.001, max=1.0, help="Stop timing when the 95% CI of the median is within ± this share.")] = 0.03,
    max_time: Annotated[float, typer.Option("--max-time", min=0.01, help="Time cap of one latency window, seconds.")] = 10.0,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Repeats of a window in which the device was busy or throttling.")] = 2,
    idle_baseline: Annotated[bool, typer.Option("--idle-baseline", help="Measure idle power (1 s) and subtract it from power and energy.")] = False,
    cpu_tdp: Annotated[Optional[float], typer.Option("--cpu-tdp", min=1.0, help="CPU TDP in W for the estimate used where RAPL is unreadable.")] = None,
    no_estimate: Annotated[bool, typer.Option("--no-estimate", help="Leave power/energy unavailable instead of estimating them where no sensor exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights and input.")] = 0,
) -> None:
    """Measure a model's latency (with its confidence interval), throughput, power, energy, memory,
    parameters, FLOPs and size on this machine."""
    import torch

    from hwtune.hardware import PROFILE_METRICS, parse_device, profile

    logging.getLogger("hwtune.hardware").setLevel(logging.ERROR)  # the report's notes say it all
    try:
        fam_params = _parse_params(param, params)
        if arch is not None:
            fam_params["arch"] = arch
        shape = tuple(_parse_ints(input_shape, "--input-shape")) if input_shape else None
        batches = _parse_ints(batch_sizes, "--batch-sizes")
        wanted = None
        if metrics:
            wanted = [m.strip() for m in metrics.split(",") if m.strip()]
            bad = [m for m in wanted if m not in PROFILE_METRICS]
            if bad or not wanted:
                raise ConfigError("--metrics", f"cannot measure {bad or metrics!r}.", f"choose from {', '.join(PROFILE_METRICS)}.")
        dev = parse_device(device, threads, field="--device")
        torch.manual_seed(seed)
        net, shape, described = _load(model, fam_params, shape, num_classes)
        _check_fixed_batch(net, batches)
        x = torch.randn((batches[0], *shape))
        report = profile(
            net, x, dev, wanted,
            target_rel_ci=target_ci, max_time_s=max_time, batch_sizes=batches, idle_baseline=idle_baseline,
            max_retries=retries, estimate_energy=not no_estimate, cpu_tdp_w=cpu_tdp,
        )
        if "file" in described:  # the runtime it ran in, as a study labels it: measured:timer[onnxruntime]
            from hwtune.hardware import label_runtime, runtime_of_file

            report = label_runtime(report, runtime_of_file(described["file"]), [k for k in report.measurements if k not in ("params", "flops")])
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    described["input_shape"] = list(shape)
    if as_json:
        typer.echo(json.dumps({"model": described, **report.to_dict()}, indent=2, default=str))
        return
    if "file" in described:
        what = described["file"]
    else:
        what = described["family"] + (f" {json.dumps(described['params'])}" if described["params"] else "")
    typer.echo(f"model: {what}, input {'x'.join(map(str, shape))}")
    typer.echo(report.format())
    sys.stdout.flush()
