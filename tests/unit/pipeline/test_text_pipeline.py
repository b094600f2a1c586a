"""A text model through every stage: dynamic batch and sequence axes, tokenizer carried along."""

import json

import onnx

from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe
from edgetl.testing.recipes import tiny_text_recipe


def test_tiny_bert_runs_every_stage_with_dynamic_axes(tmp_path):
    report = compress(parse_recipe(tiny_text_recipe()), tmp_path)
    arts = {a["name"]: a for a in report["artifacts"]}
    fp32 = tmp_path / arts["onnx_fp32"]["path"]
    graph = onnx.load(str(fp32)).graph
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["input_ids"] == ["batch", "sequence"]
    assert (fp32.parent / "tokenizer.json").exists()
    meta = json.loads((fp32.parent / "model.json").read_text())
    assert meta["labels"] == ["rotten", "fresh"]
    assert arts["onnx_int8"]["latency_ms"]["p50"] > 0
    assert arts["onnx_int8"]["accuracy"] is not None


def test_text_ptq_with_a_histogram_calibration(tmp_path):
    # ONNX Runtime's percentile/entropy calibrators stack all batches: text batches of different lengths used to crash
    recipe = tiny_text_recipe()
    recipe["stages"][2]["calibration"] = "percentile"
    report = compress(parse_recipe(recipe), tmp_path)
    arts = {a["name"]: a for a in report["artifacts"]}
    int8 = arts["onnx_int8"]
    assert int8["calibration"] == "percentile" and int8["calibration_padded_to"] == 32
    assert abs(int8["accuracy"] - arts["onnx_fp32"]["accuracy"]) <= 0.05
