"""``runtime``: the default meter measures the network in the runtime it will ship with, and says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hwtune import Study
from hwtune.exceptions import ConfigError
from hwtune.hardware import DEFAULT_RUNTIME
from hwtune.study import parse_study_file
from hwtune.vocabulary import CONFIG_ATTR, DEVICE_ATTR, HARDWARE_ATTR

pytest.importorskip("onnxruntime")

SPACE = {"width": {"type": "int", "low": 4, "high": 16, "role": "architecture"}}


def build(params: dict[str, Any]) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, params["width"]), nn.ReLU(), nn.Linear(params["width"], 3))


def train(model: nn.Module, params: dict[str, Any], ctx: Any) -> dict[str, float]:
    return {"error": 1.0 / params["width"]}


def _study(url: str, runtime: str | None, name: str = "rt") -> Study:
    kw = {} if runtime is None else {"runtime": runtime}
    return Study(
        name, SPACE, constraints=["latency_ms <= 1000"], storage=url, device="cpu:1", input_shape=(1, 4, 4),
        inference_batch_size=4, sampler="random", latency_rel_ci=0.5, latency_max_time_s=0.2, cost_model=None, keep_models="none", **kw,
    )


@pytest.mark.parametrize("runtime", ["onnxruntime", "torchscript"])
def test_a_study_measures_in_its_runtime_and_labels_it(tmp_path: Path, runtime: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _study(url, runtime)
    study.optimize(build, train, n_trials=2)
    trials = study.optuna_study.trials
    assert len(trials) == 2
    for t in trials:
        hw = t.user_attrs[HARDWARE_ATTR]
        for k in ("latency_ms", "throughput_sps", "size_mb"):
            assert hw[k]["source"].endswith(f"[{runtime}]"), hw[k]["source"]
            assert hw[k]["extra"]["runtime"] == runtime
        assert hw["params"]["source"] == "counted"  # counted on the network: the reuse check compares it
        assert t.user_attrs[DEVICE_ATTR]["runtime"] == runtime
    assert study.optuna_study.user_attrs[CONFIG_ATTR]["runtime"] == runtime


def test_the_default_runtime_is_onnxruntime_and_eager_says_torch(tmp_path: Path) -> None:
    assert DEFAULT_RUNTIME == "onnxruntime"
    assert _study("sqlite:///" + str(tmp_path / "a.db"), None).runtime == "onnxruntime"
    assert parse_study_file({"space": {"x": 1}}).runtime == "onnxruntime"
    study = _study(f"sqlite:///{tmp_path / 't.db'}", "torch")
    study.optimize(build, train, n_trials=1)
    lat = study.optuna_study.trials[0].user_attrs[HARDWARE_ATTR]["latency_ms"]
    assert not lat["source"].endswith("]") and lat["extra"]["runtime"] == "torch"


def test_resuming_with_another_runtime_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _study(url, "torch").open()
    with pytest.raises(ConfigError) as e:
        _study(url, "onnxruntime").open()
    assert e.value.field == "runtime" and "torch" in e.value.problem
    _study(url, "torch").open()  # the same runtime resumes


def test_a_study_stored_before_runtimes_resumes_as_torch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    opened = _study(url, "torch").open()
    old = dict(opened.user_attrs[CONFIG_ATTR])
    del old["runtime"]  # as written before issue 13
    opened.set_user_attr(CONFIG_ATTR, old)
    _study(url, "torch").open()
    with pytest.raises(ConfigError, match="runtime"):
        _study(url, "onnxruntime").open()


def test_bad_runtime_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as e:
        _study(f"sqlite:///{tmp_path / 'x.db'}", "tflite")
    assert e.value.field == "runtime" and "onnxruntime" in (e.value.fix or "")
    with pytest.raises(ConfigError) as e2:
        parse_study_file({"space": {"x": 1}, "runtime": "tensorrt"})
    assert "runtime" in e2.value.field
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    study = _study(f"sqlite:///{tmp_path / 'y.db'}", "onnxruntime")  # a stored study is read without it
    with pytest.raises(ConfigError) as e3:
        study.optimize(build, train, n_trials=1)  # measuring needs it: refused before the storage is touched
    assert e3.value.field == "runtime"
    assert "onnx extra" in (e3.value.fix or "") and "runtime: torch" in (e3.value.fix or "")
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "y.db").exists()


def test_the_definition_json_holds_the_runtime(tmp_path: Path) -> None:
    d = _study(f"sqlite:///{tmp_path / 'd.db'}", "torchscript").definition()
    assert json.loads(json.dumps(d))["runtime"] == "torchscript"
