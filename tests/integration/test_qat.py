"""`quantize` with `method: qat` end to end through the pipeline, on tiny_cnn / tiny_bert and real data:
both layouts exported from one training, TensorRT's rules hold for the tensorrt layout (checked with the
CLI), parity with the fake-quant model is recorded, sensitivity is ranked and a fallback is forced and
reported, report.json carries `method` and `layout` for every INT8 artifact."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe

pytest.importorskip("torchao")


def run_cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat-vision")
    recipe = {
        "name": "tiny-qat", "seed": 0,
        "model": {"source": "tiny_cnn", "input_size": 32, "pretrained": False},
        "data": {"name": "fashion_mnist", "train_limit": 480, "eval_limit": 160},
        "stages": [
            {"type": "finetune", "epochs": 3, "batch_size": 32, "lr": 0.01},
            {"type": "export"},
            {"type": "quantize", "name": "ptq_int8", "method": "ptq", "layout": "both", "samples": 32},
            {"type": "quantize", "name": "qat_int8", "method": "qat", "layout": "both", "calibration": "percentile",
             "percentile": 90.5, "samples": 32, "max_steps": 4, "batch_size": 32,
             "sensitivity": {"mode": "one_at_a_time", "score": "sqnr", "samples": 16},
             # percentile 90.5 clips ~10 % of every activation: with that, a zero-drop budget forces the
             # fallback to keep a layer in float
             "fallback": {"max_accuracy_drop": 0.0, "max_layers": 1, "samples": 80},
             "parity_samples": 64},
            {"type": "benchmark", "iterations": 10, "warmup_seconds": 0.02},
        ],
    }
    report = compress(parse_recipe(recipe), out)
    return out, report


def qat_stage(report):
    return next(s for s in report["stages"] if s["type"] == "quantize" and s["metrics"].get("method") == "qat")


def test_both_layouts_are_reported_with_method_and_layout(vision_run):
    out, report = vision_run
    arts = {a["name"]: a for a in report["artifacts"] if a["precision"] == "int8"}
    assert {(a["method"], a["layout"]) for a in arts.values()} == {
        ("ptq", "onnxruntime"), ("ptq", "tensorrt"), ("qat", "onnxruntime"), ("qat", "tensorrt")}
    assert all(a["accuracy"] is not None and a["latency_ms"]["p50"] > 0 for a in arts.values())
    assert report["baseline"] == "onnx_fp32"
    assert report["final"] in ("qat_int8_onnxruntime", "qat_int8_tensorrt")


def test_tensorrt_layout_passes_check_qdq_and_onnxruntime_layout_does_not(vision_run):
    out, report = vision_run
    paths = {a["name"]: out / a["path"] for a in report["artifacts"]}
    trt = run_cli("check-qdq", str(paths["qat_int8_tensorrt"]), "--target", "tensorrt", "--json")
    assert trt.exit_code == 0, trt.output
    body = json.loads(trt.output)
    assert body["violations"] == [] and body["allowed_float"]  # the fallback layer, read from the sidecar
    ort = run_cli("check-qdq", str(paths["qat_int8_onnxruntime"]), "--target", "tensorrt")
    assert ort.exit_code == 1
    assert "[zero_point]" in ort.output or "[dtype]" in ort.output
    assert run_cli("check-qdq", str(paths["ptq_int8_tensorrt"])).exit_code == 0  # PTQ's tensorrt layout too
    bad = run_cli("check-qdq", str(paths["qat_int8_tensorrt"]), "--target", "openvino")
    assert bad.exit_code == 2


def test_parity_sensitivity_and_fallback_are_recorded(vision_run):
    out, report = vision_run
    m = qat_stage(report)["metrics"]
    # the tensorrt layout is the fake-quant graph itself: only float rounding differs
    assert m["parity"]["tensorrt"]["top1_agreement"] >= 0.95 and m["parity"]["tensorrt"]["max_abs_diff"] < 0.05
    assert m["parity"]["onnxruntime"]["samples"] == 64
    # the same file with ONNX Runtime's graph optimizations off: a second execution of one int8 graph
    for layout in ("tensorrt", "onnxruntime"):
        p = m["parity"][layout]
        assert p["unoptimized_ort_agreement"] >= 0.9 and p["unoptimized_ort_max_abs_diff"] < 1.0
        assert p["min_agreement"] <= p["unoptimized_ort_agreement"] - 0.01 + 1e-4  # (rounded to 4 places)
    assert "optimizations on vs off" in (out / "report.md").read_text()
    table = m["sensitivity"]["table"]
    assert [r["rank"] for r in table] == list(range(1, len(table) + 1)) and len(table) == 6
    fb = m["fallback"]
    assert len(fb["float_layers"]) == 1 and fb["float_layers"][0] in {r["layer"] for r in table[:2]}
    assert fb["accuracy"] > fb["steps"][0]["accuracy"]  # a layer stays float only if it helped
    assert fb["latency_ms"]["all_int8"] > 0 and fb["latency_ms"]["with_fallback"] > 0
    assert m["check_qdq_tensorrt"]["violations"] == 0 and len(m["check_qdq_tensorrt"]["float_nodes"]) == 1
    assert m["steps"] == 4 and m["kd"] == "float"
    # QAT training that lowers eval accuracy is not kept: the calibrated ("epoch 0") model is exported instead
    assert (m["kept"] == "calibrated") == (m["best_eval_accuracy"] < m["fake_quant_accuracy_calibrated"])


def test_text_qat_keeps_named_dynamic_axes(tmp_path):
    recipe = {
        "name": "tiny-qat-text", "seed": 0,
        "model": {"source": "tiny_bert", "max_length": 32, "pretrained": False},
        "data": {"name": "rotten_tomatoes", "train_limit": 96, "eval_limit": 64},
        "stages": [{"type": "quantize", "method": "qat", "layout": "both", "samples": 32, "max_steps": 2,
                    "batch_size": 16, "parity_samples": 32}],
    }
    report = compress(parse_recipe(recipe), tmp_path)
    arts = {a["layout"]: tmp_path / a["path"] for a in report["artifacts"] if a["precision"] == "int8"}
    for layout, path in arts.items():
        proto = onnx.load(str(path), load_external_data=False)
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
        assert dims["input_ids"] == ["batch", "sequence"], (layout, dims)
        assert (path.parent / "tokenizer.json").exists()
        # every layout really is INT8 (a derived graph without type info once came out with no Q/DQ at all)
        assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) >= 10, layout
    assert run_cli("check-qdq", str(arts["tensorrt"])).exit_code == 0
    m = report["stages"][0]["metrics"]
    assert m["parity"]["tensorrt"]["max_abs_diff"] < 0.05
    # the onnxruntime layout rounds only what QAT rounded: residual Adds read the float LayerNorm output, not
    # ONNX Runtime's DequantizeLinear of it (that once cost 4 points of agreement on MiniLM-L6)
    proto = onnx.load(str(arts["onnxruntime"]))
    producer = {o: n for n in proto.graph.node for o in n.output}
    consts = {t.name for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type in ("Add", "LayerNormalization", "SkipLayerNormalization", "Softmax"):
            for x in n.input:
                p = producer.get(x)
                assert p is None or p.op_type != "DequantizeLinear" or p.input[0] in consts, (n.name, x)
    assert m["parity"]["onnxruntime"]["top1_agreement"] >= 0.95


@pytest.mark.slow
def test_efficientnet_lite_qat_passes_parity_in_both_layouts(tmp_path):
    """EfficientNet-Lite0 (pretrained, 64 px, a trained head): its onnxruntime layout used to stop the stage at
    the parity gate (ONNX Runtime rounded the padded ReLU6 outputs on grids of its own, and the conv outputs in
    front of Swish and the logits on calibrated ranges QAT never saw). A head trained on frozen features keeps the
    ImageNet BatchNorm statistics, so the fake-quant model is not dominated by rounding flips at this size."""
    recipe = {
        "name": "effnet-qat", "seed": 0,
        "model": {"source": "efficientnet_lite0", "input_size": 64},
        "data": {"name": "fashion_mnist", "train_limit": 96, "eval_limit": 64},
        "stages": [{"type": "finetune", "method": "linear_probe", "epochs": 5, "batch_size": 16, "lr": 0.01},
                   {"type": "quantize", "method": "qat", "layout": "both", "samples": 32, "max_steps": 2,
                    "batch_size": 16, "parity_samples": 64}],
    }
    report = compress(parse_recipe(recipe), tmp_path)  # raises ExportError if either layout fails its parity gate
    parity = report["stages"][1]["metrics"]["parity"]
    # the derived layout is as close to the fake-quant model as the exported fake-quant graph itself
    assert parity["onnxruntime"]["mean_abs_diff"] <= 2 * parity["tensorrt"]["mean_abs_diff"] + 0.05, parity
    assert parity["onnxruntime"]["top1_agreement"] >= parity["tensorrt"]["top1_agreement"] - 0.05, parity
    paths = {a["layout"]: tmp_path / a["path"] for a in report["artifacts"] if a["precision"] == "int8"}
    assert set(paths) == {"tensorrt", "onnxruntime"}
    assert run_cli("check-qdq", str(paths["tensorrt"]), "--target", "tensorrt").exit_code == 0
