"""Real agents (uvicorn + the app + its measuring process) on free loopback ports, shared per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from hwtune.agent import AgentSettings, BackgroundAgent, write_token  # noqa: E402

TOKEN_NAME = "agent.token"


@pytest.fixture(scope="session")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_token(tmp_path_factory.mktemp("token") / TOKEN_NAME)


@pytest.fixture(scope="session")
def token(token_file: Path) -> str:
    return token_file.read_text().strip()


@pytest.fixture(scope="session")
def agent(token: str) -> Iterator[BackgroundAgent]:
    """Default limits but small models: 256 kB; one thread."""
    settings = AgentSettings(device="cpu:1", port=0, name="loopback", max_model_bytes=256_000, max_body_bytes=300_000, max_queue=4)
    with BackgroundAgent(settings, token) as a:
        yield a


@pytest.fixture(scope="session")
def strict_agent(token: str) -> Iterator[BackgroundAgent]:
    """A 3 s measurement limit and no queue: for the timeout and queue-full tests; TorchScript allowed."""
    settings = AgentSettings(device="cpu:1", port=0, name="strict", measure_timeout_s=3.0, max_queue=0, max_model_bytes=4_000_000, max_body_bytes=4_100_000, allow_torchscript=True)
    with BackgroundAgent(settings, token) as a:
        yield a
