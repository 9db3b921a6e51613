"""Converters (ONNX with a dynamic batch, traced TorchScript) and measuring a network in a runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from hwtune.exceptions import ConfigError
from hwtune.hardware import (
    RUNTIMES,
    CPUDevice,
    ExportError,
    check_runtime,
    export_onnx,
    export_torchscript,
    label_runtime,
    load_model,
    onnx_batch_dim,
    profile,
    profile_in_runtime,
    runtime_source,
)
from hwtune.train import get_family

ort = pytest.importorskip("onnxruntime")

FAST: dict[str, Any] = {"target_rel_ci": 0.5, "max_time_s": 0.3, "warmup_runs": 1, "warmup_s": 0.0, "min_repeats": 6, "min_energy_window_s": 0.02, "max_retries": 0}

NB201 = {"edge_1_0": "nor_conv_3x3", "edge_2_0": "none", "edge_2_1": "avg_pool_3x3", "edge_3_0": "skip_connect",
         "edge_3_1": "nor_conv_1x1", "edge_3_2": "nor_conv_3x3", "channels": 4, "cells": 1}
FAMILIES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "cnn": ({"conv_layers": 2, "filters_0": 8, "kernel_0": 5, "filters_1": 6, "dense_units": 16}, (1, 8, 8)),
    "cnn_bn_dropout": ({"conv_layers": 2, "filters_0": 8, "batch_norm": True, "dropout": 0.5, "dense_units": 16}, (3, 8, 8)),
    "mlp": ({"hidden_layers": 2, "units_0": 32, "units_1": 16}, (1, 8, 8)),
    "nb201": (NB201, (3, 16, 16)),
}


def _net(kind: str) -> tuple[nn.Module, tuple[int, ...]]:
    params, shape = FAMILIES[kind]
    torch.manual_seed(0)
    net = get_family(kind.split("_")[0]).build(params, shape, 10)
    if kind == "cnn_bn_dropout":  # running statistics that differ from the initial ones: eval mode matters
        net.train()
        with torch.no_grad():
            net(torch.randn(32, *shape) * 3 + 1)
    return net, shape


def _ort_run(path: Path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_onnx_runs_at_any_batch_and_matches_torch(kind: str, tmp_path: Path) -> None:
    net, shape = _net(kind)
    net.train()  # the export puts it in eval mode and gives the mode back
    path = export_onnx(net, torch.randn(1, *shape), tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and path.is_file()
    assert not list(tmp_path.glob("*.data"))  # one file, weights inside
    assert net.training
    assert onnx_batch_dim(path) == "batch"
    net.eval()
    for b in (1, 7):
        x = torch.randn(b, *shape)
        got = _ort_run(path, x)
        with torch.no_grad():
            want = net(x).numpy()
        assert got.shape == (b, 10)
        assert np.abs(got - want).max() < 1e-4


def test_onnx_fixed_batch_when_asked(tmp_path: Path) -> None:
    net, shape = _net("mlp")
    path = export_onnx(net, torch.randn(3, *shape), tmp_path / "fixed.onnx", dynamic_batch=False)
    assert onnx_batch_dim(path) == 3
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument):  # ONNX Runtime refuses another batch
        _ort_run(path, torch.randn(7, *shape))


def test_profile_of_a_fixed_batch_file_at_another_batch_is_a_clear_error(tmp_path: Path) -> None:
    net, shape = _net("mlp")
    path = export_onnx(net, torch.randn(2, *shape), tmp_path / "fixed.onnx", dynamic_batch=False)
    r = profile(load_model(path), torch.zeros(2, *shape), CPUDevice(1), ["latency_ms", "flops"], **FAST)
    assert r["latency_ms"].available
    with pytest.raises(ConfigError) as e:
        profile(load_model(path), torch.zeros(2, *shape), CPUDevice(1), ["latency_ms"], batch_sizes=[2, 8], **FAST)
    assert e.value.field == "batch_sizes" and "fixed batch size of 2" in e.value.problem and "dynamic batch" in (e.value.fix or "")


def test_dynamo_exporter_gives_the_same_model(tmp_path: Path) -> None:
    net, shape = _net("mlp")
    path = export_onnx(net, torch.randn(1, *shape), tmp_path / "d.onnx", exporter="dynamo")
    assert onnx_batch_dim(path) == "batch" and not list(tmp_path.glob("*.data"))
    x = torch.randn(7, *shape)
    with torch.no_grad():
        assert np.abs(_ort_run(path, x) - net.eval()(x).numpy()).max() < 1e-4


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this network cannot run")


def test_export_failure_names_each_exporter(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="legacy exporter: RuntimeError: this network cannot run"):
        export_onnx(_Broken(), torch.randn(1, 4), tmp_path / "b.onnx", exporter="legacy")
    with pytest.raises(ExportError, match="_Broken to TorchScript"):
        export_torchscript(_Broken(), torch.randn(1, 4), tmp_path / "b.pt")
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(_Broken(), torch.randn(1, 4), tmp_path / "b.onnx", exporter="tf")


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_torchscript_matches_torch_exactly(kind: str, tmp_path: Path) -> None:
    net, shape = _net(kind)
    path = export_torchscript(net, torch.randn(1, *shape), tmp_path / "m.pt")
    ts = torch.jit.load(str(path))
    net.eval()
    for b in (1, 7):
        x = torch.randn(b, *shape)
        with torch.no_grad():
            assert torch.equal(ts(x), net(x))


def test_runtime_labels() -> None:
    assert runtime_source("measured:timer", "onnxruntime") == "measured:timer[onnxruntime]"
    assert runtime_source("measured:timer/reference", "torchscript") == "measured:timer/reference[torchscript]"
    assert runtime_source("measured:timer", "torch") == "measured:timer"  # no suffix: eager PyTorch
    assert runtime_source("measured:timer[onnxruntime]", "onnxruntime") == "measured:timer[onnxruntime]"
    assert runtime_source("unavailable", "onnxruntime") == "unavailable"
    assert RUNTIMES == ("torch", "torchscript", "onnxruntime")
    with pytest.raises(ConfigError, match="runtime"):
        check_runtime("tflite")


@pytest.mark.parametrize("runtime", ["onnxruntime", "torchscript"])
def test_profile_in_runtime_labels_what_ran_there(runtime: str) -> None:
    net, shape = _net("cnn")
    x = torch.zeros(4, *shape)
    metrics = ["latency_ms", "throughput_sps", "params", "flops", "size_mb", "peak_mem_mb"]
    r = profile_in_runtime(net, x, CPUDevice(1), metrics, runtime=runtime, **FAST)
    assert list(r.measurements) == metrics
    for k in ("latency_ms", "throughput_sps", "size_mb"):
        assert r[k].source.endswith(f"[{runtime}]"), r[k].source
        assert r[k].extra["runtime"] == runtime
    assert r["latency_ms"].extra["export_s"] > 0
    assert r["latency_ms"].extra["batch_size"] == 4
    # the architecture's counts come from the PyTorch network, unlabelled
    assert r["params"].source == "counted" and r["params"].value == sum(p.numel() for p in net.parameters())
    assert r["flops"].source.startswith("counted") and not r["flops"].source.endswith("]")
    assert "[" not in r["peak_mem_mb"].source
    assert r.device["runtime"] == runtime
    assert r.batches[4]["latency_ms"].source.endswith(f"[{runtime}]")
    size_note = r["size_mb"].note or ""
    assert size_note.endswith(".onnx" if runtime == "onnxruntime" else ".pt")


def test_profile_in_torch_is_profile_with_the_runtime_said() -> None:
    net, shape = _net("mlp")
    r = profile_in_runtime(net, torch.zeros(2, *shape), CPUDevice(1), ["latency_ms", "params"], runtime="torch", **FAST)
    assert r["latency_ms"].source.startswith("measured:timer") and not r["latency_ms"].source.endswith("]")
    assert r["latency_ms"].extra["runtime"] == "torch" and r.device["runtime"] == "torch"


def test_label_runtime_on_a_file_report(tmp_path: Path) -> None:
    net, shape = _net("mlp")
    path = export_onnx(net, torch.randn(1, *shape), tmp_path / "m.onnx")
    r = label_runtime(profile(load_model(path), torch.zeros(2, *shape), CPUDevice(1), ["latency_ms", "size_mb"], **FAST), "onnxruntime")
    assert r["latency_ms"].source.endswith("[onnxruntime]") and r.device["onnxruntime"] == ort.__version__


def test_profile_in_runtime_fails_clearly_when_the_network_cannot_export() -> None:
    with pytest.raises(ExportError, match="TorchScript"):
        profile_in_runtime(_Broken(), torch.zeros(1, 4), CPUDevice(1), ["latency_ms"], runtime="torchscript", **FAST)
