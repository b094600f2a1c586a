"""Small hand-built ONNX graphs with known shapes and MACs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def mlp_onnx(path, width=64, depth=2, classes=10, dynamic_features=False, seed=0):
    """x[batch, width] -> (MatMul + Relu) x depth -> MatMul -> logits[batch, classes]; MACs = depth*w*w + w*classes."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]), helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        prev = f"r{i}"
    inits.append(numpy_helper.from_array(rng.standard_normal((width, classes)).astype(np.float32), "wout"))
    nodes.append(helper.make_node("MatMul", [prev, "wout"], ["logits"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "features" if dynamic_features else width])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
    model = helper.make_model(helper.make_graph(nodes, "mlp", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_onnx(path):
    """x[batch,3,8,8] -> Conv(4 filters 3x3, pad 1) -> GlobalAveragePool -> Flatten -> Gemm(4->5)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "gw"),
             numpy_helper.from_array(np.zeros(5, np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["logits"], transB=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])
    model = helper.make_model(helper.make_graph(nodes, "conv", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def mlp(tmp_path):
    return mlp_onnx(tmp_path / "mlp.onnx")


@pytest.fixture
def make_mlp(tmp_path):
    return lambda name="m.onnx", **kw: mlp_onnx(tmp_path / name, **kw)


@pytest.fixture
def conv(tmp_path):
    return conv_onnx(tmp_path / "conv.onnx")
