"""``hwtune.export``: model files, verification on real validation inputs, re-measurement, manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import hwtune
from hwtune.deploy import (
    FORMAT_VERSION,
    missing_keys,
    read_bundle,
    read_manifest,
    verify_export,
)
from hwtune.deploy._export import compare_latency
from hwtune.exceptions import ConfigError
from hwtune.hardware import Measurement, export_onnx
from hwtune.study import Study, stored_study
from hwtune.vocabulary import METRICS_ATTR
from tests.deploy._digits_study import run_study

pytest.importorskip("onnxruntime")

FAST = {"latency_rel_ci": 0.5, "latency_max_time_s": 0.2}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return run_study(tmp_path_factory.mktemp("export"), trials=2)


@pytest.fixture(scope="module")
def onnx_export(study: Study, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("onnx")
    return hwtune.export(study, trials="pareto", format="onnx", out=out, n_inputs=10_000, **FAST), out


def test_the_manifest_has_every_key_and_says_what_was_exported(study: Study, onnx_export: tuple[dict[str, Any], Path]) -> None:
    manifest, out = onnx_export
    assert missing_keys(manifest) == []
    assert read_manifest(out) == json.loads(json.dumps(manifest))  # what was returned is what was written
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["hwtune_version"] == hwtune.__version__ and manifest["torch_version"] == torch.__version__
    assert manifest["onnxruntime_version"]
    assert manifest["study"]["name"] == "digits-export" and manifest["study"]["storage"] == study.storage_url
    assert manifest["study"]["objectives"] == ["minimize error", "minimize latency_ms"] and manifest["study"]["constraints"] == []
    assert manifest["study"]["runtime"] == "onnxruntime"
    assert manifest["input_shape"] == [1, 8, 8] and manifest["batch_sizes"] == [16]
    assert manifest["device"]["type"] == "cpu" and manifest["device"]["threads"] == 1
    front = {r.number for r in study.best_feasible()}
    assert {m["trial"] for m in manifest["models"]} == front
    for m in manifest["models"]:
        assert m["pareto"] is True and m["format"] == "onnx" and m["file"] == f"trial_{m['trial']}.onnx"
        assert (out / m["file"]).is_file() and m["exported"]["bytes"] == (out / m["file"]).stat().st_size
        stored = study.optuna_study.trials[m["trial"]]
        assert m["params"] == stored.user_attrs["hwtune:params"]
        assert m["metrics"]["error"] == {"value": stored.user_attrs[METRICS_ATTR]["error"], "source": "measured:training"}
        assert m["metrics"]["test_error"]["value"] == stored.user_attrs[METRICS_ATTR]["test_error"]
        for k, d in stored.user_attrs["hwtune:hardware"].items():  # every hardware measurement of the study
            assert {kk: m["metrics"][k][kk] for kk in ("value", "unit", "source")} == {kk: d.get(kk, "") if kk == "unit" else d.get(kk) for kk in ("value", "unit", "source")}
            assert "ci_low" in m["metrics"][k] and "ci_high" in m["metrics"][k]
        assert m["metrics"]["latency_ms"]["source"].endswith("[onnxruntime]")


def test_verification_is_real_and_reproduces_the_validation_error(study: Study, onnx_export: tuple[dict[str, Any], Path]) -> None:
    manifest, _ = onnx_export
    for m in manifest["models"]:
        v = m["verification"]
        assert v["inputs"] == "validation" and v["n_inputs"] == 359  # the digits' whole validation split
        assert 0 <= v["max_abs_diff"] < 1e-4 and v["argmax_agreement"] == 1.0 and v["passed"] is True
        # the exported model gets the trained network's validation error, to the sample
        assert v["error_exported"] == v["error_pytorch"] == pytest.approx(m["metrics"]["error"]["value"], abs=1e-12)


def test_the_exported_latency_is_remeasured_beside_the_study_s(study: Study, onnx_export: tuple[dict[str, Any], Path]) -> None:
    manifest, _ = onnx_export
    trained = sum(r.status == "trained" for r in study.records())  # keep_models: all
    for m in manifest["models"]:
        lat, study_lat = m["exported"]["latency_ms"], m["metrics"]["latency_ms"]
        assert lat["unit"] == "ms" and lat["batch_size"] == 16 and lat["value"] > 0
        assert lat["source"].startswith("measured:timer") and lat["source"].endswith("[onnxruntime]")
        assert lat["ci_low"] <= lat["value"] <= lat["ci_high"]
        assert lat["value"] != study_lat["value"]  # measured again, not copied
        assert lat["study_value"] == study_lat["value"] and lat["study_ci"] == [study_lat["ci_low"], study_lat["ci_high"]]
        inside = study_lat["ci_low"] <= lat["value"] <= study_lat["ci_high"]
        assert lat["within_study_interval"] is inside
        # every kept network, and a few others, were measured again when the run ended: the retest interval rests on those pairs
        retest = lat["study_retest"]
        assert retest["pair_kind"] == "closing_retest" and retest["pairs"] >= trained
        assert retest["ci_low"] < retest["value"] < retest["ci_high"]
        assert retest["ci_high"] / retest["ci_low"] > study_lat["ci_high"] / study_lat["ci_low"]  # wider than the median's
        assert lat["within_study_retest_interval"] is (retest["ci_low"] <= lat["value"] <= retest["ci_high"])
        assert "final_hardware" in m and m["final_hardware"]["latency_ms"]["value"] > 0
        assert (lat["comparison"] is None) == (inside and lat["within_study_retest_interval"])  # outside: said in words
        if not inside:
            assert "outside the study's interval" in lat["comparison"]


def test_the_bundle_reader_reads_the_pareto_export(onnx_export: tuple[dict[str, Any], Path]) -> None:
    manifest, out = onnx_export
    bundle = read_bundle(out)
    assert sorted(bm.trial for bm in bundle.models) == sorted(m["trial"] for m in manifest["models"])
    for bm in bundle.models:
        assert bm.latency is not None and bm.latency.origin == "exported" and bm.study_latency is not None


def test_torchscript_export_matches_exactly_and_a_stored_study_by_name(study: Study, tmp_path: Path) -> None:
    best = min(study.best_feasible(), key=lambda r: (r.values, r.number)).number
    manifest = hwtune.export("digits-export", storage=study.storage_url, trials=best, format="torchscript", out=tmp_path, n_inputs=64, **FAST)
    assert missing_keys(manifest) == []
    (m,) = manifest["models"]
    assert m["trial"] == best and m["file"] == f"trial_{best}.pt" and m["format"] == "torchscript"
    assert m["verification"]["max_abs_diff"] == 0.0 and m["verification"]["n_inputs"] == 64
    assert m["exported"]["latency_ms"]["source"].endswith("[torchscript]")
    assert "torchscript" in m["exported"]["latency_ms"]["comparison"]  # the study measured in ONNX Runtime: said
    ts = torch.jit.load(str(tmp_path / m["file"]))
    assert ts(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_bad_requests_name_the_field(study: Study, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        hwtune.export(study, trials=99, out=tmp_path, remeasure=False)
    assert e.value.field == "trial"
    with pytest.raises(ConfigError) as e:
        hwtune.export(study, format="tflite", out=tmp_path)
    assert e.value.field == "format" and "onnx" in (e.value.fix or "")
    with pytest.raises(ConfigError) as e:
        hwtune.export(study, trials="everything", out=tmp_path)
    assert e.value.field == "trials"
    assert not (tmp_path / "manifest.json").exists()


def test_without_remeasure_there_is_no_exported_latency(study: Study, tmp_path: Path) -> None:
    m = hwtune.export(stored_study("digits-export", study.storage_url), out=tmp_path, remeasure=False, n_inputs=8)
    assert "latency_ms" not in m["models"][0]["exported"] and missing_keys(m) == []


# -- the pieces, on networks built here ----------------------------------------------------------------
def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()


def test_verification_catches_an_export_of_another_network(tmp_path: Path) -> None:
    path = export_onnx(_mlp(0), torch.zeros(1, 1, 4, 4), tmp_path / "a.onnx")
    x = np.random.default_rng(0).normal(size=(50, 1, 4, 4)).astype(np.float32)
    good = verify_export(_mlp(0), path, "onnx", x)
    bad = verify_export(_mlp(1), path, "onnx", x, labels=np.zeros(50, dtype=np.int64))
    assert good["passed"] and good["max_abs_diff"] < 1e-5 and good["argmax_agreement"] == 1.0 and good["n_inputs"] == 50
    assert not bad["passed"] and bad["max_abs_diff"] > 1e-3 and bad["argmax_agreement"] < 1.0
    assert bad["error_pytorch"] != bad["error_exported"] or bad["argmax_agreement"] < 1.0


def test_compare_latency_says_when_it_is_outside_and_when_runtimes_differ() -> None:
    study = Measurement("latency_ms", 1.0, "ms", "measured:timer", 0.9, 1.1, 50)
    inside = compare_latency(Measurement("latency_ms", 1.05, "ms", "measured:timer[onnxruntime]", 1.0, 1.1, 40, extra={"batch_size": 8}), study, "onnxruntime", "onnxruntime")
    assert inside["within_study_interval"] is True and inside["comparison"] is None and inside["batch_size"] == 8
    assert inside["intervals_overlap"] is True
    outside = compare_latency(Measurement("latency_ms", 1.5, "ms", "measured:timer[onnxruntime]", 1.4, 1.6, 40), study, "torch", "onnxruntime")
    assert outside["within_study_interval"] is False and outside["ratio_to_study"] == 1.5 and outside["intervals_overlap"] is False
    assert "outside the study's interval [0.9, 1.1]" in outside["comparison"] and "eager PyTorch" in outside["comparison"]
    none = compare_latency(Measurement("latency_ms", 1.5, "ms", "measured:timer", 1.4, 1.6), None, "torch", "torch")
    assert none["within_study_interval"] is None and "no latency measurement" in none["comparison"]
