"""What the agent checks in a model before it runs it: ONNX only as a graph with its weights inside.

- The bytes must parse as an ONNX ``ModelProto`` and pass ``onnx.checker.check_model`` (given the
  proto, never a path).
- No tensor may live in *external data*: an external-data entry names a file, and ONNX Runtime would
  read that file from the agent's disk (a path from the request into the file system). Initializers,
  sparse initializers, tensor attributes of nodes and of nodes inside subgraphs and functions are all
  checked.
- Exactly one graph input besides the initializers, a float tensor of the same rank as the request's
  input shape plus the batch dimension, whose fixed dimensions agree with it.

TorchScript is not checked here: it is a program, loaded and run only in the measuring process, and
only when the agent allows it (``AgentSettings.allow_torchscript``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["BadModel", "check_onnx_bytes", "ONNX_FLOAT_TYPES"]

ONNX_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64"}
"""ONNX ``TensorProto`` element types the agent feeds (zeros of the input's own type)."""


class BadModel(ValueError):
    """A model the agent refuses (answered 400 with this message)."""


def _graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("g"):
                yield from _graphs(a.g)
            for g in a.graphs:
                yield from _graphs(g)


def _tensors(model: Any) -> Iterator[Any]:
    for g in _graphs(model.graph):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
            yield s.indices
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
    for f in model.functions:
        for node in f.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors


def check_onnx_bytes(data: bytes, input_shape: Sequence[int]) -> dict[str, Any]:
    """Check an uploaded ONNX model (see the module docstring).

    Returns:
        ``{"opset": ..., "nodes": ..., "input": name, "dtype": ...}`` for the answer.

    Raises:
        BadModel: with the reason.
    """
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise BadModel("the request carries no model (an empty body)")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise BadModel(f"not an ONNX model: the bytes do not parse as an ONNX ModelProto ({type(e).__name__}: {str(e)[:200]})") from None
    except Exception as e:  # noqa: BLE001 - protobuf raises various things on garbage
        raise BadModel(f"not an ONNX model: {type(e).__name__}: {str(e)[:200]}") from None
    if not model.graph.node:
        raise BadModel("the ONNX graph has no nodes")
    for t in _tensors(model):
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            raise BadModel(f"tensor {t.name!r} is stored in external data (a file on the measuring machine); export the model with its weights inside one file")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadModel(f"the ONNX checker refuses the model: {first[:300]}") from None
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise BadModel(f"the model has {len(inputs)} inputs; the agent measures models with exactly one input")
    tt = inputs[0].type.tensor_type if inputs[0].type.HasField("tensor_type") else None
    if tt is None or tt.elem_type not in ONNX_FLOAT_TYPES:
        raise BadModel(f"input {inputs[0].name!r} is not a float tensor; the agent feeds float32/float16/float64 zeros")
    dims = list(tt.shape.dim) if tt.HasField("shape") else None
    if dims is not None:
        if len(dims) != len(input_shape) + 1:
            raise BadModel(f"input {inputs[0].name!r} has rank {len(dims)}, but input_shape {list(input_shape)} plus the batch dimension has rank {len(input_shape) + 1}")
        for i, (d, want) in enumerate(zip(dims[1:], input_shape), start=1):
            if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != want:
                raise BadModel(f"input {inputs[0].name!r} has dimension {i} of {d.dim_value}, but input_shape says {want}")
    return {
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "nodes": len(model.graph.node),
        "input": inputs[0].name,
        "dtype": ONNX_FLOAT_TYPES[tt.elem_type],
    }
