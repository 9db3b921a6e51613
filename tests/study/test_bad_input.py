"""Issue 11, section 3: every bad input is refused with exit 2 (or a ConfigError), a message naming
the field and the fix, and nothing written (the folder is hashed before and after)."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hwtune.exceptions import ConfigError, TrialFailure
from hwtune.study import Study
from hwtune.study._validate import check_metrics
from tests.study import _doubles as d
from tests.study._specs import DELETE, changed

GOOD: dict[str, Any] = {
    "name": "bad-input",
    "data": {"name": "digits"},
    "model": {"family": "cnn"},
    "space": {
        "conv_layers": 1,
        "filters_0": {"type": "int", "low": 4, "high": 8},
        "dense_units": 16,
        "lr": 0.05,
        "epochs": 1,
    },
    "objective": {"minimize": "error"},
    "constraints": ["latency_ms <= 5"],
    "device": "cpu:1",
    "inference_batch_size": 8,
    "budget": {"trials": 1},
}


def _tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
        for p in sorted(root.rglob("*"))
    }


def _spec(**changes: Any) -> dict[str, Any]:
    return changed(GOOD, changes, sep="__")


_DELETE = DELETE


def _yaml(spec: dict[str, Any]) -> bytes:
    return yaml.safe_dump(spec).encode()


def _idx(dims: tuple[int, ...], body: bytes | None = None) -> bytes:
    data = struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    return data + (body if body is not None else bytes(math.prod(dims)))


def _mnist(root: Path, n_images: int = 100, n_labels: int = 100, corrupt: str | None = None) -> Path:
    folder = root / "mnist"
    folder.mkdir()
    files = {
        "train-images-idx3-ubyte": _idx((n_images, 28, 28)),
        "train-labels-idx1-ubyte": _idx((n_labels,), bytes(i % 10 for i in range(n_labels))),
        "t10k-images-idx3-ubyte": _idx((20, 28, 28)),
        "t10k-labels-idx1-ubyte": _idx((20,), bytes(i % 10 for i in range(20))),
    }
    if corrupt == "header":
        files["train-images-idx3-ubyte"] = b"\x12\x34\x56\x78garbage"
    if corrupt == "short":
        files["train-images-idx3-ubyte"] = _idx((100, 28, 28))[:-500]
    for name, data in files.items():
        if corrupt == "gz" and name.startswith("train-images"):
            packed = gzip.compress(data)
            (folder / (name + ".gz")).write_bytes(packed[: len(packed) // 2])
        else:
            (folder / name).write_bytes(data)
    return folder


# -- setups: (tmp_path) -> (study file contents or a path, extra CLI args) -------------------------
Setup = Callable[[Path], tuple[Any, list[str]]]


def _with_data(tmp: Path, data: dict[str, Any], **changes: Any) -> tuple[Any, list[str]]:
    return _yaml(_spec(data=data, **changes)), []


def _npz_object(tmp: Path) -> tuple[Any, list[str]]:
    p = tmp / "arrays.npz"
    np.savez(p, x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    return _with_data(tmp, {"name": "arrays", "path": str(p)})


def _npz_not_zip(tmp: Path) -> tuple[Any, list[str]]:
    p = tmp / "arrays.npz"
    p.write_text("x,y\n1,2\n")
    return _with_data(tmp, {"name": "arrays", "path": str(p)})


def _cost_dir(tmp: Path) -> tuple[Any, list[str]]:
    (tmp / "costs").mkdir()
    return _yaml(_spec(cost_model_file=str(tmp / "costs"))), []


def _cost_bad_json(tmp: Path) -> tuple[Any, list[str]]:
    (tmp / "costs.json").write_text("{not json")
    return _yaml(_spec(cost_model_file=str(tmp / "costs.json"))), []


BOMB = b"""a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
space: *i
"""

# id -> (setup, words the message must hold (the field first), words it must not hold)
CASES: dict[str, tuple[Setup, list[str], list[str]]] = {
    # tracebacks before
    "binary file": (lambda t: (b"\x00\x01\x02\xffELF\x00" * 20, []), ["study.yaml", "binary", "Fix"], []),
    "latin-1 file": (lambda t: ("name: caf\xe9\nspace: {lr: 0.1}\n".encode("latin-1"), []), ["study.yaml", "UTF-8", "Fix"], []),
    "5000 nested brackets": (lambda t: (b"space: " + b"[" * 5000 + b"]" * 5000, []), ["study.yaml", "nested", "Fix"], []),
    "alias bomb": (lambda t: (BOMB, []), ["study.yaml", "aliases", "Fix"], []),
    "corrupt idx header": (lambda t: _with_data(t, {"name": "mnist", "path": str(_mnist(t, corrupt="header"))}), ["data.path", "idx", "Fix"], []),
    "idx shorter than its header": (lambda t: _with_data(t, {"name": "mnist", "path": str(_mnist(t, corrupt="short"))}), ["data.path", "header says", "Fix"], []),
    "truncated gz": (lambda t: _with_data(t, {"name": "mnist", "path": str(_mnist(t, corrupt="gz"))}), ["data.path", "truncated", "Fix"], ["Aborted"]),
    "object-array npz": (_npz_object, ["data.path", "pickled", "allow_pickle=False", "Fix"], []),
    "non-zip npz": (_npz_not_zip, ["data.path", ".npz", "Fix"], []),
    "cost_model_file a directory": (_cost_dir, ["cost_model_file", "directory", "Fix"], []),
    "cost_model_file bad JSON": (_cost_bad_json, ["cost_model_file", "JSON", "Fix"], []),
    # accepted without a word before
    "100 images, 50 labels": (lambda t: _with_data(t, {"name": "mnist", "path": str(_mnist(t, 100, 50))}), ["data.path", "100 train images but 50", "Fix"], []),
    "contradictory constraints": (lambda t: (_yaml(_spec(constraints=["latency_ms <= 0.1", "latency_ms >= 5"])), []), ["constraints", "contradict", "Fix"], []),
    "negative limit": (lambda t: (_yaml(_spec(constraints=["latency_ms <= -1"])), []), ["constraints", "never", "Fix"], []),
    "minimize accuracy": (lambda t: (_yaml(_spec(objective={"minimize": "accuracy"})), []), ["objective", "maximize: accuracy", "minimize: error"], []),
    "path for digits": (lambda t: _with_data(t, {"name": "digits", "path": str(t)}), ["data.path", "no path", "Fix"], []),
    "duplicate keys": (lambda t: (_yaml(GOOD) + b"seed: 1\nseed: 2\n", []), ["study.yaml", "seed", "twice", "Fix"], []),
    "batch 1e15": (lambda t: (_yaml(_spec(inference_batch_size=1e15)), []), ["inference_batch_size", "65536", "Fix"], []),
    "memory storage, 2 workers": (lambda t: (_yaml(GOOD), ["--workers", "2", "--storage", "sqlite:///:memory:"]), ["storage", "workers", "Fix"], []),
    # wrong field or cause before
    "unknown key and missing space": (lambda t: (_yaml({**_spec(space=_DELETE), "optimiser": "sgd"}), []), ["optimiser", "unknown key", "space", "missing"], []),
    "typ:": (lambda t: (_yaml(_spec(space__filters_0={"typ": "int", "low": 4, "high": 8})), []), ["space.filters_0.typ", "did you mean 'type'"], ["None"]),
    "seed -5": (lambda t: (_yaml(_spec(seed=-5)), []), ["seed", "Fix"], ["data.options"]),
    "directory as study file": (lambda t: (t / "adir", []), ["study file", "is a directory", "Fix"], ["does not exist"]),
    "epochs -1": (lambda t: (_yaml(_spec(space__epochs=-1)), []), ["space.epochs", "epochs", "Fix"], ["negative rate"]),
    "nested unknown key": (lambda t: (_yaml(_spec(data={"nmae": "digits"})), []), ["data.nmae", "did you mean 'name'", "name, options, path"], ["see docs"]),
    "--minutes nan": (lambda t: (_yaml(GOOD), ["--minutes", "nan"]), ["budget.minutes", "Fix"], []),
    "budget.minutes .nan in the file": (lambda t: (_yaml(GOOD).replace(b"trials: 1", b"trials: 1\n  minutes: .nan"), []), ["budget.minutes", "finite", "Fix"], []),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_refuses_with_field_and_fix_and_writes_nothing(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwtune.cli._app import app

    setup, must, must_not = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    (work / "adir").mkdir()
    monkeypatch.chdir(work)
    content, args = setup(work)
    if isinstance(content, Path):
        study = content
    else:
        study = work / "study.yaml"
        study.write_bytes(content)
    db = work / "out.db"
    before = _tree_hash(work)
    storage = [] if "--storage" in args else ["--storage", f"sqlite:///{db}"]
    result = CliRunner().invoke(app, ["run", str(study), *storage, "-q", *args])
    text = " ".join(result.output.split())
    squeezed = "".join(text.split())  # Rich wraps long paths mid-word
    assert result.exit_code == 2, (result.exit_code, text[-2000:], result.exception)
    assert len(text) < 4000, "an error message must not echo a whole (expanded) input"
    for word in must:
        assert "".join(word.split()) in squeezed, (word, text)
    for word in must_not:
        assert word not in text, (word, text)
    assert not db.exists() and not (work / "hwtune.db").exists()
    assert _tree_hash(work) == before, "nothing may be written on bad input"


def test_every_problem_reported_unknown_keys_first(tmp_path: Path) -> None:
    from hwtune.study import load_study_file

    p = tmp_path / "s.yaml"
    p.write_bytes(_yaml({**_spec(space=_DELETE, seed=-5), "optimiser": "sgd"}))
    with pytest.raises(ConfigError) as e:
        load_study_file(p)
    msg = str(e.value)
    assert msg.index("optimiser") < msg.index("space") and "seed" in msg and "3 problems" in msg


# -- the API -------------------------------------------------------------------------------------
API_CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "device=3": ({"device": 3}, "device", "cuda:3"),
    "input_shape='abc'": ({"input_shape": "abc"}, "input_shape", "input_shape=(1, 28, 28)"),
    "latency_max_time_s=-1": ({"latency_max_time_s": -1}, "latency_max_time_s", "Fix"),
    "inference_batch_size=10**15": ({"inference_batch_size": 10**15}, "inference_batch_size", "65,536"),
    "seed=-5": ({"seed": -5}, "seed", "Fix"),
    "contradictory constraints": ({"constraints": ["latency_ms <= 0.1", "latency_ms >= 5"]}, "constraints", "contradict"),
    "minimize accuracy": ({"objectives": "minimize: accuracy"}, "objective", "maximize: accuracy"),
    "cost_model_file a directory": ({"cost_model_file": "."}, "cost_model_file", "directory"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_refuses_bad_arguments(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs, field, words = API_CASES[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        Study("api", d.SPACE, storage=f"sqlite:///{tmp_path / 'x.db'}", **{"input_shape": (1, 8, 8), **kwargs})
    assert e.value.field.startswith(field) and words in str(e.value), str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_workers, storage", [(-3, "file"), (0, "file"), (2, "sqlite:///:memory:"), (2, None)])
def test_api_refuses_bad_workers_before_writing(n_workers: int, storage: str | None, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}" if storage == "file" else storage
    study = Study("api", d.SPACE, storage=url, constraints=["latency_ms <= 5"])
    with pytest.raises(ConfigError, match="n_workers|storage"):
        study.optimize(d.build, d.train, measure=d.measure, n_trials=2, n_workers=n_workers)
    assert list(tmp_path.iterdir()) == []


def _np_train(model: Any, params: Any, ctx: Any) -> dict[str, Any]:
    err = d.train(model, params, ctx)["error"]
    return {"error": np.float32(err), "test_error": np.array(err)}


def _torch_train(model: Any, params: Any, ctx: Any) -> dict[str, Any]:
    import torch

    err = d.train(model, params, ctx)["error"]
    ctx.report(1, torch.tensor(err))
    return {"error": torch.tensor(err), "accuracy": torch.tensor(1 - err, dtype=torch.float64)}


@pytest.mark.parametrize("train", [_np_train, _torch_train], ids=["numpy", "torch"])
def test_api_accepts_numpy_and_tensor_scalars(train: Callable[..., Any]) -> None:
    study = Study("scalars", d.SPACE, constraints=["latency_ms <= 100"], cost_model=None)
    summary = study.optimize(d.build, train, measure=d.measure, n_trials=3)
    assert summary.counts == {"trained": 3}
    assert all(isinstance(r.metrics["error"], float) for r in summary.records)


@pytest.mark.parametrize("bad", [-5, 7, 1.5, float("nan"), "0.1", None, [0.1], np.array([0.1, 0.2])])
def test_metrics_outside_their_range_or_not_numbers_fail_the_trial(bad: Any) -> None:
    with pytest.raises(TrialFailure, match="error"):
        check_metrics({"error": bad})


def test_metrics_out_of_range_are_failed_trials_not_results() -> None:
    study = Study("range", d.SPACE, constraints=["latency_ms <= 100"], cost_model=None)
    summary = study.optimize(d.build, lambda m, p, c: {"error": 7.0}, measure=d.measure, n_trials=2)
    assert summary.counts == {"failed": 2}
    assert "[0, 1]" in summary.records[0].failure
