"""Export parity fails on NaN outputs: NaN differences are never "within tolerance"."""

import math

import pytest
import torch

from edgetl.data.datasets import load_data
from edgetl.errors import ExportError
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig
from edgetl.stages.export import check_parity, export_onnx


@pytest.fixture(scope="module")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=32, eval_limit=32))


def test_parity_fails_when_torch_and_onnx_both_give_nan(fmnist, tmp_path):
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", fmnist.label_names)
    with torch.no_grad():
        model.module.head.weight.fill_(math.nan)  # what a diverged fine-tune leaves behind
    path = tmp_path / "model.onnx"
    export_onnx(model, path, 17)

    with pytest.raises(ExportError, match="NaN or infinite") as err:
        check_parity(model, path, fmnist.eval.inputs[:16], atol=1e-3, min_agreement=0.99)

    assert "torch logits: 160 of 160 values" in str(err.value)
