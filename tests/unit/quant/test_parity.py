"""INT8 parity fails on NaN outputs instead of reporting agreement 1.0 (argmax of NaN rows is class 0)."""

import math

import numpy as np
import pytest
import torch

from edgetl.data.datasets import load_data
from edgetl.errors import ExportError
from edgetl.export.onnx import torch_to_onnx
from edgetl.models.zoo import load_source
from edgetl.quant.parity import onnx_parity
from edgetl.recipe.schema import DataConfig, ModelConfig


def test_onnx_parity_fails_on_nan_logits(tmp_path):
    data = load_data(DataConfig(name="fashion_mnist", train_limit=16, eval_limit=16))
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", data.label_names)
    with torch.no_grad():
        model.module.head.bias.fill_(math.nan)
    path = tmp_path / "model.onnx"
    torch_to_onnx(model, path, 17)
    reference = np.full((16, 10), math.nan, dtype=np.float32)

    with pytest.raises(ExportError, match="NaN or infinite"):
        onnx_parity(path, model.encoder(), data.eval.inputs[:16], reference)
