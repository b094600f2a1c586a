"""Static checks of the quantize stage (`edgetl validate` catches them before training)."""

from __future__ import annotations

import pytest

from edgetl.errors import RecipeError
from edgetl.pipeline.runner import validate
from edgetl.recipe.load import load_recipe


def recipe(tmp_path, quantize: str, before: str = "  - type: export\n"):
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: t\nmodel: {source: tiny_cnn, pretrained: false}\ndata: {name: fashion_mnist, train_limit: 100}\n"
        f"stages:\n{before}  - type: quantize\n{quantize}")
    return load_recipe(path, [])


def problems(tmp_path, quantize: str, before: str = "  - type: export\n") -> str:
    with pytest.raises(RecipeError) as info:
        validate(recipe(tmp_path, quantize, before))
    return "\n".join(info.value.problems)


def test_ptq_rejects_training_fields_and_mse(tmp_path):
    text = problems(tmp_path, "    method: ptq\n    epochs: 2\n    calibration: mse\n    sensitivity: {mode: all_but_one}\n")
    assert "stages.1.epochs: only used by `method: qat`" in text
    assert "stages.1.sensitivity: ptq ranks one node at a time" in text
    assert "stages.1.calibration: `mse` is not offered" in text


def test_fallback_works_for_both_methods_and_float_nodes_is_ptq_only(tmp_path):
    validate(recipe(tmp_path, "    method: ptq\n    fallback: {max_accuracy_drop: 0.01}\n    float_nodes: ['*Gemm*']\n"))
    text = problems(tmp_path, "    method: qat\n    float_nodes: ['*Gemm*']\n", before="")
    assert "stages.0.float_nodes: ptq only" in text


def test_ptq_needs_an_onnx_model_but_qat_does_not(tmp_path):
    assert "needs an FP32 ONNX model" in problems(tmp_path, "    method: ptq\n", before="")
    validate(recipe(tmp_path, "    method: qat\n", before=""))


def test_target_is_an_alias_of_layout(tmp_path):
    r = recipe(tmp_path, "    target: tensorrt\n")
    assert r.stages[1].layouts() == ["tensorrt"]
    assert "contradicts" in problems(tmp_path, "    target: tensorrt\n    layout: onnxruntime\n")


def test_default_layouts(tmp_path):
    assert recipe(tmp_path, "    method: ptq\n").stages[1].layouts() == ["onnxruntime"]
    assert recipe(tmp_path, "    method: qat\n").stages[1].layouts() == ["onnxruntime", "tensorrt"]


def test_unknown_calibration_is_a_schema_error(tmp_path):
    with pytest.raises(RecipeError) as info:
        recipe(tmp_path, "    method: qat\n    calibration: kl\n")
    assert "stages.1" in str(info.value.render())
