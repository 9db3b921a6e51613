"""A device measured by a remote agent (``remote://host:port``): the study's side of ``hwtune agent``.

Layering: the agent's *server* is the ``agent`` layer (above ``study``: it runs on the target device);
its *client* is here, in ``hardware``, because a study names devices and measures through
``hardware`` only (``study`` may not import ``agent``). The client speaks plain HTTP(S) with the
standard library (``http.client``): a study needs no extra package to measure remotely.

- :class:`RemoteDevice`: ``remote://host:port[?token_file=PATH|token_env=NAME][&tls=1][&ca_file=PATH]
  [&timeout_s=600][&max_failures=5][&threads=N]``. Training stays on this machine's CPU (``torch_device``
  is ``cpu``, ``threads`` torch threads, default all); only measuring goes to the agent. Its spec (``to_spec``) is ``remote://host:port``: the
  device's name in the study's definition and its cost models.
- ``RemoteMeter`` (``_remote_meter.py``): the study's default meter for a remote device: exports the untrained network
  (ONNX, or TorchScript with ``runtime: torchscript``), sends it, and returns the agent's
  ``HardwareReport`` with every measured value labelled ``measured:remote:<agent name>`` (the agent's
  own source in ``extra["agent_source"]``); ``params`` and ``flops`` are counted here on the PyTorch
  network, as for a local device. On a CPU agent latencies are at the agent's own machine speed
  (its reference network, measured once when it starts: ``measured:timer/reference`` in
  ``extra["agent_source"]``), this machine's stored speed does not apply. It counts consecutive failures: after ``max_failures`` in a row
  the study stops (``after_trial`` raises a ``ConfigError`` naming ``device``).
- The token comes from a file or an environment variable named in the spec, never from the spec
  itself (a token in a study file or a command line would end up in shells' histories and storages).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hwtune.exceptions import ConfigError

__all__ = ["DEFAULT_TOKEN_ENV", "RemoteAgentError", "RemoteDevice", "parse_remote", "read_token"]

DEFAULT_TOKEN_ENV = "HWTUNE_AGENT_TOKEN"
MIN_TOKEN_CHARS = 16
_QUERY_KEYS = ("token_file", "token_env", "tls", "ca_file", "timeout_s", "max_failures", "threads")


class RemoteAgentError(RuntimeError):
    """The agent refused a request or could not be reached; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, error: str = "") -> None:
        super().__init__(message)
        self.status, self.error = status, error


def read_token(token_file: str | os.PathLike[str] | None = None, token_env: str | None = None, *, field: str = "token") -> str:
    """The shared secret: the first line of ``token_file``, else the variable ``token_env``
    (default ``HWTUNE_AGENT_TOKEN``); at least 16 characters."""
    if token_file:
        p = Path(token_file).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{field}_file", f"cannot read the token file {str(p)!r}: {e.strerror or e}.", "write one with: hwtune agent token FILE") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        where = f"token file {str(p)!r}"
    else:
        name = token_env or DEFAULT_TOKEN_ENV
        token = (os.environ.get(name) or "").strip()
        where = f"environment variable {name}"
        if not token:
            raise ConfigError(
                field, f"no token: neither a token file nor the environment variable {name} is set.",
                f"write a token with 'hwtune agent token FILE' and name the file (or set {name}); never put the token itself on a command line.",
            )
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(field, f"the token in the {where} has {len(token)} characters; at least {MIN_TOKEN_CHARS} are needed.", "write a new one with: hwtune agent token FILE")
    return token


@dataclass(frozen=True)
class RemoteDevice:
    """A device measured by ``hwtune agent serve`` at ``host:port`` (see the module docstring)."""

    host: str
    port: int
    token_file: str | None = None
    token_env: str | None = None
    tls: bool = False
    ca_file: str | None = None
    timeout_s: float = 600.0
    max_failures: int = 5
    threads: int | None = None
    """torch threads of the training here (``None``: every CPU this process may use)."""

    @property
    def kind(self) -> str:
        return "remote"

    @property
    def torch_device(self) -> str:
        """Where the study trains: this machine's CPU (only measuring is remote)."""
        return "cpu"

    def resolved_threads(self) -> int:
        """Training threads here: ``threads``, else this machine's CPUs. Not ``_device.available_cpu_count``:
        ``_device`` imports this module to parse ``remote://`` specs."""
        if self.threads:
            return self.threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            return os.cpu_count() or 1

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """For training here: torch on every local CPU for the duration of the block."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.resolved_threads())
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def sync(self) -> None:
        """Nothing to wait for here."""

    def to_spec(self) -> str:
        return f"remote://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def token(self) -> str:
        return read_token(self.token_file, self.token_env, field="device.token")

    # -- HTTP ------------------------------------------------------------------------------------
    def _connection(self, timeout: float) -> Any:
        import http.client

        if self.tls:
            import ssl

            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: bytes | None = None, timeout: float | None = None) -> dict[str, Any]:
        """One request to the agent; its JSON answer.

        Raises:
            RemoteAgentError: no answer (with the network's reason) or a refusal (status, code, reason, fix).
        """
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        conn = self._connection(timeout or self.timeout_s)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(64 * 1024 * 1024)
            status = resp.status
        except OSError as e:  # refused, reset, timed out, TLS failure
            raise RemoteAgentError(f"no answer from the agent at {self.to_spec()}: {type(e).__name__}: {e}") from None
        except Exception as e:  # noqa: BLE001 - http.client's protocol errors
            raise RemoteAgentError(f"the agent at {self.to_spec()} answered something that is not HTTP: {type(e).__name__}: {e}") from None
        finally:
            conn.close()
        try:
            data = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            data = {"detail": raw[:200].decode("utf-8", "replace")}
        if status != 200:
            detail = str(data.get("detail", "")) if isinstance(data, dict) else str(data)
            fix = data.get("fix") if isinstance(data, dict) else None
            code = str(data.get("error", "")) if isinstance(data, dict) else ""
            raise RemoteAgentError(f"the agent at {self.to_spec()} answered {status} {code}: {detail}" + (f" (fix: {fix})" if fix else ""), status, code)
        return data if isinstance(data, dict) else {}

    def info(self) -> dict[str, Any]:
        """``GET /info``: the agent's name, device description, capabilities, limits and queue."""
        return self.request("GET", "/info", timeout=min(self.timeout_s, 300.0))

    def describe(self) -> dict[str, Any]:
        """The agent's description of its device (from ``/info``), with where it is."""
        info = self.info()
        return {**dict(info.get("device") or {}), "remote": self.to_spec(), "agent": info.get("name")}


def _flag(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(v)


def parse_remote(spec: str, field: str = "device") -> RemoteDevice:
    """``remote://host:port[?token_file=...&token_env=...&tls=1&ca_file=...&timeout_s=...&max_failures=...]``."""
    fix = "write e.g. remote://127.0.0.1:8765?token_file=agent.token"
    parts = urllib.parse.urlsplit(spec.strip())
    if parts.scheme.lower() != "remote":
        raise ConfigError(field, f"{spec!r} is not a remote://host:port device.", fix)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(field, f"the port of {spec!r} is not a number from 1 to 65535.", fix) from None
    if not host or not port:
        raise ConfigError(field, f"{spec!r} needs a host and a port.", fix)
    if parts.username or parts.password:
        raise ConfigError(field, "a remote device spec must not hold credentials.", "put the token in a file and name it: ?token_file=PATH (or ?token_env=NAME).")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(field, f"{spec!r} has a path; the agent is named by host and port only.", fix)
    q = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = [k for k in q if k not in _QUERY_KEYS]
    if unknown:
        bad = "token" if "token" in unknown else unknown[0]
        raise ConfigError(f"{field}.{bad}", f"unknown option {bad!r} in {parts.scheme}://{host}:{port}?...",
                          "name the token's file or variable (token_file=PATH or token_env=NAME), never the token itself; options: " + ", ".join(_QUERY_KEYS))
    one = {k: v[-1] for k, v in q.items()}
    try:
        tls = _flag(one.get("tls", "")) or "ca_file" in one
        timeout = float(one.get("timeout_s", 600.0))
        max_failures = int(one.get("max_failures", 5))
        threads = int(one["threads"]) if one.get("threads") else None
    except ValueError:
        raise ConfigError(field, f"an option of {spec!r} has a bad value (tls: true/false, timeout_s: seconds, max_failures: an integer).", fix) from None
    if not (timeout > 0) or max_failures < 1 or (threads is not None and threads < 1):
        raise ConfigError(field, "timeout_s must be positive, max_failures and threads at least 1.", fix)
    return RemoteDevice(host, int(port), one.get("token_file") or None, one.get("token_env") or None, tls, one.get("ca_file") or None, timeout, max_failures, threads)


