"""The agent's HTTP API (FastAPI): ``GET /info`` and ``POST /measure``, both behind the token.

Order of checks of a measurement, cheapest first, so that a refused request costs the device nothing:
token (401) -> query (400) -> settings' limits (400) -> a place in the queue (503) -> the body,
counted while it arrives (413 past the limit, 408 past the upload time) -> the model checked
(400 with the reason) -> its turn (one at a time) -> measured in the child process (504 past the time
limit, 422 when the runtime cannot run the model). The model is written to a temporary folder the
agent creates, under a name it chooses (``model.onnx`` / ``model.pt``), and deleted after.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time

import hashlib
import hmac
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from hwtune.agent._limits import AgentSettings
from hwtune.agent._queue import MeasureQueue
from hwtune.agent._schemas import ErrorAnswer, InfoAnswer, MeasureAnswer, MeasureQuery
from hwtune.agent._validate import BadModel, check_onnx_bytes
from hwtune.agent._worker import MeasureTimeout, MeasureWorker, ModelFailed, WorkerDied

__all__ = ["AgentError", "create_app"]

_ECHO = 300  # most characters of a client's value an error repeats


class AgentError(Exception):
    """A refusal with its HTTP status, a short code, the reason and the fix."""

    def __init__(self, status: int, error: str, detail: str, fix: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.fix, self.headers = status, error, detail, fix, headers


def _json(status: int, error: str, detail: str, fix: str | None = None, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(ErrorAnswer(error=error, detail=detail[:2000], fix=fix).model_dump(exclude_none=True), status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes on its ``Content-Length`` before reading it,
    and count a body without one while it arrives (413 either way)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            text = length.decode("latin-1").strip()
            if not text.isdigit():
                await _json(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                return
            if int(text) > self.limit:
                await _json(413, "body_too_large", f"the body has {int(text):,} bytes; this agent accepts at most {self.limit:,}",
                            "send a smaller model, or start the agent with a larger --max-body-mb")(scope, receive, send)
                return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise AgentError(413, "body_too_large", f"the body is over {self.limit:,} bytes, the most this agent accepts", "send a smaller model")
            return message

        await self.app(scope, counted, send)


def _check_limits(q: MeasureQuery, s: AgentSettings) -> tuple[list[int], list[int], list[str]]:
    shape, batches, metrics = q.shape(), q.batches(), q.metric_list()
    if q.format == "torchscript" and not s.allow_torchscript:
        raise AgentError(400, "format_refused", "this agent does not accept TorchScript (a TorchScript file is a program: its operators may read files)",
                         "send an ONNX file (hwtune.hardware.export_onnx), or start the agent with --allow-torchscript for clients you trust")
    if q.max_time_s > s.max_time_s:
        raise AgentError(400, "over_limit", f"max_time_s {q.max_time_s:g} is over this agent's limit of {s.max_time_s:g} s", f"ask for at most {s.max_time_s:g}")
    if len(batches) > s.max_batch_sizes:
        raise AgentError(400, "over_limit", f"{len(batches)} batch sizes; this agent measures at most {s.max_batch_sizes} in one request", "split the request")
    if max(batches) > s.max_batch:
        raise AgentError(400, "over_limit", f"batch size {max(batches)} is over this agent's limit of {s.max_batch}", f"use batch sizes up to {s.max_batch}")
    sample = 1
    for d in shape:
        sample *= d
    if sample * max(batches) > s.max_input_elements:
        raise AgentError(400, "over_limit", f"an input of {sample * max(batches):,} elements (batch {max(batches)} x {shape}) is over this agent's limit of {s.max_input_elements:,}",
                         "use a smaller batch or input")
    return shape, batches, metrics


async def _read_body(request: Any, s: AgentSettings) -> tuple[bytes, float]:
    import anyio

    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > s.max_model_bytes:
        raise AgentError(413, "model_too_large", f"the model has {int(length):,} bytes; this agent accepts at most {s.max_model_bytes:,}", "send a smaller model, or start the agent with a larger --max-model-mb")
    t0 = time.perf_counter()
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(s.upload_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > s.max_model_bytes:
                    raise AgentError(413, "model_too_large", f"the model is over {s.max_model_bytes:,} bytes, the most this agent accepts", "send a smaller model")
                chunks.append(chunk)
    except TimeoutError:
        raise AgentError(408, "upload_timeout", f"the model did not arrive within {s.upload_timeout_s:g} s", "check the network, or send a smaller model") from None
    return b"".join(chunks), time.perf_counter() - t0


def _version() -> str:
    """hwtune's version from its installed metadata (``import hwtune`` is the CLI's to make)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwtune")
    except PackageNotFoundError:
        return "unknown"


def create_app(settings: AgentSettings, token: str, *, tls: bool = False, worker: MeasureWorker | None = None) -> Any:
    """The agent's ASGI app (FastAPI) for ``settings``, answering only requests that carry ``token``.

    ``worker``: the measuring process (default: one for ``settings.device``, started with the app).
    """
    import anyio
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    secret = token.encode("utf-8")
    worker = worker or MeasureWorker(settings.device, settings.worker_start_timeout_s)
    queue = MeasureQueue(settings.max_queue)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:  # noqa: D401
        await anyio.to_thread.run_sync(worker.ensure_started)  # import torch once, before the first request
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(worker.close)

    app = FastAPI(
        title="hwtune measurement agent", version=_version(), lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,  # nothing answers without the token
        description="Measures ONNX (and, when allowed, TorchScript) models on this device for hwtune studies.",
    )
    app.state.settings, app.state.queue, app.state.worker = settings, queue, worker
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    bearer = HTTPBearer(auto_error=False, description="The agent's token (hwtune agent token FILE).")

    def authorized(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        given = cred.credentials.encode("utf-8", "surrogateescape") if cred is not None else b""
        if not hmac.compare_digest(given, secret) or cred is None:
            raise AgentError(401, "unauthorized", "missing or wrong token", "send 'Authorization: Bearer <token>' with the agent's token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AgentError)
    async def _agent_error(request: Request, e: AgentError) -> Any:
        return _json(e.status, e.error, e.detail, e.fix, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, e: RequestValidationError) -> Any:
        problems = []
        for err in e.errors()[:10]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "query")
            problems.append(f"{loc}: {str(err.get('msg', ''))[:_ECHO]}")
        return _json(400, "bad_request", "; ".join(problems) or "malformed request", "see the query parameters of POST /measure in the agent's OpenAPI schema")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Any:
        return _json(e.status_code, "http_error", str(e.detail)[:_ECHO], headers=getattr(e, "headers", None))

    err = {c: {"model": ErrorAnswer} for c in (400, 401, 408, 413, 422, 503, 504)}

    @app.get("/info", response_model=InfoAnswer, responses={401: {"model": ErrorAnswer}}, dependencies=[Depends(authorized)])
    async def info() -> Any:
        """The agent, its device (the agent's own CPU/GPU description), what it measures, its limits and queue."""
        desc = await anyio.to_thread.run_sync(worker.describe)
        return InfoAnswer(
            name=settings.name, hwtune_version=_version(), device=desc["device"], capabilities=desc["capabilities"],
            formats=["onnx", "torchscript"] if settings.allow_torchscript else ["onnx"], limits=settings.limits(), queue=queue.state(), tls=tls,
        )

    body = {"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

    @app.post("/measure", response_model=MeasureAnswer, responses=err, openapi_extra=body, dependencies=[Depends(authorized)])
    async def measure(request: Request, q: Annotated[MeasureQuery, Query()]) -> Any:
        """Measure the model in the body on this device; answers a HardwareReport and how long it waited."""
        t_start = time.perf_counter()
        shape, batches, metrics = _check_limits(q, settings)
        if not queue.admit():
            raise AgentError(503, "queue_full", f"{queue.max_queue} requests are already waiting", "retry later", headers={"Retry-After": "5"})
        folder: str | None = None
        try:
            data, upload_s = await _read_body(request, settings)
            t0 = time.perf_counter()
            info: dict[str, Any] = {"format": q.format, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            try:
                if q.format == "onnx":
                    info.update(await anyio.to_thread.run_sync(check_onnx_bytes, data, shape))
                elif not data.startswith(b"PK\x03\x04"):
                    raise BadModel("not a TorchScript file (a TorchScript file is a zip archive written by torch.jit.save)")
            except BadModel as e:
                raise AgentError(400, "bad_model", str(e), "export the network with hwtune.hardware.export_onnx (one file, dynamic batch)") from None
            validate_s = time.perf_counter() - t0
            folder = tempfile.mkdtemp(prefix="hwtune-agent-")
            path = Path(folder) / ("model.onnx" if q.format == "onnx" else "model.pt")
            path.write_bytes(data)
            del data
            own = (worker.description or {}).get("capabilities", {}).get("reference") or {}
            reference_ms = (q.reference_ms or own.get("ms")) if q.reference and own else None  # CPU agents only
            job = {"path": str(path), "input_shape": shape, "batch_sizes": batches, "metrics": metrics, "rel_ci": q.rel_ci,
                   "max_time_s": q.max_time_s, "dtype": info.get("dtype", "float32"), "reference_ms": reference_ms}
            async with queue.turn() as waited:
                started_at, t1 = time.time(), time.perf_counter()
                try:
                    report = await anyio.to_thread.run_sync(worker.run, job, settings.measure_timeout_s)
                except MeasureTimeout as e:
                    raise AgentError(504, "measure_timeout", str(e), "ask for a smaller max_time_s or batch, or start the agent with a larger --measure-timeout") from None
                except WorkerDied as e:
                    raise AgentError(422, "runtime_died", str(e), "check that the model runs on this device (memory, operators)") from None
                except ModelFailed as e:
                    raise AgentError(422, "model_failed", f"the runtime could not measure the model: {e}", "check input_shape and the model's operators") from None
                measure_s, ended_at = time.perf_counter() - t1, time.time()
            json.dumps(report)  # plain data, or a bug here (500)
            return MeasureAnswer(
                agent=settings.name, reference_ms=reference_ms, report=report, model=info,
                timing={"upload_s": upload_s, "validate_s": validate_s, "queue_wait_s": waited, "measure_s": measure_s,
                        "total_s": time.perf_counter() - t_start, "started_at": started_at, "ended_at": ended_at},
            )
        finally:
            queue.leave()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    return app


def openapi_schema(app: Any) -> dict[str, Any]:
    """The agent's OpenAPI schema (not served: every route needs the token; the fuzzing tests read it here)."""
    from fastapi.openapi.utils import get_openapi

    return get_openapi(title=app.title, version=app.version, routes=app.routes)
