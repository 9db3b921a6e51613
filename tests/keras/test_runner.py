"""Measuring Keras models for real: the backend's own inference through hwtune's meters, labelled."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")

from hwtune.hardware import CPUDevice, profile
from hwtune.keras import KerasRunner, build_family, profile_keras
from hwtune.keras._backend import backend_name
from hwtune.train import get_family

P = {"conv_layers": 2, "filters_0": 8, "filters_1": 8, "dense_units": 16}
SHAPE = (1, 8, 8)


@pytest.fixture()
def model():
    m = build_family("cnn", P, SHAPE, 10)

    def no_predict(*a, **k):
        raise AssertionError("model.predict must not be what is timed")

    m.predict = no_predict
    return m


def test_profile_times_the_backend_call_and_labels_keras_and_the_backend(model) -> None:
    r = profile_keras(model, np.zeros((4, *SHAPE), "float32"), CPUDevice(1), ["latency_ms", "throughput_sps", "params", "size_mb", "peak_mem_mb"], max_time_s=0.3)
    label = f"keras-{backend_name()}"
    lat = r.measurements["latency_ms"]
    assert lat.source == f"measured:timer[{label}]" and lat.extra["runtime"] == label and lat.extra["batch_size"] == 4
    assert lat.ci_low <= lat.value <= lat.ci_high and lat.repeats >= 10
    assert r.measurements["throughput_sps"].value == pytest.approx(4000.0 / lat.value, rel=0.05)
    assert r.measurements["params"].value == model.count_params() and r.measurements["params"].source == "counted"
    assert r.measurements["size_mb"].source == f"measured:serialized[{label}]" and ".keras" in (r.measurements["size_mb"].note or "")
    assert r.device["runtime"] == label and r.device["keras_backend"] == backend_name() and r.device["keras"]


def test_size_is_the_saved_keras_file(model, tmp_path) -> None:
    r = profile_keras(model, np.zeros((1, *SHAPE), "float32"), CPUDevice(1), ["size_mb"])
    model.save(str(tmp_path / "m.keras"))
    assert r.measurements["size_mb"].value == pytest.approx((tmp_path / "m.keras").stat().st_size / 1e6, rel=0.01)


def test_a_runner_goes_through_hardware_profile_as_it_is(model) -> None:
    runner = KerasRunner(model)
    r = profile(runner, np.zeros((2, *SHAPE), "float32"), CPUDevice(1), ["latency_ms", "flops"], max_time_s=0.2)
    assert r.measurements["latency_ms"].value > 0
    flops = r.measurements["flops"]
    if backend_name() == "torch":  # PyTorch's counter on the Keras model: 2 per multiply-add, per sample
        macs = get_family("cnn").cost_features(P, SHAPE, 10)["macs"]
        assert flops.value == pytest.approx(2 * macs, rel=0.05) and flops.source == "counted:flop_counter"
    else:
        assert flops.value is None and flops.note

