"""The library: each technique function on a model the zoo does not build (a bare nn.Module), with data
from a torch DataLoader and the caller's own loss and metric, returns a model or file plus metrics."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import edgetl
from edgetl.data.datasets import load_data
from edgetl.errors import DataError, ModelError
from edgetl.models.base import load_model
from edgetl.recipe.schema import DataConfig
from edgetl.train.loop import predict_logits

PRE = {"size": 32}  # the preprocessing handed over with the module: 32 x 32 inputs, ImageNet normalisation


class Net(nn.Module):
    """A user's own small CNN: forward takes `x`, not edgetl's `pixel_values`."""

    def __init__(self, num_labels: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.classifier = nn.Linear(32, num_labels)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=128, eval_limit=64))


def loader(split, shuffle=False):
    ds = TensorDataset(torch.from_numpy(split.inputs), torch.from_numpy(split.labels))
    return DataLoader(ds, batch_size=32, shuffle=shuffle)


class CountingLoss:
    """Cross-entropy that counts its calls, so a test sees the caller's loss was the one trained on."""

    def __init__(self):
        self.calls = 0

    def __call__(self, logits, labels):
        self.calls += 1
        return nn.functional.cross_entropy(logits, labels)


def percent_correct(logits, labels):  # a metric on another scale than accuracy: 0..100
    return 100.0 * float((logits.argmax(-1) == labels).mean())


def test_prune_a_bare_module_from_a_dataloader_with_own_loss_and_metric(fmnist, tmp_path):
    torch.manual_seed(0)
    loss = CountingLoss()
    config = edgetl.PruneConfig(target={"macs_ratio": 0.6}, max_steps=3, batch_size=32, measure_latency=False,
                                importance="taylor", protect="none")

    result = edgetl.prune((Net(), PRE), loader(fmnist.train, shuffle=True), loader(fmnist.eval), config,
                          out=tmp_path / "pruned", loss=loss, metric=percent_correct)

    m = result.metrics
    assert m["budget_met"] and m["macs_ratio"] <= 0.6
    assert loss.calls > 0  # taylor importance and recovery trained on the caller's loss
    assert m["recovery"]["ran"] and any(h["eval_accuracy"] > 1 for h in m["recovery"]["history"])  # percent scale
    assert result.model.label_names == [str(i) for i in range(10)]
    again = load_model(result.path, module=Net())  # pruned widths come back onto a fresh instance
    raw = fmnist.eval.inputs[:8]
    np.testing.assert_allclose(predict_logits(again, raw), predict_logits(result.model, raw), atol=1e-5)
    with pytest.raises(ModelError, match="cannot rebuild its architecture by itself") as err:
        load_model(result.path)
    assert "load_model(folder, module=" in err.value.hint


def test_export_onnx_of_a_bare_module_checks_parity_and_writes_the_sidecar(fmnist, tmp_path):
    result = edgetl.export_onnx((Net(), PRE), tmp_path / "onnx", data=fmnist.eval.inputs[:16])

    assert result.path == tmp_path / "onnx" / "model.onnx" and result.path.exists()
    assert (tmp_path / "onnx" / "model.json").exists()
    assert result.metrics["parity"]["samples"] == 16 and result.metrics["parity"]["top1_agreement"] == 1.0
    assert result.metrics["io"]["inputs"][0]["name"] == "x"  # the module's own input name


def test_a_module_whose_head_does_not_match_the_labels_is_refused(fmnist):
    with pytest.raises(ModelError, match="outputs 3 logits per example but the data has 10 labels"):
        edgetl.prune((Net(num_labels=3), PRE), fmnist, config={"target": {"ratio": 0.5}}, labels=fmnist.label_names)


def test_float_tensors_are_refused_with_what_to_pass_instead(fmnist):
    x = torch.rand(8, 3, 32, 32)
    bad = DataLoader(TensorDataset(x, torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(DataError, match="inputs are float32 shaped"):
        edgetl.prune((Net(), PRE), bad, bad, {"target": {"ratio": 0.5}})


def test_distill_into_a_bare_student_with_feature_kd_and_own_loss(fmnist):
    torch.manual_seed(0)
    loss = CountingLoss()
    config = edgetl.DistillConfig(max_steps=3, batch_size=32,
                                  kd={"alpha": 0.5, "features": [{"student": "features.5", "teacher": "features.5"}]})

    result = edgetl.distill((Net(), PRE), (Net(), PRE), loader(fmnist.train, shuffle=True), loader(fmnist.eval),
                            config, loss=loss, metric=percent_correct)

    m = result.metrics
    assert m["student"]["kind"] == "current" and m["kd"]["teacher_forward_passes"] > 0
    assert loss.calls > 0 and m["student"]["accuracy"] > 1  # the caller's loss and metric (percent scale)
    assert result.model.info["distilled_from"] == "Net"


def test_benchmark_then_bundle_exported_files_and_the_device_loads_the_bundle(fmnist, tmp_path):
    from edgetl.runtime import Predictor

    torch.manual_seed(0)
    onnx = {name: edgetl.export_onnx((Net(), PRE), tmp_path / name, data=fmnist, labels=fmnist.label_names)
            for name in ("base", "other")}

    measured = edgetl.benchmark(onnx, fmnist, {"iterations": 10, "warmup_seconds": 0.0})
    bundle = edgetl.bundle(onnx, tmp_path / "bundle", measured=measured, name="own")

    rows = measured.metrics["results"]
    assert set(rows) == {"base", "other"} and all(r["latency_ms"]["p50"] > 0 for r in rows.values())
    assert all(0 <= r["accuracy"] <= 1 and r["eval_samples"] == 64 for r in rows.values())
    models = {m["name"]: m for m in bundle.metrics["models"]}
    assert models["base"]["accuracy"] == rows["base"]["accuracy"] and models["base"]["latency_ms"]["p50"] > 0
    predictor = Predictor.from_bundle(bundle.path)
    np.testing.assert_allclose(predictor.logits(fmnist.eval.inputs[:4]),
                               predict_logits(onnx[predictor.model.name].model, fmnist.eval.inputs[:4]), atol=1e-4)


@pytest.mark.parametrize("method", ["full", "linear_probe", "lora"])
def test_finetune_a_bare_module_by_each_method_with_own_loss_and_metric(fmnist, method, tmp_path):
    torch.manual_seed(0)
    loss = CountingLoss()
    config = edgetl.FinetuneConfig(method=method, max_steps=3, batch_size=32,
                                   **({"lora": {"targets": ["features.3"]}} if method == "lora" else {}))

    result = edgetl.finetune((Net(), PRE), loader(fmnist.train, shuffle=True), loader(fmnist.eval), config,
                             out=tmp_path / "model", loss=loss, metric=percent_correct, labels=fmnist.label_names)

    m = result.metrics
    assert m["method"] == method and m["steps"] == 3 and loss.calls > 0
    assert m["best_eval_accuracy"] > 1 and m["trainable_params"] <= m["total_params"]  # percent scale
    assert result.model.label_names == fmnist.label_names
    again = load_model(result.path, module=Net())  # LoRA came back merged: the plain architecture loads it
    raw = fmnist.eval.inputs[:8]
    np.testing.assert_allclose(predict_logits(again, raw), predict_logits(result.model, raw), atol=1e-5)


def test_finetune_options_that_do_not_fit_the_method_are_refused(fmnist):
    with pytest.raises(edgetl.RecipeError, match="1 problem") as err:
        edgetl.finetune((Net(), PRE), fmnist, config={"method": "lora", "lr_decay": 0.8})
    assert err.value.problems[0].startswith("lr_decay: only used with method: full")
