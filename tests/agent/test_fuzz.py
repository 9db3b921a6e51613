"""Schema-driven fuzzing of the agent (hypothesis): every parameter the OpenAPI schema declares, with
values valid and not, unknown parameters, random bodies and tokens, against the real server.
Whatever is sent: no 5xx, no dropped connection, and the agent still answers afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agent._models import tiny_onnx_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _schema(agent: Any) -> dict[str, Any]:
    from hwtune.agent._app import openapi_schema

    return openapi_schema(agent.app)


def test_the_schema_declares_the_api(agent: Any) -> None:
    s = _schema(agent)
    assert set(s["paths"]) == {"/info", "/measure"}
    post = s["paths"]["/measure"]["post"]
    names = {p["name"] for p in post["parameters"]}
    assert {"format", "input_shape", "batch_sizes", "metrics", "rel_ci", "max_time_s"} <= names
    assert "application/octet-stream" in post["requestBody"]["content"]
    assert {"400", "401", "413", "503", "504"} <= set(post["responses"])
    assert s["components"]["securitySchemes"]  # the bearer token


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def _value(p: dict[str, Any]) -> st.SearchStrategy[str]:
    """Valid-looking values from the parameter's schema, and anything else."""
    schema = p.get("schema", {})
    good: list[st.SearchStrategy[str]] = []
    if "enum" in schema:
        good.append(st.sampled_from([str(v) for v in schema["enum"]]))
    if schema.get("type") == "number":
        good.append(st.floats(allow_nan=True, allow_infinity=True).map(repr))
    if p["name"] in ("input_shape", "batch_sizes"):
        good.append(st.lists(st.integers(-3, 5000), min_size=0, max_size=7).map(lambda xs: ",".join(map(str, xs))))
    if p["name"] == "metrics":
        good.append(st.lists(st.sampled_from(["latency_ms", "size_mb", "params", "power_w", "nope", ""]), max_size=4).map(",".join))
    return st.one_of(*good, _text)


@pytest.mark.parametrize("seed", [0])
def test_fuzz_measure_never_5xx(agent: Any, token: str, tmp_path: Path, seed: int) -> None:
    post = _schema(agent)["paths"]["/measure"]["post"]
    params = post["parameters"]
    model = tiny_onnx_bytes(tmp_path)
    query = st.fixed_dictionaries({}, optional={p["name"]: _value(p) for p in params} | {"junk": _text})
    body = st.one_of(st.binary(max_size=2048), st.just(model), st.binary(max_size=64).map(lambda b: model[: len(model) // 2] + b))
    auth = st.sampled_from(["good", "good", "good", "none", "wrong"])
    seen: dict[int, int] = {}

    @settings(max_examples=80, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(q=query, b=body, a=auth)
    def one(q: dict[str, str], b: bytes, a: str) -> None:
        headers = {"good": {"Authorization": f"Bearer {token}"}, "none": {}, "wrong": {"Authorization": "Bearer " + "w" * 40}}[a]
        q = {k: v for k, v in q.items()}
        if "max_time_s" not in q:
            q["max_time_s"] = "0.05"  # keep the valid ones quick
        r = httpx.post(agent.url + "/measure", params=q, content=b, headers=headers, timeout=120)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (r.status_code, r.text, q)
        assert r.headers["content-type"].startswith("application/json")
        if a != "good":
            assert r.status_code == 401
        if r.status_code != 200:
            assert r.json()["error"] and r.json()["detail"]

    one()
    assert seen.get(401) and seen.get(400)  # the fuzzing reached both the gate and the validation
    assert httpx.get(agent.url + "/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/info", "/measure", "/", "/docs", "/openapi.json", "/../etc/passwd", "/measure/x"]),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_fuzz_routes_methods_and_headers_never_5xx(agent: Any, token: str, path: str, method: str, header: str) -> None:
    r = httpx.request(method, agent.url + path, headers={"Authorization": header.strip() or "x", "X-Junk": header.strip() or "x"}, content=b"{}")
    assert r.status_code < 500
    if path != "/info" or method != "GET":
        assert r.status_code in (400, 401, 404, 405, 413)
