"""Converters to the runtimes a network ships in, and measuring a network in one of them.

- :func:`export_onnx`: an ONNX file with a dynamic batch dimension (ONNX Runtime runs it at any batch).
- :func:`export_torchscript`: a traced TorchScript file.
- :func:`profile_in_runtime`: :func:`profile` of a PyTorch network exported to ``torch`` (eager, no
  export), ``torchscript`` or ``onnxruntime``, each timed value labelled with its runtime.

The runtime is written the same way everywhere (study storage, reports, ``hwtune profile``, export
manifests): a value timed or measured outside eager PyTorch has its runtime in square brackets after
its source (``measured:timer[onnxruntime]``, ``measured:serialized[torchscript]``) and in
``extra["runtime"]``; no suffix means eager PyTorch, as in every study before runtimes existed.
A network quantized before it runs names its precision after the runtime
(``measured:timer[onnxruntime-int8]``: ``hwtune.compress.profile_int8``); :data:`RUNTIMES` lists the
float runtimes a study measures in.
Counts of the network itself (``params``, ``flops``, and the traced tensors of ``peak_mem_mb`` on a
CPU) describe the architecture, not a runtime: they are counted on the PyTorch network, unlabelled.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError
from hwtune.hardware._measurement import HardwareReport, Measurement

__all__ = [
    "DEFAULT_RUNTIME",
    "EXPORTERS",
    "RUNTIMES",
    "ExportError",
    "check_runtime",
    "export_for_runtime",
    "export_onnx",
    "export_torchscript",
    "label_runtime",
    "onnx_batch_dim",
    "profile_in_runtime",
    "runtime_of_file",
    "runtime_source",
]

RUNTIMES = ("torch", "torchscript", "onnxruntime")
"""Where a study's default meter runs the network: eager PyTorch, TorchScript, ONNX Runtime."""

DEFAULT_RUNTIME = "onnxruntime"
"""A study's runtime unless it names one: what ``hwtune export`` ships and the run-time selector
(``hwtune.deploy``) serves with (docs/study-files.md, ``runtime``)."""

EXPORTERS = ("auto", "legacy", "dynamo")
"""ONNX exporters of :func:`export_onnx` (``auto``: legacy, then dynamo if legacy fails)."""

NETWORK_METRICS = ("params", "flops")
"""Counted on the PyTorch network whatever the runtime: they describe the architecture."""

_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(RuntimeError):
    """A network that could not be exported (the message says which exporter failed and why)."""


def _args(example_input: Any) -> tuple[Any, ...]:
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:400]


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """The model in eval mode (dropout off, batch norm on its running statistics), restored afterwards."""
    was = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _on_model_device(model: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        dev = next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return args
    return tuple(a.to(dev) if hasattr(a, "to") else a for a in args)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence what the exporters print (dynamo's progress lines on stdout, its logger's notes about
    torchvision, deprecation warnings): an export inside a study must not flood the progress bar."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*will be removed.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _export_legacy(model: Any, args: tuple[Any, ...], path: Path, names: list[str], dynamic_batch: bool, opset: int | None) -> None:
    import torch

    axes = {n: {0: "batch"} for n in [*names, "output"]} if dynamic_batch else None
    torch.onnx.export(
        model, args, str(path), dynamo=False, input_names=names, output_names=["output"],
        dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
    )


def _export_dynamo(model: Any, args: tuple[Any, ...], path: Path, names: list[str], dynamic_batch: bool, opset: int | None) -> None:
    import torch

    shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        shapes = tuple({0: batch} for _ in args)
    torch.onnx.export(
        model, args, str(path), dynamo=True, input_names=names, output_names=["output"],
        dynamic_shapes=shapes, opset_version=opset, external_data=False, verbose=False,
    )


def onnx_batch_dim(path: str | os.PathLike[str]) -> int | str | None:
    """The first input's batch dimension as the ONNX file declares it: an int when fixed, its name
    when symbolic, ``None`` when the file leaves it unset (any batch)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in init]
    if not inputs or not inputs[0].type.tensor_type.shape.dim:
        return None
    d = inputs[0].type.tensor_type.shape.dim[0]
    if d.HasField("dim_value"):
        return int(d.dim_value)
    return d.dim_param or None


def export_onnx(
    model: Any,
    example_input: Any,
    path: str | os.PathLike[str],
    *,
    dynamic_batch: bool = True,
    exporter: str = "auto",
    opset: int | None = None,
) -> Path:
    """Write ``model`` (in eval mode) to the ONNX file ``path``, one file with its weights inside.

    Input ``input`` (``input_<i>`` for several), output ``output``; with ``dynamic_batch`` their
    first dimension is the symbolic ``batch``, so ONNX Runtime runs the file at any batch size
    (``hwtune profile model.onnx -b 1,32,256``), whatever the example's batch.

    Exporter: ``auto`` (default) uses PyTorch's TorchScript-based exporter (``dynamo=False``) and
    falls back to the dynamo exporter when that one fails or is gone. Measured on the built-in
    families (18 networks: ``cnn`` of the default study's space, ``mlp``, ``nb201``; torch 2.13, 2
    shared cores; docs/benchmarks.md "Runtime and export"; batch norm and dropout in the tests): both
    export every network and agree with PyTorch within 2e-7, but the legacy exporter takes a median
    0.11 s a network (1.1 s at most) where dynamo takes 2.9 s (8.7 s at most): it traces through
    ``torch.export`` and optimizes the graph, which would triple the cost of a trial that exports
    before measuring (``runtime: onnxruntime``, about 1 s of measuring); dynamo also prints progress
    lines and by default writes the weights to a second ``.onnx.data`` file (turned off here). Dynamo
    is the future of ``torch.onnx`` (the legacy exporter is deprecated), hence the fallback;
    ``exporter="dynamo"`` or ``"legacy"`` forces one.

    Args:
        model: a ``torch.nn.Module``; its train/eval mode is restored afterwards.
        example_input: one batch (a tensor, or a tuple of tensors), any batch size.
        path: the ``.onnx`` file to write (folders are created).
        dynamic_batch: symbolic batch dimension (``False``: the example's batch, fixed).
        exporter: ``auto``, ``legacy`` or ``dynamo``.
        opset: ONNX opset (default: the exporter's).

    Returns:
        ``path``.

    Raises:
        ExportError: no exporter could export the model (each one's reason in the message).
    """
    import torch

    if exporter not in EXPORTERS:
        raise ConfigError("exporter", f"unknown ONNX exporter {exporter!r}.", f"use one of {', '.join(EXPORTERS)}.")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    args = _on_model_device(model, _args(example_input))
    names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    order = {"auto": ("legacy", "dynamo"), "legacy": ("legacy",), "dynamo": ("dynamo",)}[exporter]
    failures: list[str] = []
    with _eval_mode(model), torch.no_grad():
        for how in order:
            try:
                with _quiet_exporter():
                    (_export_legacy if how == "legacy" else _export_dynamo)(model, args, p, names, dynamic_batch, opset)
                if dynamic_batch and isinstance(onnx_batch_dim(p), int):
                    raise ExportError(f"the {how} exporter fixed the batch dimension")
                return p
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - try the next exporter, then say why each failed
                failures.append(f"{how} exporter: {_first_line(e)}")
    raise ExportError(f"could not export {type(model).__name__} to ONNX: " + "; ".join(failures))


def export_torchscript(model: Any, example_input: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (in eval mode) to the TorchScript file ``path`` by **tracing** it on ``example_input``.

    Tracing, not scripting: scripting compiles the Python source and refuses much of what networks
    are written with (the built-in ``nb201`` cell sums a generator, which ``torch.jit.script`` rejects),
    while tracing records the operations one forward pass runs, which is the whole network for every
    built-in family (no branch depends on the data) and for most feed-forward networks. A traced
    model runs at any batch size (the batch is not baked in) and gives PyTorch's results bit for
    bit; a network whose control flow depends on its input would be traced along one path only, which
    the export's verification (``hwtune export``) catches by comparing outputs on real inputs.

    Returns:
        ``path``.

    Raises:
        ExportError: the model could not be traced or saved.
    """
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    args = _on_model_device(model, _args(example_input))
    try:
        with _eval_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates TorchScript; its runtime is still shipped
            traced = torch.jit.trace(model, args, check_trace=False)
            torch.jit.save(traced, str(p))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"could not trace {type(model).__name__} to TorchScript: {_first_line(e)}") from None
    return p


def export_for_runtime(model: Any, example_input: Any, folder: str | os.PathLike[str], runtime: str, stem: str = "model") -> Path:
    """Export ``model`` into ``folder`` for ``runtime`` (``torchscript`` or ``onnxruntime``)."""
    if runtime == "onnxruntime":
        return export_onnx(model, example_input, Path(folder) / f"{stem}{_SUFFIX['onnx']}")
    if runtime == "torchscript":
        return export_torchscript(model, example_input, Path(folder) / f"{stem}{_SUFFIX['torchscript']}")
    raise ConfigError("runtime", f"no export for runtime {runtime!r}.", "use torchscript or onnxruntime (torch needs no export).")


_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger"})
"""ONNX operators that mark a quantized (int8) graph."""


def runtime_of_file(path: str | os.PathLike[str]) -> str:
    """``onnxruntime`` for a ``.onnx`` file (``onnxruntime-int8`` when its graph holds quantize or
    integer operators, as ``compress.quantize_int8`` writes), else ``torchscript`` (what
    :func:`load_model` runs it with). Without the ``onnx`` package the graph is not read."""
    if Path(path).suffix.lower() != ".onnx":
        return "torchscript"
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - no onnx package, or a file ONNX Runtime will report on itself
        return "onnxruntime"
    return "onnxruntime-int8" if any(n.op_type in _INT8_OPS for n in graph.node) else "onnxruntime"


def runtime_source(source: str, runtime: str) -> str:
    """``measured:timer`` -> ``measured:timer[onnxruntime]``; eager ``torch`` and sources that already
    name a runtime are left as they are."""
    if runtime == "torch" or source.endswith("]") or source in ("unavailable", ""):
        return source
    return f"{source}[{runtime}]"


def label_runtime(report: HardwareReport, runtime: str, metrics: Iterable[str] | None = None) -> HardwareReport:
    """``report`` with ``runtime`` in the source (:func:`runtime_source`) and in ``extra["runtime"]`` of
    every measurement (of ``metrics`` only, when given); the device description says it too."""
    only = set(metrics) if metrics is not None else None

    def one(m: Measurement) -> Measurement:
        if only is not None and m.metric not in only:
            return m
        return replace(m, source=runtime_source(m.source, runtime), extra={**m.extra, "runtime": runtime})

    return HardwareReport(
        {k: one(m) for k, m in report.measurements.items()},
        {**report.device, "runtime": runtime, **_runtime_versions(runtime)},
        {b: {k: one(m) for k, m in ms.items()} for b, ms in report.batches.items()},
        list(report.warnings),
    )


def _runtime_versions(runtime: str) -> dict[str, str]:
    if not runtime.startswith("onnxruntime"):  # onnxruntime, onnxruntime-int8
        return {}
    try:
        import onnxruntime
    except ImportError:
        return {}
    return {"onnxruntime": str(onnxruntime.__version__)}


def check_runtime(runtime: Any, device: Any = None, field: str = "runtime", *, installed: bool = True) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES` and (with ``installed``) what it needs is installed
    (for ``device``, when given: ONNX Runtime's CUDA provider on a GPU), else a :class:`ConfigError`
    naming ``field`` and the fix. ``installed=False`` checks the name only (a stored study read
    elsewhere measures nothing)."""
    if not isinstance(runtime, str) or runtime not in RUNTIMES:
        raise ConfigError(field, f"unknown runtime {runtime!r}.", f"use one of {', '.join(RUNTIMES)}.")
    if runtime == "onnxruntime" and installed:
        missing = [m for m in ("onnxruntime", "onnx") if not _importable(m)]
        if missing:
            raise ConfigError(
                field, f"runtime onnxruntime needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed.",
                "install hwtune's onnx extra (pip install -e '.[onnx]' in a clone of hwtune), or measure in eager PyTorch with runtime: torch.",
            )
        if getattr(device, "kind", "cpu") == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ConfigError(
                    field, f"runtime onnxruntime on {device.to_spec()} needs ONNX Runtime's CUDA provider; onnxruntime {onnxruntime.__version__} here has none.",
                    "pip install onnxruntime-gpu, or measure with runtime: torch (or torchscript).",
                )
    return runtime


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def profile_in_runtime(
    model: Any,
    example_input: Any,
    device: Any = None,
    metrics: Iterable[str] | None = None,
    *,
    runtime: str = "torch",
    export: Callable[[Any, Any, str], Path] | None = None,
    runtime_label: str | None = None,
    **profile_kwargs: Any,
) -> HardwareReport:
    """:func:`profile` of the PyTorch network ``model`` as it runs in ``runtime``.

    ``torch``: ``profile(model, ...)`` itself (each value's ``extra["runtime"]`` says ``torch``).
    ``torchscript`` / ``onnxruntime``: the network is exported to a temporary file
    (:func:`export_torchscript`, :func:`export_onnx`), and that file is profiled: latency, throughput,
    power, energy and size are the runtime's, labelled ``[<runtime>]``; ``params`` and ``flops`` (and
    ``peak_mem_mb`` on a CPU, the traced tensors of one inference) are counted on ``model``. The
    export's seconds are in the latency's ``extra["export_s"]``.

    Args:
        model: an untrained (or trained) ``torch.nn.Module``.
        example_input, device, metrics, profile_kwargs: as :func:`profile`.
        runtime: one of :data:`RUNTIMES`.
        export: ``export(model, example_input, folder) -> file`` writing the file to measure instead
            of the plain export (e.g. an int8 quantization; a file ``runtime`` loads).
        runtime_label: the label of the measured file's values (default: ``runtime``), e.g.
            ``onnxruntime-int8``.

    Raises:
        ConfigError: unknown runtime, or its package is not installed.
        ExportError: the network could not be exported to the runtime.
    """
    from hwtune.hardware._device import CPUDevice
    from hwtune.hardware._profile import PROFILE_METRICS, profile
    from hwtune.hardware._runner import load_model

    check_runtime(runtime)
    if runtime == "torch":
        return label_runtime(profile(model, example_input, device, metrics, **profile_kwargs), "torch")
    device = device or CPUDevice()
    wanted = list(metrics) if metrics is not None else list(PROFILE_METRICS)
    counted = [m for m in wanted if m in NETWORK_METRICS or (m == "peak_mem_mb" and device.kind == "cpu")]
    in_runtime = [m for m in wanted if m not in counted]
    rt: HardwareReport | None = None
    export_s = 0.0
    if in_runtime:
        with tempfile.TemporaryDirectory(prefix="hwtune-runtime-") as tmp:
            t0 = time.perf_counter()
            path = export(model, example_input, tmp) if export is not None else export_for_runtime(model, example_input, tmp, runtime)
            export_s = time.perf_counter() - t0
            rt = label_runtime(profile(load_model(path), example_input, device, in_runtime, **profile_kwargs), runtime_label or runtime)
    net = profile(model, example_input, device, counted, **profile_kwargs) if counted else None
    return _merge(wanted, rt, net, export_s)


def _merge(wanted: list[str], rt: HardwareReport | None, net: HardwareReport | None, export_s: float) -> HardwareReport:
    """One report of the runtime's and the network's measurements, in ``wanted``'s order."""
    parts = [r for r in (rt, net) if r is not None]
    found = {k: m for r in parts for k, m in r.measurements.items()}
    if "latency_ms" in found and rt is not None and "latency_ms" in rt.measurements:
        lat = found["latency_ms"]
        found["latency_ms"] = replace(lat, extra={**lat.extra, "export_s": round(export_s, 4)})
    batches: dict[int, dict[str, Measurement]] = {}
    for r in parts:
        for b, ms in r.batches.items():
            batches.setdefault(b, {}).update(ms)
    warnings_: list[str] = []
    for r in parts:
        warnings_ += [w for w in r.warnings if w not in warnings_]
    device = {**(net.device if net is not None else {}), **(rt.device if rt is not None else {})}
    return HardwareReport({k: found[k] for k in wanted if k in found}, device, batches, warnings_)
