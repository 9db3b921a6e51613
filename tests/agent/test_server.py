"""The agent's security properties against a real server on loopback: token, sizes, malformed models,
time limit, one measurement at a time, the queue's cap."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent._models import (
    INPUT_SHAPE,
    external_data_onnx_bytes,
    slow_onnx_bytes,
    tiny_onnx_bytes,
    unknown_op_onnx_bytes,
)

SHAPE = ",".join(map(str, INPUT_SHAPE))
Q = {"input_shape": SHAPE, "max_time_s": 0.1, "metrics": "latency_ms,throughput_sps,size_mb,params"}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _measured(agent: Any, token: str) -> int:
    return httpx.get(agent.url + "/info", headers=_h(token)).json()["queue"]["measured"]


def test_info_describes_the_agents_device_and_limits(agent: Any, token: str) -> None:
    r = httpx.get(agent.url + "/info", headers=_h(token))
    assert r.status_code == 200
    info = r.json()
    assert info["name"] == "loopback"
    assert info["device"]["type"] == "cpu" and info["device"]["threads"] == 1
    assert info["formats"] == ["onnx"]  # TorchScript is off unless allowed
    assert info["limits"]["max_model_bytes"] == 256_000
    assert "latency_ms" in info["capabilities"]["metrics"]
    assert info["capabilities"]["energy"].startswith(("measured:rapl", "estimated:tdp"))


def test_measures_an_onnx_model_and_reports_its_wait(agent: Any, token: str, tmp_path: Path) -> None:
    r = httpx.post(agent.url + "/measure", params=Q, content=tiny_onnx_bytes(tmp_path), headers=_h(token), timeout=120)
    assert r.status_code == 200, r.text
    a = r.json()
    lat = a["report"]["measurements"]["latency_ms"]
    assert lat["value"] > 0 and lat["source"].startswith("measured:timer")
    assert lat["ci_low"] <= lat["value"] <= lat["ci_high"]
    assert a["report"]["measurements"]["params"]["value"] == 64 * 16 + 16 + 16 * 10 + 10
    assert a["timing"]["queue_wait_s"] >= 0 and a["timing"]["measure_s"] > 0
    assert a["model"]["format"] == "onnx" and len(a["model"]["sha256"]) == 64
    assert a["reference_ms"] > 0 and lat["source"] == "measured:timer/reference"  # at the agent's own machine speed
    assert lat["extra"]["wall_ms"] > 0
    r = httpx.post(agent.url + "/measure", params={**Q, "reference": "false"}, content=tiny_onnx_bytes(tmp_path), headers=_h(token), timeout=120)
    assert r.json()["reference_ms"] is None and r.json()["report"]["measurements"]["latency_ms"]["source"] == "measured:timer"
    r = httpx.post(agent.url + "/measure", params={**Q, "reference_ms": "0.5"}, content=tiny_onnx_bytes(tmp_path), headers=_h(token), timeout=120)
    assert r.json()["reference_ms"] == 0.5


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}])
def test_missing_or_wrong_token_is_401_and_nothing_is_measured(agent: Any, token: str, tmp_path: Path, headers: dict[str, str]) -> None:
    before = _measured(agent, token)
    r = httpx.post(agent.url + "/measure", params=Q, content=tiny_onnx_bytes(tmp_path), headers=headers, timeout=60)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized"
    assert httpx.get(agent.url + "/info", headers=headers).status_code == 401
    assert _measured(agent, token) == before


def test_a_wrong_token_is_401_before_the_query_is_even_read(agent: Any) -> None:
    r = httpx.post(agent.url + "/measure", params={"input_shape": "nonsense"}, content=b"x")
    assert r.status_code == 401


def test_oversized_model_is_413_by_its_length(agent: Any, token: str) -> None:
    r = httpx.post(agent.url + "/measure", params=Q, content=b"\0" * 280_000, headers=_h(token))
    assert r.status_code == 413 and r.json()["error"] == "model_too_large"
    r = httpx.post(agent.url + "/measure", params=Q, content=b"\0" * 400_000, headers=_h(token))
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"  # the body limit, before any endpoint


def test_oversized_model_without_a_length_is_413_while_it_arrives(agent: Any, token: str) -> None:
    sent = []

    def chunks():  # chunked transfer: no Content-Length to trust
        for _ in range(40):
            sent.append(1)
            yield b"\0" * 10_000

    r = httpx.post(agent.url + "/measure", params=Q, content=chunks(), headers=_h(token))
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "no model"),
        (b"this is not an onnx file", "not an ONNX model"),
        (unknown_op_onnx_bytes(), "checker"),
        (external_data_onnx_bytes(), "external data"),
    ],
)
def test_malformed_onnx_is_400_with_the_reason(agent: Any, token: str, body: bytes, reason: str) -> None:
    before = _measured(agent, token)
    r = httpx.post(agent.url + "/measure", params=Q, content=body, headers=_h(token))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_model" and reason in r.json()["detail"]
    assert _measured(agent, token) == before


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"input_shape": "1,8"}, "rank"),  # the model's input is rank 4
        ({"input_shape": "1,9,9"}, "dimension"),
        ({"input_shape": "a,b"}, "not a positive integer"),
        ({"input_shape": SHAPE, "metrics": "latency_ms,bogus"}, "unknown metric"),
        ({"input_shape": SHAPE, "max_time_s": 99}, "over this agent's limit"),
        ({"input_shape": SHAPE, "batch_sizes": "4096"}, "over this agent's limit"),
        ({"input_shape": SHAPE, "format": "pickle"}, "format"),
        ({"input_shape": SHAPE, "format": "torchscript"}, "TorchScript"),
        ({"input_shape": SHAPE, "path": "/etc/passwd"}, "path"),  # no unknown parameter is accepted
        ({}, "input_shape"),
    ],
)
def test_bad_requests_are_400_naming_the_problem(agent: Any, token: str, tmp_path: Path, params: dict[str, Any], words: str) -> None:
    r = httpx.post(agent.url + "/measure", params=params, content=tiny_onnx_bytes(tmp_path), headers=_h(token))
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"]


def test_concurrent_requests_are_queued_not_run_together(agent: Any, token: str, tmp_path: Path) -> None:
    bodies = [tiny_onnx_bytes(tmp_path, w) for w in (8, 16, 24)]
    answers: list[httpx.Response] = []

    def send(b: bytes) -> None:
        answers.append(httpx.post(agent.url + "/measure", params=Q, content=b, headers=_h(token), timeout=120))

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200, 200, 200]
    spans = sorted((r.json()["timing"]["started_at"], r.json()["timing"]["ended_at"]) for r in answers)
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        assert e0 <= s1, "two measurements overlapped"
    assert max(r.json()["timing"]["queue_wait_s"] for r in answers) > 0  # someone waited, and was told


def test_a_slow_measurement_times_out_and_the_agent_recovers(strict_agent: Any, token: str, tmp_path: Path) -> None:
    q = {"input_shape": "512,512", "max_time_s": 1.0, "metrics": "latency_ms"}
    r = httpx.post(strict_agent.url + "/measure", params=q, content=slow_onnx_bytes(), headers=_h(token), timeout=120)
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "measure_timeout" and "3 s" in r.json()["detail"]
    # the measuring process was killed; the next request gets a fresh one
    r = httpx.post(strict_agent.url + "/measure", params=Q, content=tiny_onnx_bytes(tmp_path), headers=_h(token), timeout=120)
    assert r.status_code == 200, r.text


def test_a_full_queue_answers_503_with_retry_after(strict_agent: Any, token: str, tmp_path: Path) -> None:
    q = {"input_shape": "512,512", "max_time_s": 1.0, "metrics": "latency_ms"}
    slow: list[httpx.Response] = []
    t = threading.Thread(target=lambda: slow.append(httpx.post(strict_agent.url + "/measure", params=q, content=slow_onnx_bytes(), headers=_h(token), timeout=120)))
    t.start()
    deadline = time.monotonic() + 60
    while httpx.get(strict_agent.url + "/info", headers=_h(token)).json()["queue"]["measuring"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = httpx.post(strict_agent.url + "/measure", params=Q, content=tiny_onnx_bytes(tmp_path), headers=_h(token), timeout=60)
    t.join()
    assert r.status_code == 503 and r.json()["error"] == "queue_full"
    assert r.headers["retry-after"] == "5"
    assert slow[0].status_code == 504


def test_torchscript_only_where_allowed_and_only_a_torchscript_archive(strict_agent: Any, token: str, tmp_path: Path) -> None:
    import pickle

    import torch

    from hwtune.hardware import export_torchscript
    from tests.agent._models import tiny_net

    info = httpx.get(strict_agent.url + "/info", headers=_h(token)).json()
    assert info["formats"] == ["onnx", "torchscript"]
    ts = export_torchscript(tiny_net(), torch.zeros(1, *INPUT_SHAPE), tmp_path / "m.pt").read_bytes()
    q = {**Q, "format": "torchscript"}
    r = httpx.post(strict_agent.url + "/measure", params=q, content=ts, headers=_h(token), timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["report"]["measurements"]["latency_ms"]["value"] > 0
    evil = pickle.dumps({"not": "a model"})  # a pickle is never loaded
    r = httpx.post(strict_agent.url + "/measure", params=q, content=evil, headers=_h(token))
    assert r.status_code == 400 and "not a TorchScript file" in r.json()["detail"]
    r = httpx.post(strict_agent.url + "/measure", params=q, content=b"PK\x03\x04" + b"\0" * 100, headers=_h(token), timeout=60)
    assert r.status_code == 422 and "TorchScript" in r.json()["detail"]  # a zip that is not TorchScript: the loader's reason
