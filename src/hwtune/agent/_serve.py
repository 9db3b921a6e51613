"""Running the agent: ``serve`` (blocking, what ``hwtune agent serve`` calls) and
:class:`BackgroundAgent` (the same server in a thread of this process, for tests and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from hwtune.agent._limits import AgentSettings
from hwtune.exceptions import ConfigError

__all__ = ["BackgroundAgent", "serve", "uvicorn_config"]


def _check_tls(cert: str | None, key: str | None) -> None:
    if (cert is None) != (key is None):
        raise ConfigError("--cert/--key", "TLS needs both a certificate and its key.", "pass --cert CERT.pem --key KEY.pem, or neither.")
    for name, p in (("--cert", cert), ("--key", key)):
        if p is not None:
            from pathlib import Path

            if not Path(p).is_file():
                raise ConfigError(name, f"{p!r} is not a file.", "give the PEM file's path.")


def uvicorn_config(app: Any, settings: AgentSettings, *, cert: str | None = None, key: str | None = None, log_level: str = "warning") -> Any:
    """uvicorn's configuration for the agent: TLS when given a certificate and key, a cap on open
    connections (queue + 16: more get 503 from uvicorn itself), no server header."""
    import uvicorn

    _check_tls(cert, key)
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, ssl_certfile=cert, ssl_keyfile=key, log_level=log_level,
        limit_concurrency=settings.max_queue + 16, timeout_keep_alive=5, server_header=False, access_log=False,
        proxy_headers=False, lifespan="on",
    )


def serve(settings: AgentSettings, token: str, *, cert: str | None = None, key: str | None = None, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C)."""
    import uvicorn

    from hwtune.agent._app import create_app

    app = create_app(settings, token, tls=cert is not None)
    uvicorn.Server(uvicorn_config(app, settings, cert=cert, key=key, log_level=log_level)).run()


class BackgroundAgent:
    """The real agent (uvicorn, the real app, its measuring process) on a free loopback port, served
    from a thread of this process; a context manager. ``url`` once started."""

    def __init__(self, settings: AgentSettings, token: str, *, cert: str | None = None, key: str | None = None, start_timeout_s: float = 240.0) -> None:
        from hwtune.agent._app import create_app

        self.settings, self.token, self.cert = settings, token, cert
        self.app = create_app(settings, token, tls=cert is not None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((settings.host, settings.port if settings.port else 0))
        self.port = int(self.sock.getsockname()[1])
        import uvicorn

        self.server = uvicorn.Server(uvicorn_config(self.app, settings, cert=cert, key=key))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="hwtune-agent")
        self.start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://{self.settings.host}:{self.port}"

    @property
    def spec(self) -> str:
        """The device spec a study names it with."""
        return f"remote://{self.settings.host}:{self.port}"

    def __enter__(self) -> BackgroundAgent:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the agent did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
