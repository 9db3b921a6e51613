"""The measuring process: one long-lived child (spawn) that the agent can kill.

A time limit on a measurement that runs in the server's own process could not stop a hung ONNX
Runtime or TorchScript call (a thread cannot be killed), and a model that crashes the runtime would
take the server down with it. So the agent measures in one child process, started once (importing
torch and ONNX Runtime takes seconds: docs/benchmarks.md "Remote measurement") and reused for every
measurement; past the time limit, or when it dies, it is killed and a fresh one is started for the
next request. One child, one measurement at a time: the queue (``_queue.py``) sees to that.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

__all__ = ["MeasureTimeout", "MeasureWorker", "ModelFailed", "WorkerDied"]


class MeasureTimeout(RuntimeError):
    """The measurement ran past the agent's limit; the measuring process was killed."""


class WorkerDied(RuntimeError):
    """The measuring process died (a model that crashes its runtime, out of memory)."""


class ModelFailed(RuntimeError):
    """The model loaded but could not be measured (the runtime's reason)."""


def _capabilities(device: Any) -> dict[str, Any]:
    """What this device can measure, and with which sensor."""
    from hwtune.hardware import PROFILE_METRICS

    caps: dict[str, Any] = {"metrics": list(PROFILE_METRICS)}
    if device.kind == "cpu":
        from hwtune.hardware._rapl import rapl_zones

        zones, reason = rapl_zones()
        caps["energy"] = "measured:rapl" if zones else f"estimated:tdp (RAPL unavailable: {reason})"
    else:
        from hwtune.hardware import NVMLUnavailable

        try:
            device.nvml()
            caps["energy"] = "measured:nvml"
        except NVMLUnavailable as e:
            caps["energy"] = f"unavailable ({e})"
    try:
        import onnxruntime

        caps["onnxruntime"] = onnxruntime.__version__
        caps["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        caps["onnxruntime"] = None
    return caps


def _measure(device: Any, job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from hwtune.hardware import load_model, profile

    runner = load_model(job["path"])
    x = torch.zeros((job["batch_sizes"][0], *job["input_shape"]), dtype=getattr(torch, job.get("dtype", "float32")))
    report = profile(
        runner, x, device, job["metrics"], batch_sizes=job["batch_sizes"], target_rel_ci=job["rel_ci"], max_time_s=job["max_time_s"],
        reference_ms=job.get("reference_ms"),
    )
    return report.to_dict()


def _warm_up(device: Any) -> None:
    """Measure a tiny ONNX graph once, so that the first real measurement does not pay for loading
    ONNX Runtime, the meters and the reference network (which would count against its time limit)."""
    import os
    import tempfile

    try:
        from onnx import TensorProto, helper, numpy_helper
        import numpy as np
    except ImportError:  # no onnx here: TorchScript only, nothing to warm
        return
    w = numpy_helper.from_array(np.zeros((4, 4), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "warm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory(prefix="hwtune-agent-warm-") as tmp:
        path = os.path.join(tmp, "warm.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        try:
            _measure(device, {"path": path, "input_shape": [4], "batch_sizes": [1], "metrics": ["latency_ms", "size_mb"], "rel_ci": 0.5, "max_time_s": 0.05})
        except Exception:  # noqa: BLE001 - a warm-up only; a real request reports its own error
            pass


def _child_main(conn: Any, device_spec: str) -> None:
    """The child's loop: say ready (with the device's description), then measure each job sent."""
    import logging
    import warnings

    logging.getLogger("hwtune.hardware").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    from hwtune.exceptions import ConfigError
    from hwtune.hardware import parse_device

    device = parse_device(device_spec)
    caps = _capabilities(device)
    _warm_up(device)
    if device.kind == "cpu":  # the agent's own machine speed (hardware._reference), as a local CPU study stores it
        from hwtune.hardware import measure_reference_speed

        caps["reference"] = measure_reference_speed(device)
    conn.send(("ready", {"device": device.describe(), "capabilities": caps}))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            conn.send(("ok", _measure(device, job)))
        except ConfigError as e:
            conn.send(("bad", f"{e.field}: {e.problem}" + (f" Fix: {e.fix}" if e.fix else "")))
        except Exception as e:  # noqa: BLE001 - the runtime's reason goes back to the client
            text = str(e).strip()
            conn.send(("bad", f"{type(e).__name__}: {text.splitlines()[0][:400] if text else ''}"))


class MeasureWorker:
    """The agent's measuring child process (spawned on first use, restarted after a kill or a death).

    Only :meth:`run` talks to it, from one thread at a time (the queue lets one measurement run).
    """

    def __init__(self, device_spec: str, start_timeout_s: float = 180.0) -> None:
        self.device_spec = device_spec
        self.start_timeout_s = start_timeout_s
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.description: dict[str, Any] | None = None
        self.starts = 0
        self.last_start_s: float | None = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        t0 = time.perf_counter()
        proc = ctx.Process(target=_child_main, args=(child, self.device_spec), daemon=True, name="hwtune-agent-measure")
        proc.start()
        child.close()
        if not parent.poll(self.start_timeout_s):
            proc.kill()
            proc.join(5)
            raise WorkerDied(f"the measuring process did not start within {self.start_timeout_s:g} s")
        try:
            kind, payload = parent.recv()
        except EOFError:
            proc.join(5)
            raise WorkerDied(f"the measuring process exited while starting (exit code {proc.exitcode})") from None
        self._proc, self._conn = proc, parent
        self.description = payload
        self.starts += 1
        self.last_start_s = time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        """The device description and capabilities (kept from the first start: a measurement in
        progress holds the process, and ``/info`` must not wait for it)."""
        return self.description if self.description is not None else self.ensure_started()

    def ensure_started(self) -> dict[str, Any]:
        """Start the process when none runs; its device description and capabilities."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            assert self.description is not None
            return self.description

    def kill(self) -> None:
        """Kill the process now (a fresh one starts on the next job)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(10)

    def run(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Measure ``job`` in the child; its report as plain data.

        Raises:
            MeasureTimeout: past ``timeout_s`` (the child is killed).
            WorkerDied: the child died meanwhile (killed by a signal, out of memory...).
            ModelFailed: the runtime could not load or run the model (its reason).
        """
        self.ensure_started()
        with self._lock:
            conn, proc = self._conn, self._proc
            conn.send(job)
            if not conn.poll(timeout_s):
                self.kill()
                raise MeasureTimeout(f"the measurement ran past the agent's limit of {timeout_s:g} s; it was stopped")
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                proc.join(5)
                code = proc.exitcode
                self.kill()
                how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
                raise WorkerDied(f"the measuring process died while measuring this model ({how})") from None
        if kind == "ok":
            return payload
        raise ModelFailed(str(payload))

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
                if self._proc is not None:
                    self._proc.join(5)
            self.kill()
