"""check_qdq on small hand-built graphs: each TensorRT rule is caught, a conforming graph passes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.quant.check_qdq import check_qdq


def conv_graph(*, zp_value=0, zp_type=np.int8, w_axis=0, quantize_conv=True, after="Conv", opset=17,
               act_per_channel=False):
    """x -> Q -> DQ -> Conv(W: int8 -> DQ) -> y, with knobs that break one rule each."""
    nodes, inits = [], []
    w_q = np.ones((4, 3, 3, 3), dtype=np.int8)
    inits.append(numpy_helper.from_array(w_q, "w_q"))
    inits.append(numpy_helper.from_array(np.full(4 if w_axis == 0 else 3, 0.1, np.float32), "w_scale"))
    inits.append(numpy_helper.from_array(np.zeros(4 if w_axis == 0 else 3, np.int8), "w_zp"))
    if act_per_channel:
        inits.append(numpy_helper.from_array(np.full(3, 0.05, np.float32), "x_scale"))
        inits.append(numpy_helper.from_array(np.zeros(3, zp_type), "x_zp"))
    else:
        inits.append(numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"))
        inits.append(numpy_helper.from_array(np.array(zp_value, zp_type), "x_zp"))
    nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="w_dq", axis=w_axis))
    conv_in = "x"
    if quantize_conv:
        extra = {"axis": 1} if act_per_channel else {}
        nodes.append(helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="x_q", **extra))
        nodes.append(helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xdq"], name="x_dq", **extra))
        conv_in = "xdq"
    if after == "Relu":  # the Q/DQ pair feeds a Relu first: misplaced
        nodes.append(helper.make_node("Relu", [conv_in], ["r"], name="relu"))
        conv_in = "r"
    w_in = "w" if quantize_conv else "w_f"
    if not quantize_conv:
        inits.append(numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w_f"))
    nodes.append(helper.make_node("Conv", [conv_in, w_in], ["y"], name="conv"))
    if not quantize_conv:
        nodes.append(helper.make_node("Identity", ["w"], ["w_unused_out"], name="keep"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
        + ([helper.make_tensor_value_info("w_unused_out", TensorProto.FLOAT, None)] if not quantize_conv else []),
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def rules(model, **kw) -> set[str]:
    return {v.rule for v in check_qdq(model, **kw)}


def test_conforming_graph_passes():
    assert check_qdq(conv_graph()) == []


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"zp_value": 3}, "zero_point"),
    ({"zp_type": np.uint8, "zp_value": 128}, "dtype"),
    ({"w_axis": 1}, "axis"),
    ({"act_per_channel": True}, "axis"),
    ({"after": "Relu"}, "misplaced"),
    ({"opset": 12}, "opset"),
    ({"quantize_conv": False}, "unquantized"),
])
def test_each_rule_is_reported(kwargs, rule):
    assert rule in rules(conv_graph(**kwargs))


def test_intentionally_float_layer_is_allowed():
    model = conv_graph(quantize_conv=False)
    assert "unquantized" in rules(model)
    assert "unquantized" not in rules(model, allow_float={"conv"})


def test_dangling_quantize_is_reported():
    model = conv_graph()
    q = next(n for n in model.graph.node if n.name == "x_dq")
    model.graph.node.remove(q)
    conv = next(n for n in model.graph.node if n.name == "conv")
    conv.input[0] = "x"
    found = check_qdq(model)
    assert any(v.rule == "dangling" and v.node == "x_q" for v in found)


def test_reads_a_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_graph(zp_value=1), str(path))
    assert rules(path) == {"zero_point"}


def test_drop_misplaced_qdq_makes_an_output_side_pair_legal(tmp_path):
    from edgetl.quant.layouts import drop_misplaced_qdq

    model = conv_graph()
    # ONNX Runtime's quantizer style: conv output -> Q -> DQ -> Relu -> graph output
    model.graph.node.extend([
        helper.make_node("QuantizeLinear", ["y", "x_scale", "x_zp"], ["yq"], name="y_q"),
        helper.make_node("DequantizeLinear", ["yq", "x_scale", "x_zp"], ["ydq"], name="y_dq"),
        helper.make_node("Relu", ["ydq"], ["out"], name="relu_out"),
    ])
    model.graph.output[0].name = "out"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert rules(path) == {"misplaced"}
    assert drop_misplaced_qdq(path) == 1
    assert check_qdq(path) == []
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort

    assert ort.InferenceSession(str(path)).run(None, {"x": x})[0].shape == (2, 4, 6, 6)
