"""Export parity fails on NaN outputs: NaN differences are never "within tolerance"."""

import math

import pytest
import torch

from edgetl.data.datasets import load_data
from edgetl.errors import ExportError
from edgetl.export.onnx import check_parity, torch_to_onnx
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig


@pytest.fixture(scope="module")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=32, eval_limit=32))


def test_parity_fails_when_torch_and_onnx_both_give_nan(fmnist, tmp_path):
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", fmnist.label_names)
    with torch.no_grad():
        model.module.head.weight.fill_(math.nan)  # what a diverged fine-tune leaves behind
    path = tmp_path / "model.onnx"
    torch_to_onnx(model, path, 17)

    with pytest.raises(ExportError, match="NaN or infinite") as err:
        check_parity(model, path, fmnist.eval.inputs[:16], atol=1e-3, min_agreement=0.99)

    assert "torch logits: 160 of 160 values" in str(err.value)


def edgetl_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, text=True, timeout=300)


def test_cli_exports_a_saved_model_folder_with_parity(fmnist, tmp_path):
    from edgetl.models.base import save_model
    from edgetl.runtime.meta import read_onnx_meta

    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", fmnist.label_names)
    save_model(model, tmp_path / "model")

    res = edgetl_cli("export", str(tmp_path / "model"), "--out", str(tmp_path / "onnx"), "--data", "fashion_mnist",
                     "--samples", "8")

    assert res.returncode == 0, res.stderr
    assert "parity on 8 examples" in res.stdout and "top-1 agreement 1.000" in res.stdout
    meta = read_onnx_meta(tmp_path / "onnx" / "model.onnx")
    assert meta.labels == fmnist.label_names and meta.info["parity"]["samples"] == 8


def test_cli_export_of_a_folder_that_is_no_model_exits_2(tmp_path):
    res = edgetl_cli("export", str(tmp_path), "--out", str(tmp_path / "onnx"))

    assert res.returncode == 2 and "is not a saved edgetl model (no model.json)" in res.stderr
