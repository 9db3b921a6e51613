"""Export of compressed trials (issue 14, part 6): a pruned network as a smaller dense file, an int8
trial as the int8 ONNX model the study evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest

import hwtune
from hwtune.compress import int8_kernels
from hwtune.exceptions import ConfigError
from hwtune.study import parse_study_file, study_from_file
from tests._tiny_digits import tiny_digits_spec

pytest.importorskip("torch_pruning")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp = tmp_path_factory.mktemp("export-compressed")
    s = tiny_digits_spec(tmp / "x.db", "x", trials=2, keep_models="all", runtime="onnxruntime", inference_batch_size=4)
    s["space"].update({"filters_0": 16, "lr": 0.1, "prune_ratio": {"type": "categorical", "choices": [0.0, 0.5]},
                       "quantize": {"type": "categorical", "choices": ["none", "int8"]}})
    st, build, train = study_from_file(parse_study_file(s))
    opt = st.open()
    opt.enqueue_trial({"prune_ratio": 0.5, "quantize": "none"})
    opt.enqueue_trial({"prune_ratio": 0.5, "quantize": "int8"})
    st.optimize(build, train, n_trials=2)
    return st


def test_a_pruned_and_an_int8_trial_export_verified(study: object, tmp_path: Path) -> None:
    manifest = hwtune.export(study, trials=[0, 1], format="onnx", out=tmp_path, latency_max_time_s=0.2)
    pruned, int8 = manifest["models"]
    assert pruned["verification"]["passed"] and pruned["verification"]["max_abs_diff"] < 1e-3
    assert int8["verification"]["kind"] == "int8" and int8["verification"]["passed"]
    assert int8["verification"]["error_exported"] == int8["verification"]["error_study"]  # the file is the evaluated model
    assert int8_kernels(tmp_path / int8["file"])  # runs with int8 kernels
    assert int8["exported"]["latency_ms"]["source"].endswith("[onnxruntime-int8]")
    assert "latency_ms" in pruned["final_hardware"] and "latency_ms" in int8["final_hardware"]


def test_an_int8_trial_cannot_be_exported_as_torchscript(study: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        hwtune.export(study, trials=1, format="torchscript", out=tmp_path, remeasure=False)
    assert e.value.field == "format"
