"""``hwtune agent serve / info / token``: the measurement agent on a target device, and its client.

The token never appears on a command line (shells keep histories, ``ps`` shows arguments): ``serve``
and ``info`` read it from ``--token-file`` or an environment variable (``--token-env``, default
``HWTUNE_AGENT_TOKEN``); ``hwtune agent token FILE`` writes a new one.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from hwtune.exceptions import ConfigError

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="Measure on the device where the network will run: serve measurements there, ask it what it is.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _fail(e: ConfigError, code: int = 2) -> None:
    body = f"{e.field}: {e.problem}" + (f" Fix: {e.fix}" if e.fix else "")
    Console(stderr=True).print(Text.assemble(("error", "bold red"), " ", body), highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def _say(console: Console, text: str, style: str = "") -> None:
    console.print(Text(text, style=style), highlight=False, soft_wrap=True)


@agent_app.command("serve")
def serve_command(
    token_file: Annotated[Optional[str], typer.Option("--token-file", help="File whose first line is the token (hwtune agent token FILE writes one).")] = None,
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding the token, when no --token-file.")] = "HWTUNE_AGENT_TOKEN",
    device: Annotated[str, typer.Option("--device", "-d", help="Device measured on: cpu, cpu:<threads>, cuda:<index>.")] = "cpu",
    host: Annotated[str, typer.Option("--host", help="Address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface, use TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port.")] = 8765,
    name: Annotated[Optional[str], typer.Option("--name", help="The agent's name in sources (measured:remote:<name>); default the host name.")] = None,
    cert: Annotated[Optional[str], typer.Option("--cert", help="TLS certificate (PEM); with --key, the agent speaks HTTPS.")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="TLS private key (PEM).")] = None,
    max_model_mb: Annotated[float, typer.Option("--max-model-mb", min=0.001, help="Largest model accepted, MB (10^6 bytes).")] = 67.108864,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Largest request body, MB.")] = 67.108864,
    upload_timeout: Annotated[float, typer.Option("--upload-timeout", min=0.1, help="Seconds a body may take to arrive.")] = 60.0,
    measure_timeout: Annotated[float, typer.Option("--measure-timeout", min=0.1, help="Wall-clock limit of one measurement, seconds (the measuring process is killed past it).")] = 120.0,
    max_time: Annotated[float, typer.Option("--max-time", min=0.01, help="Most a request may ask as its latency time cap per window, seconds.")] = 10.0,
    max_queue: Annotated[int, typer.Option("--max-queue", min=0, help="Requests that may wait while one is measured (503 beyond).")] = 8,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Largest batch size a request may ask for.")] = 1024,
    allow_torchscript: Annotated[bool, typer.Option("--allow-torchscript", help="Also accept TorchScript files (programs: only for clients you trust).")] = False,
) -> None:
    """Serve measurements on this device to hwtune studies elsewhere (stop with Ctrl-C)."""
    from hwtune.agent import AgentSettings, load_token, token_file_is_private

    console = Console(stderr=True)
    try:
        token = load_token(token_file, token_env, field="--token")
        settings = AgentSettings(
            device=device, host=host, port=port, name=name or "", max_model_bytes=int(max_model_mb * 1e6), max_body_bytes=int(max_body_mb * 1e6),
            upload_timeout_s=upload_timeout, measure_timeout_s=measure_timeout, max_time_s=max_time, max_queue=max_queue, max_batch=max_batch,
            allow_torchscript=allow_torchscript,
        )
        from hwtune.hardware import parse_device

        if parse_device(device).kind == "remote":
            raise ConfigError("--device", "an agent measures on its own device.", "use cpu, cpu:<threads> or cuda:<index>.")
        try:
            from hwtune.agent import serve
        except ImportError as e:
            raise ConfigError("agent", f"the agent needs FastAPI and uvicorn ({e}).", "install hwtune's agent extra: pip install -e '.[agent]' in a clone of hwtune.") from None
    except ConfigError as e:
        _fail(e)
        return
    if token_file and not token_file_is_private(token_file):
        _say(console, f"warning: the token file {token_file} can be read by other users; chmod 600 it.", "yellow")
    if host not in _LOOPBACK and cert is None:
        _say(console, f"warning: serving on {host} without TLS: the token and models cross the network in clear; pass --cert and --key.", "yellow")
    scheme = "https" if cert else "http"
    _say(console, f"hwtune agent '{settings.name}' measuring on {device}: {scheme}://{host}:{port} (a study names it device: remote://{host}:{port})")
    try:
        serve(settings, token, cert=cert, key=key)
    except ConfigError as e:
        _fail(e)


@agent_app.command("info")
def info_command(
    target: Annotated[str, typer.Argument(help="The agent: remote://host:port (options as in a study file, e.g. ?token_file=PATH) or host:port.")],
    token_file: Annotated[Optional[str], typer.Option("--token-file", help="File whose first line is the token.")] = None,
    token_env: Annotated[Optional[str], typer.Option("--token-env", help="Environment variable holding the token (default HWTUNE_AGENT_TOKEN).")] = None,
    ca_file: Annotated[Optional[str], typer.Option("--ca-file", help="CA certificate to check the agent's TLS certificate with (implies TLS).")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="The agent speaks HTTPS.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Ask an agent what device it measures on, what it can measure and its limits."""
    from dataclasses import replace

    from hwtune.hardware import RemoteAgentError, parse_remote

    console = Console()
    try:
        dev = parse_remote(target if target.startswith("remote://") else f"remote://{target}", field="target")
        dev = replace(dev, token_file=token_file or dev.token_file, token_env=token_env or dev.token_env, ca_file=ca_file or dev.ca_file,
                      tls=tls or dev.tls or bool(ca_file))
        info = dev.info()
    except ConfigError as e:
        _fail(e)
        return
    except RemoteAgentError as e:
        Console(stderr=True).print(Text.assemble(("error", "bold red"), " ", str(e)), highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    if as_json:
        print(json.dumps(info, indent=2))
        return
    from hwtune.hardware._measurement import describe_device_line

    _say(console, f"agent '{info.get('name')}' at {dev.to_spec()} (hwtune {info.get('hwtune_version')}, {'TLS' if info.get('tls') else 'no TLS'})")
    _say(console, f"device: {describe_device_line(info.get('device') or {})}")
    caps = info.get("capabilities") or {}
    _say(console, f"measures: {', '.join(caps.get('metrics') or [])}; formats: {', '.join(info.get('formats') or [])}")
    _say(console, f"power/energy: {caps.get('energy', '?')}; onnxruntime {caps.get('onnxruntime')}")
    q = info.get("queue") or {}
    _say(console, f"queue: {q.get('measuring', 0)} measuring, {q.get('waiting', 0)} waiting (at most {q.get('max_queue')}); {q.get('measured', 0)} measured so far")
    _say(console, "limits: " + ", ".join(f"{k}={v}" for k, v in (info.get("limits") or {}).items()))


@agent_app.command("token")
def token_command(
    path: Annotated[str, typer.Argument(help="File to write (created readable by you only; replaced if it exists).")],
) -> None:
    """Write a new random token to PATH (give the same file to the agent and to the study)."""
    from hwtune.agent import write_token

    p = write_token(path)
    _say(Console(), f"wrote a new token to {p} (mode 600); serve with --token-file {p}, and name it in the study: device: remote://HOST:PORT?token_file={p}")
