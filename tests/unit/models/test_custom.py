"""`model.source: python:module:function`: a user's factory builds the model of a recipe run, the saved folders
rebuild through it, and a broken reference or factory is named before training."""

import sys
import textwrap

import numpy as np
import pytest

from edgetl.errors import ModelError, RecipeError
from edgetl.models.base import load_model
from edgetl.pipeline.fingerprint import HashCache, recipe_fingerprint
from edgetl.pipeline.runner import compress, validate
from edgetl.recipe.load import parse_recipe
from edgetl.train.loop import predict_logits

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    class Small(nn.Module):
        def __init__(self, num_labels):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
            self.fc = nn.Linear(32, num_labels)

        def forward(self, image):
            return self.fc(self.body(image).mean((2, 3)))

    def build(num_labels, pretrained=True, input_size=None):
        return Small(num_labels), {"size": input_size or 32, "mean": [0.5] * 3, "std": [0.25] * 3}

    def no_labels():
        return Small(10)

    def wrong_head(num_labels):
        return Small(3)
''')


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "own_factory_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "own_factory_mod", raising=False)  # this test's file, not an earlier one's
    return tmp_path / "own_factory_mod.py"


def recipe(source="python:own_factory_mod:build", stages=None, out=None):
    return parse_recipe({
        "name": "own", "seed": 0, "model": {"source": source, "input_size": 32},
        "data": {"name": "fashion_mnist", "train_limit": 128, "eval_limit": 64},
        "stages": stages or [{"type": "finetune", "max_steps": 2, "batch_size": 32}],
    }, out)


def test_a_recipe_runs_a_factory_model_and_its_pruned_folder_rebuilds_through_it(factory, tmp_path):
    stages = [{"type": "finetune", "max_steps": 2, "batch_size": 32},
              {"type": "prune", "target": {"ratio": 0.5}, "recovery": False, "measure_latency": False,
               "protect": "none"},
              {"type": "export"}]

    report = compress(recipe(stages=stages), tmp_path / "run")

    arts = {a["name"]: a for a in report["artifacts"]}
    assert arts["pruned"]["macs"] < arts["finetuned"]["macs"]
    assert arts["onnx_fp32"]["parent"] == "pruned"
    folder = tmp_path / "run" / arts["pruned"]["path"]
    again = load_model(folder)  # no module handed over: the builder calls the factory again
    assert again.builder["factory"] == "python:own_factory_mod:build" and again.preprocessing.input_names == ["image"]
    assert again.module.fc.in_features < 32  # the pruned width, restored from the checkpoint
    raw = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    assert predict_logits(again, raw).shape == (4, 10)


def test_editing_the_factory_changes_the_runs_key(factory):
    before = recipe_fingerprint(recipe(), HashCache(factory.parent / "h.json"))
    factory.write_text(FACTORY + "\n# a changed factory\n")

    after = recipe_fingerprint(recipe(), HashCache(factory.parent / "h.json"))

    assert before["model"]["sha256"] != after["model"]["sha256"]


@pytest.mark.parametrize(("source", "message"), [
    ("python:own_factory_mod", "does not name a factory function"),
    ("python:no_such_module_xyz:build", "the module 'no_such_module_xyz' of 'python:no_such_module_xyz:build' cannot "
                                        "be found"),
    ("python:own_factory_mod:nothing", "own_factory_mod has no function 'nothing'"),
])
def test_validate_names_a_broken_factory_reference(factory, source, message):
    with pytest.raises(RecipeError) as err:
        validate(recipe(source))

    assert any(p.startswith("model.source:") and message in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(("source", "message"), [
    ("python:own_factory_mod:no_labels", "takes (), but edgetl calls it with num_labels"),
    ("python:own_factory_mod:wrong_head", "outputs 3 logits per example but the data has 10 labels"),
])
def test_a_factory_that_breaks_the_contract_is_named_when_loaded(factory, tmp_path, source, message):
    with pytest.raises(ModelError, match="model.source|outputs") as err:
        compress(recipe(source), tmp_path / "run")

    assert message in str(err.value)
