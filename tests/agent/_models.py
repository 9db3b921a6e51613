"""Tiny real models for the agent's tests: an ONNX file of a small network, a slow ONNX graph, bad files."""

from __future__ import annotations

from pathlib import Path

INPUT_SHAPE = (1, 8, 8)


def tiny_net(width: int = 16):
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))


def tiny_onnx_bytes(tmp: Path, width: int = 16) -> bytes:
    import torch

    from hwtune.hardware import export_onnx

    return export_onnx(tiny_net(width), torch.zeros(1, *INPUT_SHAPE), tmp / f"tiny{width}.onnx").read_bytes()


def slow_onnx_bytes(n: int = 512, repeats: int = 2000) -> bytes:
    """One input (batch, n, n) multiplied ``repeats`` times by one shared n x n weight: 537 GFLOP, seconds per
    inference on any CPU (3.7 s here), so that warm-up alone outlasts the strict agent's 3 s limit."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((n, n), 1e-3, dtype=np.float32), "w")
    nodes, prev = [], "x"
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def external_data_onnx_bytes() -> bytes:
    """A model whose weight lives in "external data" naming /etc/passwd: must be refused unread."""
    from onnx import TensorProto, helper

    w = TensorProto()
    w.name, w.data_type = "w", TensorProto.FLOAT
    w.dims.extend([64, 10])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "/etc/passwd"), ("offset", "0"), ("length", "2560")):
        e = w.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def unknown_op_onnx_bytes() -> bytes:
    """Parses as ONNX but the checker refuses it (an operator that does not exist)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
