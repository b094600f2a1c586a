"""One MACs truth: what a stage reports for a PyTorch model equals what `edgetl bench` measures on its ONNX
export (Conv/MatMul/Gemm multiply-accumulates), for every zoo model and Hugging Face models, pruned or not."""

from __future__ import annotations

import pytest

from edgetl.bench.model_stats import onnx_macs
from edgetl.export.onnx import torch_to_onnx
from edgetl.models.macs import model_macs
from edgetl.models.zoo import ZOO, load_source
from edgetl.recipe.schema import ModelConfig

LABELS = ["a", "b", "c"]


def _vit_folder(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, num_labels=3)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    return f"hf:{tmp_path / 'vit'}"


def _bert_folder(tmp_path):
    from edgetl.testing.tiny import tiny_bert_folder

    return f"hf:{tiny_bert_folder()}"


def _load(source: str, tmp_path):
    if source == "hf-vit":
        return load_source(ModelConfig(source=_vit_folder(tmp_path), pretrained=False, input_size=32), "image", LABELS)
    if source == "hf-bert":
        return load_source(ModelConfig(source=_bert_folder(tmp_path), max_length=16), "text", LABELS)
    task = ZOO[source].task
    cfg = ModelConfig(source=source, pretrained=False, input_size=64 if task == "image" else None,
                      max_length=16 if task == "text" else None)
    return load_source(cfg, task, LABELS)


def _onnx_macs(model, tmp_path) -> int:
    path = tmp_path / "model.onnx"
    torch_to_onnx(model, path, 17)
    feed = {k: v.numpy() for k, v in model.example_inputs(batch=1).items()}
    return onnx_macs(path, feed)


MODELS = [n for n in ZOO] + ["hf-bert", "hf-vit"]


@pytest.mark.parametrize("source", MODELS)
def test_torch_macs_equal_onnx_macs(source, tmp_path):
    model = _load(source, tmp_path)

    macs, _ = model_macs(model)

    assert macs > 0
    assert macs == pytest.approx(_onnx_macs(model, tmp_path), rel=0.01)


@pytest.mark.parametrize("source", ["mobilenet_v2", "efficientnet_lite0", "tiny_bert"])
def test_pruned_macs_equal_onnx_macs(source, tmp_path):
    from edgetl.prune.structured import StructuredPruner

    model = _load(source, tmp_path)
    before, _ = model_macs(model)
    pruner = StructuredPruner(model, pruning_ratio=0.5, steps=1, round_to=None)
    pruner.step()

    after, _ = model_macs(model)

    assert after < 0.8 * before  # the pruned model really is smaller, and the count sees it
    assert after == pytest.approx(_onnx_macs(model, tmp_path), rel=0.01)
