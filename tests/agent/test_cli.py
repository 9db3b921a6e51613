"""``hwtune agent serve / info / token`` as a person runs them: the server is a real process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwtune.cli._app import app

runner = CliRunner()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the agent did not start listening")


def _serve(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hwtune.cli", "agent", "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_token_writes_a_private_file(tmp_path: Path) -> None:
    r = runner.invoke(app, ["agent", "token", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o600
    assert len((tmp_path / "t").read_text().strip()) >= 40


def test_serve_without_a_token_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWTUNE_AGENT_TOKEN", raising=False)
    r = runner.invoke(app, ["agent", "serve"])
    assert r.exit_code == 2 and "no token" in r.output
    short = tmp_path / "short"
    short.write_text("abc\n")
    r = runner.invoke(app, ["agent", "serve", "--token-file", str(short)])
    assert r.exit_code == 2 and "at least 16" in r.output
    assert "--token " not in runner.invoke(app, ["agent", "serve", "--help"]).output  # no way to pass it on the command line


def _certificate(tmp_path: Path) -> tuple[Path, Path] | None:
    if shutil.which("openssl") is None:
        return None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_serve_then_info_from_another_process(tmp_path: Path, token_file: Path, stop: list[subprocess.Popen]) -> None:
    """One real ``hwtune agent serve`` process, with TLS where openssl can make a certificate."""
    tls = _certificate(tmp_path)
    port = _free_port()
    extra = ["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []
    proc = _serve(["--token-file", str(token_file), "--port", str(port), "--device", "cpu:1", "--name", "cli-agent", "--max-queue", "2", *extra])
    stop.append(proc)
    _wait_listening(port, proc)
    ca = ["--ca-file", str(tls[0])] if tls else []
    r = runner.invoke(app, ["agent", "info", f"127.0.0.1:{port}", "--token-file", str(token_file), *ca])
    assert r.exit_code == 0, r.output
    assert "agent 'cli-agent'" in r.output and "max_queue=2" in r.output and "1 threads" in r.output
    spec = f"remote://127.0.0.1:{port}?token_file={token_file}" + (f"&ca_file={tls[0]}" if tls else "")
    r = runner.invoke(app, ["agent", "info", spec, "--json"])
    assert r.exit_code == 0 and '"name": "cli-agent"' in r.output
    assert ('"tls": true' in r.output) == bool(tls)
    wrong = tmp_path / "wrong"
    wrong.write_text("w" * 40)
    r = runner.invoke(app, ["agent", "info", f"127.0.0.1:{port}", "--token-file", str(wrong), *ca])
    assert r.exit_code == 1 and "401" in r.output
    if tls:  # plain HTTP to a TLS port: no answer, exit 1
        r = runner.invoke(app, ["agent", "info", f"127.0.0.1:{port}", "--token-file", str(token_file)])
        assert r.exit_code == 1
