"""PTQ sensitivity and fallback with ONNX Runtime's real quantizer: a layer whose input activation has rare huge
spikes (so per-tensor int8 crushes everything else in it) ranks first, and keeping it float brings the accuracy
back; `float_nodes` keeps named nodes float; both show in the report."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.quant.ptq import CalibrationReader, fallback_latency
from edgetl.quant.ptq_fallback import (
    choose_float_nodes,
    node_sensitivity,
    output_sensitivity,
    read_float_inputs,
)
from edgetl.testing.recipes import tiny_vision_recipe


def spiky_mlp(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 64)).astype(np.float32) / 4
    w1[0, :] = 0.0
    w1[0, 0] = 1.0  # feature 0 (rare spikes of 5) goes only to hidden channel 0 ...
    gain = np.ones(64, np.float32)
    gain[0] = 100.0  # ... which an element-wise op between the MatMuls (like BERT's GELU) blows up to 500
    w2 = rng.standard_normal((64, 64)).astype(np.float32) / 8
    w2[0, :] = 0.0  # ... and the next layer ignores: the spikes only stretch its int8 input grid
    w3 = rng.standard_normal((64, 4)).astype(np.float32) / 8
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"), helper.make_node("Relu", ["a"], ["r"], name="r1"),
             helper.make_node("Mul", ["r", "gain"], ["h"], name="scale"),
             helper.make_node("MatMul", ["h", "w2"], ["b"], name="mm2"), helper.make_node("Relu", ["b"], ["g"], name="r2"),
             helper.make_node("MatMul", ["g", "w3"], ["logits"], name="mm3")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
                              [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"), (gain, "gain"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def inputs(n: int, seed: int) -> np.ndarray:
    x = np.abs(np.random.default_rng(seed).standard_normal((n, 16))).astype(np.float32)
    x[:, 0] = 0.0
    x[::50, 0] = 5.0
    return x


def test_the_spiky_layer_ranks_first_and_falling_back_on_it_restores_accuracy(tmp_path):
    float_path, q_path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    spiky_mlp(float_path)
    calib = [{"x": inputs(64, s)} for s in range(4)]
    test_x = inputs(400, 99)
    labels = ort.InferenceSession(str(float_path)).run(None, {"x": test_x})[0].argmax(1)  # the float model's answers

    def quantize(excluded):
        quantize_static(str(float_path), str(q_path), CalibrationReader(calib), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=excluded or None)  # every op type: Relu/Mul/MatMul outputs quantized too
        read_float_inputs(q_path, excluded)
        return q_path

    def accuracy(path):
        return float((ort.InferenceSession(str(path)).run(None, {"x": test_x})[0].argmax(1) == labels).mean())

    first = accuracy(quantize([]))
    ranked = node_sensitivity(float_path, q_path, calib)
    assert [r["node"] for r in ranked][0] == "mm2"
    by_output = output_sensitivity(float_path, q_path, calib)  # one node quantized at a time, logits SQNR
    assert by_output[0]["node"] == "mm2" and by_output[0]["sqnr_db"] < by_output[1]["sqnr_db"] - 10
    assert ranked[0]["sqnr_db"] < ranked[1]["sqnr_db"] - 10
    assert first < 0.9  # the crushed hidden channels cost real accuracy
    decision = choose_float_nodes(ranked, quantize, accuracy, 1.0, max_accuracy_drop=0.03, max_layers=3,
                                  first_accuracy=first)
    assert decision["float_nodes"] == ["mm2"] and decision["budget_met"] and decision["accuracy"] >= 0.97
    assert len(decision["steps"]) == 2  # stops as soon as the budget holds
    all_int8 = tmp_path / "all.onnx"
    quantize([]).rename(all_int8)
    cost = fallback_latency(all_int8, quantize(["mm2"]), {"x": test_x[:1]}, seed=0)
    assert cost["all_int8"] > 0 and cost["with_fallback"] > 0
    assert cost["cost_ratio"] == pytest.approx(cost["with_fallback"] / cost["all_int8"], rel=1e-3)


def run_cli(tmp_path, quantize_stage):
    recipe = tiny_vision_recipe()
    recipe["stages"][2] = {"type": "quantize", "samples": 64, **quantize_stage}
    recipe["stages"][3]["iterations"] = 10
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return CliRunner().invoke(app, ["compress", str(path), "--out", str(tmp_path / "run"), "-q"])


def test_ptq_fallback_and_float_nodes_through_the_pipeline(tmp_path):
    res = run_cli(tmp_path, {"float_nodes": ["*Gemm*"], "sensitivity": {"samples": 32},
                             "fallback": {"max_accuracy_drop": 0.0, "max_layers": 1, "samples": 60}})
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "run/report.json").read_text())
    metrics = next(s for s in report["stages"] if s["type"] == "quantize")["metrics"]
    fb, ranking = metrics["fallback"]["onnxruntime"], metrics["ranking"]["onnxruntime"]
    assert fb["pinned_float_nodes"] and all("Gemm" in n for n in fb["pinned_float_nodes"])
    assert ranking["table"] and not any("Gemm" in r["node"] for r in ranking["table"])  # pinned ones are not ranked
    assert ranking["by"].startswith("output SQNR") and ranking["samples"] == 32
    int8 = next(a for a in report["artifacts"] if a["name"] == "onnx_int8")
    graph = onnx.load(str(tmp_path / "run" / int8["path"])).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name in fb["pinned_float_nodes"] + fb["float_nodes"]:
            assert producer.get(node.input[0]) != "DequantizeLinear", node.name  # reads the float activation
            assert producer.get(node.input[1]) != "DequantizeLinear", node.name  # float weights
    assert "## PTQ sensitivity and fallback (stage 2)" in (tmp_path / "run/report.md").read_text()


def test_a_float_nodes_pattern_that_matches_nothing_is_a_user_error(tmp_path):
    res = run_cli(tmp_path, {"float_nodes": ["/no/such/node"]})
    assert res.exit_code == 2
    assert "stages.2.float_nodes" in res.output and "matches no node" in res.output
