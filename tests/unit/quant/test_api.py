"""`edgetl.quantize` and `edgetl quantize`: PTQ of an ONNX file (edgetl's or from elsewhere) and QAT of a bare
nn.Module through one function and one config; the INT8 files agree with the models they came from."""

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import edgetl
from edgetl.cli import app
from edgetl.data.datasets import load_data
from edgetl.errors import ModelError, RecipeError
from edgetl.quant.check_qdq import check_qdq
from edgetl.quant.parity import int8_vs_float
from edgetl.recipe.schema import DataConfig
from edgetl.runtime.preprocess import Preprocessing
from edgetl.train.loop import evaluate

PRE = {"size": 32}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=600, eval_limit=200))


@pytest.fixture(scope="module")
def trained(fmnist, tmp_path_factory):
    """A small CNN trained to well above chance, and its FP32 ONNX file."""
    torch.manual_seed(0)
    model = edgetl.finetune((Net(), PRE), fmnist, config={"epochs": 4, "lr": 1e-2, "batch_size": 32},
                            labels=fmnist.label_names).model
    onnx = edgetl.export_onnx(model, tmp_path_factory.mktemp("fp32"), data=fmnist).path
    return model, onnx


def test_ptq_of_an_onnx_file_in_both_layouts_agrees_with_the_float_file(fmnist, trained, tmp_path):
    _, onnx = trained
    result = edgetl.quantize(onnx, fmnist.train, config={"layout": "both", "samples": 64}, out=tmp_path / "int8")

    files = result.metrics["files"]
    assert set(files) == {"onnxruntime", "tensorrt"} and result.model is None
    assert result.path == tmp_path / "int8" / "onnx-onnxruntime" / "model.onnx"
    assert check_qdq(files["tensorrt"]) == []  # TensorRT's explicit-quantization rules hold
    assert result.metrics["infos"]["tensorrt"]["check_qdq_violations"] == 0
    for path in files.values():
        check = int8_vs_float(onnx, path, fmnist.eval.inputs, fmnist.eval.labels)
        assert check["float_accuracy"] > 0.45  # the float model learned (chance is 0.1)
        assert check["top1_agreement"] >= 0.9 and abs(check["int8_accuracy"] - check["float_accuracy"]) <= 0.05
    assert not any(p.name.startswith(".edgetl") for p in (tmp_path / "int8").rglob("*"))  # no scratch left


def test_ptq_of_an_onnx_file_without_sidecar_needs_its_preprocessing(fmnist, trained, tmp_path):
    _, onnx = trained
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx.read_bytes())
    with pytest.raises(ModelError, match="no model.json beside it") as err:
        edgetl.quantize(bare, fmnist.train, out=tmp_path / "a")
    assert "--input-size, --mean and --std" in err.value.hint

    pre = Preprocessing(kind="image", input_names=[], size=32)  # ImageNet mean/std, as the model was trained
    result = edgetl.quantize(bare, fmnist.train, config={"samples": 64}, out=tmp_path / "b", preprocessing=pre,
                             labels=fmnist.label_names)
    check = int8_vs_float(bare, result.path, fmnist.eval.inputs, fmnist.eval.labels)
    assert check["top1_agreement"] >= 0.9
    meta = (tmp_path / "b" / "model.json").read_text()
    assert "Ankle boot" in meta and '"x"' in meta  # labels given, the module's input name read from the file


def test_the_method_must_fit_what_is_handed_over(fmnist, trained, tmp_path):
    model, onnx = trained
    with pytest.raises(RecipeError, match="ptq quantizes an FP32 ONNX file") as err:
        edgetl.quantize(model, fmnist, out=tmp_path / "x")
    assert "export_onnx" in err.value.hint
    with pytest.raises(RecipeError, match="qat trains the PyTorch model"):
        edgetl.quantize(onnx, fmnist, config={"method": "qat"}, out=tmp_path / "x")
    with pytest.raises(RecipeError, match="does not hold together") as err:
        edgetl.quantize(onnx, fmnist, config={"epochs": 2}, out=tmp_path / "x")
    assert err.value.problems == ["epochs: only used by `method: qat` (ptq does not train); remove it or set "
                                  "`method: qat`"]


def test_qat_of_a_bare_module_writes_both_layouts_that_match_the_fake_quant_model(fmnist, trained, tmp_path):
    pytest.importorskip("torchao")
    model, _ = trained
    config = edgetl.QuantizeConfig(method="qat", max_steps=4, batch_size=32, samples=64, parity_samples=64)

    result = edgetl.quantize(model, fmnist, config=config, out=tmp_path / "qat", seed=1)

    infos = result.metrics["infos"]
    assert set(infos) == {"onnxruntime", "tensorrt"} and result.metrics["steps"] == 4
    assert check_qdq(result.metrics["files"]["tensorrt"], allow_float=set(infos["tensorrt"]["float_nodes"])) == []
    for info in infos.values():
        assert info["parity"]["top1_agreement"] >= info["parity"]["min_agreement"]
    assert result.metrics["best_eval_accuracy"] > 0.45
    assert evaluate(result.model, fmnist.eval) > 0.45  # the fake-quant model comes back as a model that predicts


def test_cli_quantizes_an_onnx_file_and_prints_the_comparison(trained, tmp_path):
    _, onnx = trained
    res = CliRunner().invoke(app, ["quantize", str(onnx), "--data", "fashion_mnist", "--out", str(tmp_path / "q"),
                                   "--layout", "tensorrt", "--samples", "64", "--check-samples", "100"])
    assert res.exit_code == 0, res.output
    assert "top-1 agreement" in res.output and "TensorRT Q/DQ rules: 0 violation(s)" in res.output
    assert (tmp_path / "q" / "model.onnx").exists()


@pytest.mark.parametrize("args, message", [
    (["--data", "fashion_mnist"], "does not exist"),
    (["--data", "no_such_set"], "neither a named dataset"),
    (["--data", "fashion_mnist", "--layout", "fastest"], "--layout"),
])
def test_cli_bad_input_exits_2_naming_it(trained, tmp_path, args, message):
    _, onnx = trained
    model = str(tmp_path / "missing.onnx") if message == "does not exist" else str(onnx)
    res = CliRunner().invoke(app, ["quantize", model, "--out", str(tmp_path / "q"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_cli_options_for_a_file_without_sidecar_are_checked(trained, tmp_path):
    _, onnx = trained
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx.read_bytes())
    res = CliRunner().invoke(app, ["quantize", str(bare), "--data", "fashion_mnist", "--out", str(tmp_path / "q"),
                                   "--mean", "0.5,x"])
    assert res.exit_code == 2 and "--mean '0.5,x'" in res.output
    res = CliRunner().invoke(app, ["quantize", str(onnx), "--data", "fashion_mnist", "--out", str(tmp_path / "r"),
                                   "--input-size", "64"])
    assert res.exit_code == 2 and "already says how inputs are made" in res.output
    assert np.all([not (tmp_path / d).exists() for d in ("q", "r")])  # nothing written on bad input
