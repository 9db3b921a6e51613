"""Pieces of the agent and its client without a server: settings, specs, tokens, the queue, the checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hwtune.agent import AgentSettings, load_token, token_file_is_private, write_token
from hwtune.agent._queue import MeasureQueue
from hwtune.agent._schemas import _METRICS, parse_int_list
from hwtune.agent._validate import BadModel, check_onnx_bytes
from hwtune.exceptions import ConfigError
from hwtune.hardware import PROFILE_METRICS, RemoteDevice, parse_device
from tests.agent._models import external_data_onnx_bytes, tiny_onnx_bytes


def test_the_schema_lists_the_profile_metrics() -> None:
    assert tuple(_METRICS) == tuple(PROFILE_METRICS)


def test_default_limits() -> None:
    s = AgentSettings(name="x")
    assert s.host == "127.0.0.1" and s.port == 8765
    assert s.limits() == {
        "max_model_bytes": 64 * 1024 * 1024, "max_body_bytes": 64 * 1024 * 1024, "upload_timeout_s": 60.0, "measure_timeout_s": 120.0,
        "max_time_s": 10.0, "max_queue": 8, "max_batch": 1024, "max_batch_sizes": 8, "max_input_elements": 16 * 1024 * 1024,
        "allow_torchscript": False, "worker_start_timeout_s": 180.0,
    }
    with pytest.raises(ConfigError, match="max_queue"):
        AgentSettings(max_queue=-1)
    with pytest.raises(ConfigError, match="measure_timeout_s"):
        AgentSettings(measure_timeout_s=0)


def test_remote_spec_is_parsed_and_named_without_its_options() -> None:
    d = parse_device("remote://10.0.0.7:9000?token_file=/x/t&tls=1&max_failures=3&threads=1")
    assert d.resolved_threads() == 1
    assert isinstance(d, RemoteDevice)
    assert (d.host, d.port, d.token_file, d.tls, d.max_failures) == ("10.0.0.7", 9000, "/x/t", True, 3)
    assert d.to_spec() == "remote://10.0.0.7:9000" and d.url == "https://10.0.0.7:9000"
    assert d.kind == "remote" and d.torch_device == "cpu"  # trains here
    assert parse_device("REMOTE://h:1?token_file=/A/B").token_file == "/A/B"  # paths keep their case


def test_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_token(tmp_path / "t")
    assert token_file_is_private(p)
    assert load_token(p) == p.read_text().strip()
    monkeypatch.setenv("SOME_TOKEN", "s" * 20)
    assert load_token(None, "SOME_TOKEN") == "s" * 20
    p.chmod(0o644)
    assert not token_file_is_private(p)


def test_int_lists() -> None:
    assert parse_int_list("1, 32", "b") == [1, 32]
    for bad in ("", "1,,2", "0", "-1", "1.5", "٣", "9" * 12):
        with pytest.raises(ValueError):
            parse_int_list(bad, "b")


def test_the_queue_admits_one_plus_max_queue_and_serves_in_turn() -> None:
    async def main() -> list[int]:
        q = MeasureQueue(max_queue=2)
        assert [q.admit() for _ in range(4)] == [True, True, True, False]
        order: list[int] = []

        async def one(i: int) -> None:
            async with q.turn():
                order.append(i)
                await asyncio.sleep(0.01)
                order.append(i)
            q.leave()

        await asyncio.gather(*(one(i) for i in range(3)))
        assert q.admit()
        return order

    order = asyncio.run(main())
    assert order == [0, 0, 1, 1, 2, 2]  # never interleaved, in arrival order


def test_onnx_checks(tmp_path: Path) -> None:
    info = check_onnx_bytes(tiny_onnx_bytes(tmp_path), [1, 8, 8])
    assert info["dtype"] == "float32" and info["nodes"] >= 1
    with pytest.raises(BadModel, match="external data"):
        check_onnx_bytes(external_data_onnx_bytes(), [1, 8, 8])
    with pytest.raises(BadModel, match="rank"):
        check_onnx_bytes(tiny_onnx_bytes(tmp_path), [64])
