"""The study's default meter on a remote device: export, send to the agent, label what comes back.

Apart from ``_remote.py`` (the device and its HTTP client) because ``_device`` imports that one to
parse ``remote://`` specs, and this one needs the exporters and ``profile`` (which import ``_device``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError
from hwtune.hardware._measurement import HardwareReport, Measurement
from hwtune.hardware._remote import RemoteAgentError, RemoteDevice

__all__ = ["LOCAL_METRICS", "RemoteMeter", "remote_meter"]

LOCAL_METRICS = ("params", "flops")
"""Counted here on the PyTorch network (they describe the architecture, as for a local device)."""


def remote_meter(device: RemoteDevice, shape: tuple[int, ...], rel_ci: float, max_time_s: float, metrics: tuple[str, ...], runtime: str) -> "RemoteMeter":
    """The study's default meter on ``device`` (checks the runtime and reads the token now, before
    anything is written)."""
    if runtime not in ("onnxruntime", "torchscript"):
        raise ConfigError("runtime", f"runtime {runtime!r} cannot run on a remote agent: it would need the network as Python objects (pickle).",
                          "use runtime: onnxruntime (the default) or torchscript (when the agent allows it).")
    device.token()
    return RemoteMeter(device, tuple(shape), rel_ci, max_time_s, tuple(metrics), runtime)


def _relabel(m: Measurement, agent: str, runtime: str, extra: dict[str, Any]) -> Measurement:
    if not m.source.startswith("measured"):  # counted, estimated, unavailable: said as they are
        return replace(m, extra={**m.extra, "runtime": runtime, "remote": agent})
    return replace(m, source=f"measured:remote:{agent}", extra={**m.extra, **extra, "agent_source": m.source, "runtime": runtime})


@dataclass
class RemoteMeter:
    """``measure(model, params)`` through the agent (see the module docstring); picklable for workers."""

    device: RemoteDevice
    shape: tuple[int, ...]
    rel_ci: float
    max_time_s: float
    metrics: tuple[str, ...]
    runtime: str = "onnxruntime"
    agent_reference_ms: float | None = field(default=None, compare=False)
    """The agent's machine speed its first answer used: sent with every later request, so that all of
    this meter's latencies are at one speed (a CPU agent's, like a local CPU study's stored one)."""
    failures: int = field(default=0, compare=False)
    last_failure: str = field(default="", compare=False)

    def _export(self, model: Any, x: Any, export: Callable[[Any, Any, str], Path] | None = None) -> tuple[bytes, str, float]:
        from hwtune.hardware._convert import export_for_runtime

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hwtune-remote-") as tmp:
            path = export(model, x, tmp) if export is not None else export_for_runtime(model, x, tmp, self.runtime)
            data = path.read_bytes()
        return data, ("onnx" if self.runtime == "onnxruntime" or export is not None else "torchscript"), time.perf_counter() - t0

    def __call__(
        self, model: Any, params: dict[str, Any] | None = None, *,
        export: Callable[[Any, Any, str], Path] | None = None, runtime_label: str | None = None,
    ) -> HardwareReport:
        """Measure ``model`` on the agent. ``export(model, x, folder) -> ONNX file`` replaces the plain
        export (e.g. an int8 quantization), its values labelled ``runtime_label``."""
        try:
            report = self._measure(model, export, runtime_label)
        except Exception as e:
            self.failures += 1
            self.last_failure = str(e)[:500]
            raise
        self.failures = 0
        return report

    def measure_file(self, path: str | Path) -> HardwareReport:
        """Measure an ONNX file (an exported model) on the agent, as it is."""
        data = Path(path).read_bytes()
        return self._measure(None, None, None, sent=(data, "onnx", 0.0))

    def _measure(self, model: Any, export: Any, runtime_label: str | None, sent: tuple[bytes, str, float] | None = None) -> HardwareReport:
        import torch

        from hwtune.hardware._device import CPUDevice
        from hwtune.hardware._profile import profile

        x = torch.zeros(self.shape)
        remote = [m for m in self.metrics if m not in LOCAL_METRICS or model is None]
        local = [m for m in self.metrics if m in LOCAL_METRICS and model is not None]
        label = runtime_label or self.runtime
        measurements: dict[str, Measurement] = {}
        batches: dict[int, dict[str, Measurement]] = {}
        device: dict[str, Any] = {}
        warnings: list[str] = []
        if remote:
            data, fmt, export_s = sent if sent is not None else self._export(model, x, export)
            query = {"format": fmt, "input_shape": ",".join(str(d) for d in self.shape[1:]), "batch_sizes": str(self.shape[0]),
                     "metrics": ",".join(remote), "rel_ci": repr(float(self.rel_ci)), "max_time_s": repr(float(self.max_time_s))}
            if self.agent_reference_ms is not None:
                query["reference_ms"] = repr(float(self.agent_reference_ms))
            t0 = time.perf_counter()
            answer = self.device.request("POST", "/measure", query=query, body=data)
            round_trip = time.perf_counter() - t0
            try:
                rep = HardwareReport.from_dict(answer["report"])
                agent = str(answer.get("agent") or self.device.to_spec())
                timing = dict(answer.get("timing") or {})
                if self.agent_reference_ms is None and isinstance(answer.get("reference_ms"), (int, float)):
                    self.agent_reference_ms = float(answer["reference_ms"])
            except (KeyError, TypeError, ValueError) as e:
                raise RemoteAgentError(f"the agent at {self.device.to_spec()} answered a report hwtune cannot read ({type(e).__name__}: {e})") from None
            how = {"remote": self.device.to_spec(), "queue_wait_s": timing.get("queue_wait_s"), "agent_measure_s": timing.get("measure_s"),
                   "round_trip_s": round(round_trip, 4), "export_s": round(export_s, 4), "model_bytes": len(data),
                   "agent_reference_ms": answer.get("reference_ms")}
            measurements.update({k: _relabel(m, agent, label, how) for k, m in rep.measurements.items()})
            batches = {b: {k: _relabel(m, agent, label, how) for k, m in ms.items()} for b, ms in rep.batches.items()}
            device = {**rep.device, "remote": self.device.to_spec(), "agent": agent, "runtime": label}
            warnings = [f"agent {agent}: {w}" for w in rep.warnings]
        if local:
            net = profile(model, x[:1], CPUDevice(1), local)
            measurements.update(net.measurements)
        return HardwareReport({k: measurements[k] for k in self.metrics if k in measurements}, device, batches, warnings)

    def after_trial(self, study: Any, trial: Any) -> None:
        """Optuna callback: stop the study after ``max_failures`` failed measurements in a row."""
        if self.failures >= self.device.max_failures:
            raise ConfigError(
                "device",
                f"the agent at {self.device.to_spec()} failed {self.failures} measurements in a row; the study stops. Last: {self.last_failure}",
                f"check that 'hwtune agent serve' runs there and shares the token, then run the study again: it resumes where it stopped (max_failures={self.device.max_failures}).",
            )
