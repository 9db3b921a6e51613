"""Studies measured through a real agent on loopback: ``device: remote://127.0.0.1:PORT``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import optuna
import pytest

from hwtune.exceptions import ConfigError
from hwtune.study import parse_study_file, study_from_file
from hwtune.vocabulary import CONFIG_ATTR, DEVICE_ATTR, FAILURE_ATTR, HARDWARE_ATTR
from tests._tiny_digits import tiny_digits_spec


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_a_study_measures_through_the_agent_and_trains_here(agent: Any, token_file: Path, tmp_path: Path) -> None:
    spec = tiny_digits_spec(tmp_path / "r.db", "remote", device=f"{agent.spec}?token_file={token_file}", constraints=["latency_ms <= 1000"])
    study, build, train = study_from_file(parse_study_file(spec))
    assert study.device.to_spec() == agent.spec
    summary = study.optimize(build, train, n_trials=2)
    assert summary.counts.get("trained") == 2
    st = study.optuna_study
    assert st.user_attrs[CONFIG_ATTR]["device"] == agent.spec  # the remote device names the study's cost models
    for t in st.trials:
        hw = t.user_attrs[HARDWARE_ATTR]
        assert hw["latency_ms"]["source"] == "measured:remote:loopback"
        assert hw["latency_ms"]["extra"]["agent_source"] == "measured:timer/reference"  # at the agent's machine speed
        assert hw["latency_ms"]["extra"]["agent_reference_ms"] == st.trials[0].user_attrs[HARDWARE_ATTR]["latency_ms"]["extra"]["agent_reference_ms"]
        assert hw["latency_ms"]["extra"]["runtime"] == "onnxruntime"
        assert hw["latency_ms"]["extra"]["queue_wait_s"] >= 0
        assert hw["params"]["source"] == "counted"  # counted here, on the PyTorch network
        dev = t.user_attrs[DEVICE_ATTR]
        assert dev["remote"] == agent.spec and dev["agent"] == "loopback" and dev["threads"] == 1  # the agent's own description
        assert t.state == optuna.trial.TrialState.COMPLETE


def test_a_dead_agent_fails_trials_at_measure_then_stops_the_study(token_file: Path, tmp_path: Path) -> None:
    port = _closed_port()
    spec = tiny_digits_spec(tmp_path / "d.db", "dead", device=f"remote://127.0.0.1:{port}?token_file={token_file}&max_failures=2", trials=5)
    study, build, train = study_from_file(parse_study_file(spec))
    with pytest.raises(ConfigError, match="failed 2 measurements in a row") as e:
        study.optimize(build, train, n_trials=5)
    assert e.value.field == "device"
    trials = study.optuna_study.trials
    assert len(trials) == 2
    for t in trials:
        assert t.state == optuna.trial.TrialState.FAIL
        assert t.user_attrs[FAILURE_ATTR].startswith("measure: RemoteAgentError: no answer from the agent")


def test_a_wrong_token_fails_the_trial_with_401(agent: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.token"
    bad.write_text("not-the-token-not-the-token\n")
    spec = tiny_digits_spec(tmp_path / "w.db", "wrong", device=f"{agent.spec}?token_file={bad}&max_failures=1", trials=3)
    study, build, train = study_from_file(parse_study_file(spec))
    with pytest.raises(ConfigError, match="in a row"):
        study.optimize(build, train, n_trials=3)
    assert "401" in study.optuna_study.trials[0].user_attrs[FAILURE_ATTR]


def test_token_from_an_environment_variable(agent: Any, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwtune.hardware import parse_device

    monkeypatch.setenv("MY_AGENT_TOKEN", token)
    dev = parse_device(f"{agent.spec}?token_env=MY_AGENT_TOKEN")
    assert dev.describe()["agent"] == "loopback"


@pytest.mark.parametrize(
    ("device", "field", "words"),
    [
        ("remote://127.0.0.1:9?token=abc", "device.token", "never the token itself"),
        ("remote://user:secret@127.0.0.1:9", "device", "credentials"),
        ("remote://127.0.0.1", "device", "host and a port"),
        ("remote://127.0.0.1:9?token_env=HWTUNE_NO_SUCH_VARIABLE", "device.token", "HWTUNE_NO_SUCH_VARIABLE"),
        ("remote://127.0.0.1:9?token_file=/no/such/file", "device.token_file", "cannot read"),
    ],
)
def test_bad_remote_specs_are_refused_before_anything_is_written(tmp_path: Path, device: str, field: str, words: str) -> None:
    db = tmp_path / "x.db"
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file(tiny_digits_spec(db, "bad", device=device)))
    assert e.value.field == field and words in str(e.value)
    assert not db.exists()


def test_eager_runtime_cannot_be_measured_remotely(agent: Any, token_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        study_from_file(parse_study_file(tiny_digits_spec(tmp_path / "t.db", "eager", device=f"{agent.spec}?token_file={token_file}", runtime="torch")))
    assert e.value.field == "runtime"


def test_an_int8_trial_is_measured_remotely_as_its_int8_model_and_its_export_re_measured_there(agent: Any, token_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    import hwtune

    spec = tiny_digits_spec(tmp_path / "q.db", "remote-int8", device=f"{agent.spec}?token_file={token_file}", keep_models="all")
    spec["space"].update({"quantize": {"type": "categorical", "choices": ["none", "int8"]}, "prune_ratio": 0.5, "filters_0": 16})
    study, build, train = study_from_file(parse_study_file(spec))
    opt = study.open()
    opt.enqueue_trial({"quantize": "int8"})
    study.optimize(build, train, n_trials=1)
    (t,) = study.optuna_study.trials
    lat = t.user_attrs[HARDWARE_ATTR]["latency_ms"]
    assert lat["source"] == "measured:remote:loopback" and lat["extra"]["runtime"] == "onnxruntime-int8"
    assert t.user_attrs["hwtune:final_hardware"]["latency_ms"]["extra"]["runtime"] == "onnxruntime-int8"
    manifest = hwtune.export(study, trials=0, format="onnx", out=tmp_path / "m", latency_max_time_s=0.2)
    (m,) = manifest["models"]
    assert m["verification"]["passed"] and m["exported"]["latency_ms"]["source"] == "measured:remote:loopback"
