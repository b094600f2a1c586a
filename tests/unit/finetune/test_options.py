"""Bad fine-tuning options are recipe errors with their field path, found by `validate` before training."""

import pytest

from edgetl.errors import RecipeError
from edgetl.pipeline.runner import validate
from edgetl.recipe.load import parse_recipe
from edgetl.testing.recipes import tiny_text_recipe, tiny_vision_recipe


def problems_of(recipe):
    with pytest.raises(RecipeError) as err:
        validate(parse_recipe(recipe))
    return err.value.problems


def finetune(recipe_fn, **options):
    recipe = recipe_fn()
    recipe["stages"][0].update(options)
    return recipe


@pytest.mark.parametrize("options, path, words", [
    ({"method": "lora", "lora": {"rank": 0}}, "stages.0.lora.rank", "greater than or equal to 1"),
    ({"method": "lora", "lora": {"targets": ["no_such_layer"]}}, "stages.0.lora.targets", "'no_such_layer' matches no module"),
    ({"method": "lora", "lora": {"targets": ["stem.1"]}}, "stages.0.lora.targets", "BatchNorm2d"),
    ({"method": "adapter", "adapter": {"targets": ["blok"]}}, "stages.0.adapter.targets", "matches no module"),
    ({"method": "full", "epochs": 9, "unfreeze": [0, 1, 2, 3, 4, 5]}, "stages.0.unfreeze", "only 4 depth groups"),
    ({"method": "full", "epochs": 2, "unfreeze": [0, 1, 2]}, "stages.0.unfreeze", "epoch 2 never comes"),
    ({"method": "full", "unfreeze": [0, 2, 1]}, "stages.0.unfreeze", "must not decrease"),
    ({"method": "full", "lr_groups": {"stemm": 1e-4}}, "stages.0.lr_groups", "'stemm' is not a module"),
    ({"method": "full", "lora": {"rank": 4}}, "stages.0.lora", "only used with method: lora"),
    ({"method": "lora", "lr_decay": 0.8}, "stages.0.lr_decay", "only used with method: full"),
    ({"method": "fancy"}, "stages.0.method", "full"),
    ({"forgetting": {"method": "ewc", "fisher_data": {"name": "rotten_tomatoes"}}}, "stages.0.forgetting.fisher_data.name",
     "text data"),
])
def test_bad_vision_options_are_reported_with_their_field_path(options, path, words):
    problems = problems_of(finetune(tiny_vision_recipe, **options))
    hit = [p for p in problems if p.startswith(path + ":")]
    assert hit and words in hit[0], problems


def test_text_checks_use_the_transformer_architecture():
    problems = problems_of(finetune(tiny_text_recipe, augment=["flip"], method="lora",
                                    lora={"targets": ["query", "nonexistent"]}))
    assert any(p.startswith("stages.0.augment:") and "text" in p for p in problems)
    assert any(p.startswith("stages.0.lora.targets:") and "'nonexistent'" in p for p in problems)
    assert not any("'query'" in p for p in problems)


@pytest.mark.parametrize("options", [
    {"method": "lora", "lora": {"rank": 4, "targets": ["query", "value"]}},
    {"method": "adapter", "adapter": {"style": "pfeiffer"}},
    {"method": "linear_probe"},
    {"method": "full", "epochs": 3, "unfreeze": [0, 1, 2], "lr_decay": 0.7},
    {"method": "full", "forgetting": {"method": "lwf"}},
])
def test_good_options_validate(options):
    validate(parse_recipe(finetune(tiny_text_recipe, **options)))
