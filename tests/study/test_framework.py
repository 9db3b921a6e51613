"""The framework adapter boundary (``hwtune.study._framework``): one suite, the same assertions, run
against every framework — PyTorch always, Keras 3 where it is installed (the torch backend unless
``KERAS_BACKEND`` says otherwise; skipped with the reason without Keras)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports Keras: no TensorFlow needed

from hwtune.exceptions import ConfigError
from hwtune.hardware import CPUDevice
from hwtune.study import parse_study_file, study_from_file
from hwtune.study._framework import FRAMEWORKS, framework_for_runtime, get_framework
from hwtune.train import FAMILIES, load_dataset

_NO_KERAS = importlib.util.find_spec("keras") is None
FRAMEWORK_NAMES = [
    "torch",
    pytest.param("keras", marks=pytest.mark.skipif(_NO_KERAS, reason="Keras 3 is not installed (pip install -e '.[keras]')")),
]

ARCH = {"conv_layers": 2, "filters_0": 6, "filters_1": 12, "kernel_0": 3, "kernel_1": 5, "dense_units": 24}
SHAPE, CLASSES = (1, 8, 8), 10


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_build_gives_the_family_s_exact_parameter_count(name: str) -> None:
    fw = get_framework(name)
    for family, params, shape in (("cnn", ARCH, SHAPE), ("mlp", {"hidden_layers": 2, "units_0": 20, "units_1": 7}, (64,))):
        model = fw.build(family, params, shape, CLASSES)
        expected = FAMILIES[family].cost_features(params, shape, CLASSES)["params"]
        assert fw.param_count(model) == expected


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_measure_labels_its_runtime_and_counts_the_network(name: str) -> None:
    fw = get_framework(name)
    model = fw.build("cnn", ARCH, SHAPE, CLASSES)
    runtime = fw.default_runtime
    report = fw.measure(model, ARCH, (4, *SHAPE), CPUDevice(1), ("latency_ms", "params", "size_mb"), runtime, max_time_s=0.3)
    lat, params, size = (report.measurements[k] for k in ("latency_ms", "params", "size_mb"))
    assert lat.value > 0 and lat.source.startswith("measured:timer") and lat.source.endswith("]")
    assert lat.extra["runtime"].startswith(runtime) and lat.extra["batch_size"] == 4
    assert params.value == fw.param_count(model) and params.source == "counted"
    assert size.value > 0 and size.source.startswith("measured:serialized")
    assert framework_for_runtime(runtime) is fw


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_train_reports_every_epoch_and_is_seeded(name: str, digits) -> None:
    fw = get_framework(name)
    params = {**ARCH, "epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.005}
    runs = []
    for _ in range(2):
        reports: list[tuple[int, float]] = []
        metrics, settings = fw.train(fw.build("cnn", params, SHAPE, CLASSES), digits, params, seed=3, device=CPUDevice(1),
                                     reporter=lambda e, err, r=reports: r.append((e, err)))
        runs.append((metrics, reports))
        assert [e for e, _ in reports] == [1, 2] and reports[-1][1] == pytest.approx(metrics["error"])
        assert 0.0 <= metrics["error"] <= 1.0 and metrics["accuracy"] == pytest.approx(1 - metrics["error"])
        assert metrics["epochs"] == 2 and 0.0 <= metrics["test_error"] <= 1.0
        assert settings["plan"]["optimizer"] == "adam" and settings["plan"]["epochs"] == 2
    assert runs[0][0]["error"] == pytest.approx(runs[1][0]["error"], abs=1e-6)  # same seed, same result
    assert runs[0][0]["error"] < 0.5  # it learned something: 2 epochs of digits


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_save_writes_the_network(name: str, tmp_path: Path) -> None:
    fw = get_framework(name)
    suffix = ".keras" if name == "keras" else ".pt"
    path = fw.save(fw.build("mlp", {"hidden_layers": 1, "units": 8}, (64,), CLASSES), tmp_path / f"m{suffix}")
    assert path.is_file() and path.stat().st_size > 0


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_a_study_file_rejects_over_budget_networks_without_training_them(name: str, tmp_path: Path) -> None:
    spec = parse_study_file({
        "name": f"fw-{name}", "framework": name, "data": {"name": "digits"}, "model": {"family": "cnn"},
        "space": {"filters_0": {"type": "int", "low": 2, "high": 48, "log": True}, "dense_units": {"type": "int", "low": 8, "high": 64, "log": True},
                  "epochs": 1, "lr": 0.05},
        "constraints": ["params <= 9000"], "device": "cpu:1", "inference_batch_size": 8, "sampler": "random", "cost_model": "none",
        "latency": {"max_time_s": 0.2}, "keep_models": "none",
    })
    study, build, train = study_from_file(spec, storage=f"sqlite:///{tmp_path / 'fw.db'}")
    assert study.runtime == get_framework(name).default_runtime
    assert study.definition()["runtime"] == study.runtime
    trained: list[dict] = []

    def counting_train(model, params, ctx):  # the study file's trainer, counted
        trained.append(dict(params))
        return train(model, params, ctx)

    summary = study.optimize(build, counting_train, n_trials=6)
    over = [r for r in summary.records if r.status == "over_budget"]
    done = [r for r in summary.records if r.status == "trained"]
    assert over and done, summary.counts
    assert len(trained) == len(done)  # an over-budget network never reached the trainer
    assert all(r.hardware["params"].value > 9000 and not r.metrics for r in over)
    assert all(r.hardware["params"].value <= 9000 and 0 <= r.metrics["error"] <= 1 for r in done)
    assert {p["filters_0"] for p in trained} == {r.params["filters_0"] for r in done}


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_a_runtime_of_another_framework_is_refused(name: str) -> None:
    other = {"torch": "keras", "keras": "onnxruntime"}[name]
    spec = parse_study_file({"framework": name, "space": {"filters_0": {"type": "int", "low": 2, "high": 8}}, "runtime": other})
    with pytest.raises(ConfigError) as e:
        study_from_file(spec, storage=None)
    assert e.value.field == "runtime" and name in str(e.value)


def test_frameworks_are_found_by_name_and_unknown_ones_refused() -> None:
    assert set(FRAMEWORKS) == {"torch", "keras"}
    assert get_framework("torch").default_runtime == "onnxruntime"
    with pytest.raises(ConfigError) as e:
        get_framework("mxnet")
    assert e.value.field == "framework" and "keras" in (e.value.fix or "")
    with pytest.raises(ConfigError) as e2:
        framework_for_runtime("tensorrt")
    assert e2.value.field == "runtime"
