"""The finetune stage's `adapt:` option: the alignment term under every method, target data with and without
labels, bad configurations found by `validate`, and a tiny recipe end to end (adapt -> export -> INT8 calibrated
on the target -> accuracy on the target)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgetl.data.datasets import load_data, load_target
from edgetl.errors import RecipeError
from edgetl.finetune.config import FinetuneConfig
from edgetl.finetune.domain import run_adapted
from edgetl.finetune.methods import run_method
from edgetl.models.zoo import load_source
from edgetl.pipeline.runner import compress, validate
from edgetl.recipe.load import load_recipe, parse_recipe
from edgetl.recipe.schema import DataConfig, ModelConfig
from edgetl.testing.recipes import tiny_text_recipe, tiny_vision_recipe
from edgetl.train.loop import evaluate

DIGITS = {"name": "digits", "eval_limit": 100}


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig(name="mnist_5k", train_limit=96, eval_limit=50))


@pytest.fixture(scope="module")
def digits():
    return load_target(DataConfig(**DIGITS))


@pytest.mark.parametrize("method, align", [("full", "coral"), ("lora", "mmd"), ("adapter", "dann")])
def test_the_alignment_term_sees_source_and_target_features_under_every_method(mnist, digits, method, align):
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", mnist.label_names)
    cfg = FinetuneConfig(method=method, epochs=1, batch_size=32, lr=1e-3, max_steps=3,
                         adapt={"method": align, "target": DIGITS})
    outcome = run_method(cfg, model, mnist, 0, target_inputs=digits.inputs)
    stats = outcome.facts["adapt_alignment"]
    assert stats["alignment_calls"] == 3 and stats["mean_alignment_loss"] > 0
    if align == "dann":  # the domain classifier learned something, and the reversal schedule ran to the end
        assert 0 < stats["mean_domain_accuracy"] <= 1 and stats["final_reversal_coefficient"] > 0.99


def test_images_without_class_folders_are_unlabelled_target_data(tmp_path):
    rng = np.random.default_rng(0)
    site = tmp_path / "site"
    site.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(site / f"{i}.png")
    for c in ("cat", "dog"):
        (tmp_path / "eval" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "eval" / c / "a.png")
    target = load_target(DataConfig(name="imagefolder", path=str(site)))
    assert target.inputs.shape == (5, 12, 12, 3) and target.eval is None
    labelled = load_target(DataConfig(name="imagefolder", path=str(site), eval_path=str(tmp_path / "eval")))
    assert labelled.label_names == ["cat", "dog"] and labelled.eval.labels.tolist() == [0, 1]


def problems_of(recipe):
    with pytest.raises(RecipeError) as err:
        validate(parse_recipe(recipe))
    return err.value.problems


def with_adapt(recipe, stage0=None, quantize=None, benchmark=None, **adapt):
    stages = recipe["stages"]
    stages[0].update(stage0 or {})
    if adapt:
        stages[0]["adapt"] = {"target": DIGITS, **adapt}
    stages[2].update(quantize or {})
    stages[3].update(benchmark or {})
    return recipe


@pytest.mark.parametrize("recipe, path, words", [
    (with_adapt(tiny_vision_recipe(), method="coral", target={"name": "rotten_tomatoes"}),
     "stages.0.adapt.target.name", "text data"),
    (with_adapt(tiny_text_recipe(), method="mmd"), "stages.0.adapt.target.name", "image data"),
    (with_adapt(tiny_vision_recipe(), {"method": "linear_probe"}, method="dann"), "stages.0.adapt.method",
     "linear_probe freezes the backbone"),
    (with_adapt(tiny_vision_recipe(), method="adabn", weight=2.0), "stages.0.adapt.weight", "only used by"),
    (with_adapt(tiny_vision_recipe(), method="coral", layer="no_such_block"), "stages.0.adapt.layer",
     "'no_such_block' is not a module"),
    (with_adapt(tiny_text_recipe(), method="adabn", target={"name": "csv", "path": "/nonexistent.csv"}),
     "stages.0.adapt.method", "no BatchNorm"),
    (with_adapt(tiny_vision_recipe(), method="coral", target={"name": "fashion_mnist", "train_limit": 1000,
                                                              "eval_limit": 300}),
     "stages.0.adapt.target", "the training data itself"),
    (with_adapt(tiny_vision_recipe(), method="coral", target={"name": "imagefolder", "path": "/nonexistent"}),
     "stages.0.adapt.target.path", "does not exist"),
    (with_adapt(tiny_vision_recipe(), method="coral", typo=1), "stages.0.adapt.typo", "unknown field"),
    (with_adapt(tiny_vision_recipe(), quantize={"calibration_data": "target"}), "stages.2.calibration_data",
     "there is none"),
    (with_adapt(tiny_vision_recipe(), benchmark={"eval_data": "target"}), "stages.3.eval_data", "there is none"),
])
def test_bad_adapt_configs_are_reported_with_their_field_path(recipe, path, words):
    problems = problems_of(recipe)
    hit = [p for p in problems if p.startswith(path + ":")]
    assert hit and words in hit[0], problems


def test_an_unlabelled_target_has_no_accuracy_to_benchmark(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(site / "a.png")
    recipe = with_adapt(tiny_vision_recipe(), benchmark={"eval_data": "target"}, method="coral",
                        target={"name": "imagefolder", "path": str(site)})
    problems = problems_of(recipe)
    assert any(p.startswith("stages.3.eval_data:") and "unlabelled" in p for p in problems), problems


@pytest.mark.parametrize("adapt", [
    {"method": "dann", "layer": "dw.4"},
    {"method": "adabn"},
    {"method": "mmd", "weight": 0.5, "source_only": False},
])
def test_good_adapt_configs_validate(adapt):
    validate(parse_recipe(with_adapt(tiny_vision_recipe(), {"method": "lora"}, {"calibration_data": "target"},
                                     {"eval_data": "target"}, **adapt)))


def test_a_relative_target_path_is_relative_to_the_recipe_file(tmp_path):
    (tmp_path / "site").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "site" / "a.png")
    recipe = with_adapt(tiny_vision_recipe(), method="coral", target={"name": "imagefolder", "path": "site"})
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    loaded = load_recipe(tmp_path / "r.yaml")
    assert loaded.stages[0].adapt.target.path == str((tmp_path / "site").resolve())


def test_adabn_reports_source_only_and_adapted_accuracy_on_target_and_source(mnist, digits):
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", mnist.label_names)
    cfg = FinetuneConfig(epochs=1, batch_size=32, lr=1e-3, max_steps=2,
                         adapt={"method": "adabn", "target": DIGITS})
    outcome, facts = run_adapted(cfg, model, mnist, digits, 0, train=lambda c, m: run_method(c, m, mnist, 0))
    assert facts["batchnorm_layers"] == 5 and facts["examples"] == len(digits.inputs)
    assert facts["target_accuracy"] == pytest.approx(evaluate(model, digits.eval), abs=1e-4)
    assert facts["mean_abs_running_mean_change"] > 0.01
    assert set(facts["source_only"]) == {"target_accuracy", "source_accuracy", "train_seconds"}


def test_a_tiny_recipe_adapts_quantizes_on_target_data_and_measures_on_the_target(tmp_path):
    method = "coral"
    torch.manual_seed(0)
    recipe = tiny_vision_recipe(data={"name": "mnist_5k", "train_limit": 300, "eval_limit": 80})
    recipe["stages"][0].update({"epochs": 1, "batch_size": 32})
    with_adapt(recipe, quantize={"calibration_data": "target", "samples": 40},
               benchmark={"eval_data": "target", "iterations": 10}, method=method)
    report = compress(parse_recipe(recipe), tmp_path / "run")
    facts = next(s for s in report["stages"] if s["type"] == "finetune")["metrics"]["adapt"]
    base = facts["source_only"]
    assert facts["target_eval_examples"] == 100
    assert 0 <= base["target_accuracy"] <= 1 and 0 <= facts["target_accuracy"] <= 1
    assert facts["target_gain"] == pytest.approx(facts["target_accuracy"] - base["target_accuracy"], abs=1e-4)
    int8 = next(a for a in report["artifacts"] if a["precision"] == "int8")
    assert int8["calibration_data"] == "target" and int8["calibration_samples"] == 40
    assert int8["accuracy_source"].endswith("on 100 eval examples of the adaptation target")  # digits', not mnist's 80
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Domain adaptation" in markdown and "source-only" in markdown
    quant = next(s for s in report["stages"] if s["type"] == "quantize")["metrics"]
    assert quant["calibration_data"] == "target"
