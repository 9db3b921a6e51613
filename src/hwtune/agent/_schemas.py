"""The agent's request and answer schemas (pydantic: FastAPI validates them and writes the OpenAPI).

A measurement request is the model's bytes as the body (``application/octet-stream``) and the
measurement's settings as query parameters (:class:`MeasureQuery`): no multipart parsing, no file
names from the client, and the body can be counted as it arrives.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ErrorAnswer", "InfoAnswer", "MeasureAnswer", "MeasureQuery", "parse_int_list"]

_METRICS = ("latency_ms", "throughput_sps", "power_w", "energy_mj", "peak_mem_mb", "params", "flops", "size_mb")
# hardware.PROFILE_METRICS, repeated so that the schema module imports nothing heavy (a test checks they agree)


def parse_int_list(text: str, what: str, *, low: int = 1, high: int | None = None, most: int = 8) -> list[int]:
    """``"1,32"`` -> ``[1, 32]``; each value in [low, high], at most ``most`` of them."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"{what}: write comma-separated integers such as 1,32")
    if len(parts) > most:
        raise ValueError(f"{what}: at most {most} values, got {len(parts)}")
    out = []
    for p in parts:
        if not p.isascii() or not p.isdigit() or len(p) > 9:
            raise ValueError(f"{what}: {p[:20]!r} is not a positive integer")
        v = int(p)
        if v < low or (high is not None and v > high):
            raise ValueError(f"{what}: {v} is outside [{low}, {high if high is not None else 'inf'}]")
        out.append(v)
    return out


class MeasureQuery(BaseModel):
    """Settings of one measurement (query parameters of ``POST /measure``)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["onnx", "torchscript"] = Field("onnx", description="The body's format: an ONNX file (weights inside), or TorchScript when the agent allows it. Never pickle.")
    input_shape: str = Field(..., max_length=64, description="One sample's shape without the batch dimension, comma-separated, e.g. 1,8,8.")
    batch_sizes: str = Field("1", max_length=64, description="Batch sizes to measure, comma-separated; the first is the report's primary one.")
    metrics: str = Field("latency_ms,throughput_sps,size_mb", max_length=200, description=f"Comma-separated subset of {', '.join(_METRICS)}.")
    rel_ci: float = Field(0.05, gt=0, lt=1, allow_inf_nan=False, description="Time until the median's 95 % CI is within +- this share (the precision target).")
    max_time_s: float = Field(3.0, gt=0, allow_inf_nan=False, description="Latency time cap per window, seconds (at most the agent's max_time_s).")
    reference: bool = Field(True, description="On a CPU, report latency at the agent's machine speed: the ratio to hwtune's reference network x its time (measured:timer/reference), as a local CPU study does.")
    reference_ms: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False, description="Pin that speed (a study sends the one the agent answered first); default the agent's own.")

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, v: str) -> str:
        parse_int_list(v, "input_shape", high=1 << 20, most=6)
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _batches(cls, v: str) -> str:
        parse_int_list(v, "batch_sizes", high=1 << 20, most=64)
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: str) -> str:
        names = [m.strip() for m in v.split(",")]
        bad = [m for m in names if m not in _METRICS]
        if bad or not names:
            raise ValueError(f"unknown metric(s) {[b[:30] for b in bad][:5]}; use a comma-separated subset of {', '.join(_METRICS)}")
        if len(set(names)) != len(names):
            raise ValueError("a metric is named twice")
        return v

    def shape(self) -> list[int]:
        return parse_int_list(self.input_shape, "input_shape", high=1 << 20, most=6)

    def batches(self) -> list[int]:
        return parse_int_list(self.batch_sizes, "batch_sizes", high=1 << 20, most=64)

    def metric_list(self) -> list[str]:
        return [m.strip() for m in self.metrics.split(",")]


class ErrorAnswer(BaseModel):
    """Every refusal: a short code, what is wrong, and what to do."""

    error: str
    detail: str
    fix: str | None = None


class InfoAnswer(BaseModel):
    """``GET /info``: the agent, its device, what it measures and its limits."""

    name: str
    hwtune_version: str
    device: dict[str, Any]
    capabilities: dict[str, Any]
    formats: list[str]
    limits: dict[str, Any]
    queue: dict[str, int]
    tls: bool


class Timing(BaseModel):
    upload_s: float
    validate_s: float
    queue_wait_s: float = Field(description="Seconds this request waited for its turn (one measurement at a time).")
    measure_s: float
    total_s: float
    started_at: float = Field(description="Unix time the measurement started.")
    ended_at: float


class MeasureAnswer(BaseModel):
    """``POST /measure``: the ``HardwareReport`` (as ``HardwareReport.to_dict()``) and how it was obtained."""

    agent: str
    reference_ms: float | None = Field(None, description="The reference speed the latencies are reported at (None: wall clock).")
    report: dict[str, Any]
    model: dict[str, Any]
    timing: Timing
