"""The agent's settings: every limit with its default, and the token (from a file or an environment
variable, never from the command line).

Every limit is here, in one place, so that ``hwtune agent serve --help``, ``/info`` and the docs list
the same numbers (docs: README "Measure on another device").
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["AgentSettings", "DEFAULT_PORT", "DEFAULT_TOKEN_ENV", "MIN_TOKEN_CHARS", "load_token"]

DEFAULT_PORT = 8765
from hwtune.hardware._remote import DEFAULT_TOKEN_ENV, MIN_TOKEN_CHARS  # noqa: E402  (one definition, client and server)


@dataclass(frozen=True)
class AgentSettings:
    """What one agent serves and the limits it keeps (defaults in the field list).

    Attributes:
        device: the device measured on (``cpu``, ``cpu:<threads>``, ``cuda:<index>``).
        host: address bound; 127.0.0.1 unless told otherwise.
        port: TCP port.
        name: the agent's name in sources (``measured:remote:<name>``); default the host name.
        max_model_bytes: largest model accepted (413 beyond it).
        max_body_bytes: largest request body of any request (413 beyond it, checked on
            ``Content-Length`` before reading and counted while reading).
        upload_timeout_s: the body must arrive within this time (408 beyond it).
        measure_timeout_s: wall-clock limit of one measurement (validation in the runtime, warm-up,
            timing); the measuring process is killed beyond it (504), and a fresh one started.
        max_time_s: most a request may ask for as its latency time cap per window (``max_time_s``).
        max_queue: requests that may wait while one is measured; one more gets 503 with Retry-After.
        max_batch: largest batch size a request may ask for.
        max_batch_sizes: most batch sizes in one request.
        max_input_elements: most input elements of one batch (batch x one sample's elements).
        allow_torchscript: accept TorchScript files (off by default: a TorchScript file is a program
            whose operators may read files, e.g. ``aten::from_file``; ONNX is a graph of known operators).
        worker_start_timeout_s: time the measuring process may take to start (import torch, ONNX Runtime).
    """

    device: str = "cpu"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    name: str = ""
    max_model_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    upload_timeout_s: float = 60.0
    measure_timeout_s: float = 120.0
    max_time_s: float = 10.0
    max_queue: int = 8
    max_batch: int = 1024
    max_batch_sizes: int = 8
    max_input_elements: int = 16 * 1024 * 1024
    allow_torchscript: bool = False
    worker_start_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        positive = ("max_model_bytes", "max_body_bytes", "upload_timeout_s", "measure_timeout_s", "max_time_s",
                    "max_batch", "max_batch_sizes", "max_input_elements", "worker_start_timeout_s")
        for f in positive:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f, f"must be a positive number, got {v!r}.")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise ConfigError("max_queue", f"must be a non-negative integer, got {self.max_queue!r}.")
        if not (0 <= int(self.port) <= 65535):
            raise ConfigError("port", f"must be in 0..65535, got {self.port!r}.")
        if not self.name:
            import platform

            object.__setattr__(self, "name", platform.node() or "agent")

    def limits(self) -> dict[str, Any]:
        """The limits as plain data (``/info`` answers them)."""
        d = asdict(self)
        for k in ("device", "host", "port", "name"):
            d.pop(k)
        return d


def load_token(token_file: str | os.PathLike[str] | None = None, token_env: str | None = DEFAULT_TOKEN_ENV, *, field: str = "token") -> str:
    """The shared secret: the first line of ``token_file``, else the variable ``token_env``; the same
    reader as the client's (``hwtune.hardware._remote.read_token``).

    Raises:
        ConfigError: no token, an unreadable file, or a token shorter than :data:`MIN_TOKEN_CHARS`.
    """
    from hwtune.hardware._remote import read_token

    return read_token(token_file, token_env, field=field)


def token_file_is_private(path: str | os.PathLike[str]) -> bool:
    """False when the group or others may read the token file (a warning, as ssh gives for keys)."""
    try:
        mode = Path(path).expanduser().stat().st_mode
    except OSError:
        return True
    return not (mode & (stat.S_IRGRP | stat.S_IROTH))


def write_token(path: str | os.PathLike[str]) -> Path:
    """Write a new random token (32 bytes, URL-safe text) to ``path``, readable by its owner only."""
    import secrets

    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(p, 0o600)
    return p
