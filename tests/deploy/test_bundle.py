"""Reading a bundle: every bad manifest or model file is a ``ConfigError`` naming the file and the
fix, and no file name from the manifest reaches outside the bundle's folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwtune.deploy import read_bundle
from hwtune.exceptions import ConfigError
from tests.deploy._bundles import entry, write_manifest


def _models() -> list[dict]:
    return [entry(0, 0.02, 3.0), entry(1, 0.05, 1.5)]


def test_a_good_manifest_reads(tmp_path: Path) -> None:
    write_manifest(tmp_path, _models(), batch_sizes=[4, 1])
    b = read_bundle(tmp_path)
    assert b.input_shape == (1, 8, 8) and b.batch_sizes == (4, 1) and b.threads == 1
    assert [m.path for m in b.models] == [tmp_path / "trial_0.onnx", tmp_path / "trial_1.onnx"]
    assert b.models[0].latency.batch_size == 4  # type: ignore[union-attr]  (the study's: the first batch size)


@pytest.mark.parametrize("name", ["../trial_0.onnx", "/etc/passwd", "sub/../../x.onnx", "C:\\x.onnx", "..\\x.onnx"])
def test_names_that_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    models = _models()
    models[1]["file"] = name
    write_manifest(tmp_path, models)
    with pytest.raises(ConfigError, match="outside the bundle") as e:
        read_bundle(tmp_path)
    assert "models[1].file" in e.value.field and e.value.fix


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"")
    folder = tmp_path / "bundle"
    folder.mkdir()
    os.symlink(outside, folder / "trial_1.onnx")
    write_manifest(folder, _models())
    with pytest.raises(ConfigError, match="resolves outside"):
        read_bundle(folder)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda m: m.update(format_version=2), "format_version", "format 1"),
        (lambda m: m.update(models=[]), "models", "non-empty"),
        (lambda m: m.update(input_shape=[1, 0, 8]), "input_shape", "positive integers"),
        (lambda m: m["models"][0]["metrics"].pop("error"), "metrics.error", "ranks models by their error"),
        (lambda m: m["models"][0]["metrics"]["error"].update(value=7), "error.value", "[0, 1]"),
        (lambda m: m["models"][0]["metrics"]["latency_ms"].update(value=-1), "latency_ms.value", "positive"),
        (lambda m: m["models"][0]["metrics"]["latency_ms"].update(unit="s"), "latency_ms.unit", "'ms'"),
        (lambda m: m["models"][1].update(trial=0), "trial", "twice"),
        (lambda m: m["models"][1].update(format="torchscript"), "format", "--format onnx"),
        (lambda m: m["models"][1].update(file="gone.onnx"), "file", "does not exist"),
    ],
)
def test_bad_manifests_name_the_field_and_the_fix(tmp_path: Path, change, field: str, words: str) -> None:
    path = write_manifest(tmp_path, _models())
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))
    (tmp_path / "gone.onnx").unlink(missing_ok=True)
    with pytest.raises(ConfigError) as e:
        read_bundle(tmp_path)
    assert field in e.value.field and words in str(e.value) and e.value.fix and "manifest.json" in e.value.field


def test_missing_or_broken_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        read_bundle(tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist") as e:
        read_bundle(tmp_path)
    assert e.value.field.endswith("manifest.json")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_bundle(tmp_path)


def test_an_unavailable_measurement_stays_missing(tmp_path: Path) -> None:
    models = _models()
    models[0]["metrics"]["energy_mj"] = {"value": None, "unit": "mJ", "source": "unavailable", "note": "no sensor"}
    write_manifest(tmp_path, models)
    assert read_bundle(tmp_path).models[0].energy is None  # None, never 0
