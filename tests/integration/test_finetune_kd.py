"""`kd:` inside the finetune stage: a second fine-tune distils from the first one's model (any method), and a
finetune with KD but nothing to learn from is a recipe error at validate time."""

import copy

import numpy as np
import pytest

from edgetl.errors import RecipeError
from edgetl.pipeline.runner import compress, validate
from edgetl.recipe.load import parse_recipe

RECIPE = {
    "name": "t-finetune-kd", "seed": 0,
    "model": {"source": "tiny_cnn", "pretrained": False},
    "data": {"name": "fashion_mnist", "train_limit": 300, "eval_limit": 100},
    "stages": [
        {"type": "finetune", "epochs": 2, "batch_size": 64, "lr": 0.01},
        {"type": "finetune", "name": "student", "method": "lora", "max_steps": 3, "batch_size": 64, "lr": 0.001,
         "kd": {"alpha": 0.2, "temperature": 2.0, "features": [{"student": "block", "teacher": "block"}],
                "cache": False}},
    ],
}


def test_finetune_with_kd_from_an_earlier_artifact(tmp_path):
    report = compress(parse_recipe(copy.deepcopy(RECIPE), tmp_path), tmp_path)
    stage = report["stages"][1]["metrics"]
    assert stage["kd"]["teacher"] == "finetuned"
    assert stage["kd"]["teacher_forward_passes"] >= 3 and stage["kd"]["features"] == 1
    student = next(a for a in report["artifacts"] if a["name"] == "student")
    assert student["kd_teacher"] == "finetuned" and student["method"] == "lora"


def test_finetune_kd_logit_cache_is_reused_across_epochs(tmp_path):
    recipe = copy.deepcopy(RECIPE)
    recipe["stages"][1].update(method="full", max_steps=None, epochs=2, kd={"alpha": 0.0, "cache": True})
    report = compress(parse_recipe(recipe, tmp_path), tmp_path)
    kd = report["stages"][1]["metrics"]["kd"]
    assert kd["cache_misses"] > 0 and kd["cache_hits"] >= kd["cache_misses"]  # epoch 2 reads epoch 1's logits
    assert list((tmp_path / "cache").glob("teacher-logits-*.npz"))


def test_pure_kd_pulls_the_student_towards_the_teacher(tmp_path):
    """alpha 0 (KD only) from a trained teacher into a fresh copy: the student ends up agreeing with the teacher
    on held-out data far more than chance, although it never saw a label."""
    from edgetl.models.base import load_model
    from edgetl.train.loop import predict_logits

    recipe = copy.deepcopy(RECIPE)
    recipe["stages"] = [recipe["stages"][0]]
    compress(parse_recipe(recipe, tmp_path / "teacher"), tmp_path / "teacher")
    teacher_dir = next((tmp_path / "teacher/stages").glob("*-finetune-*")) / "model"
    student = copy.deepcopy(RECIPE)
    student["stages"] = [{"type": "finetune", "epochs": 3, "batch_size": 64, "lr": 0.01,
                          "kd": {"teacher": str(teacher_dir), "alpha": 0.0, "temperature": 1.0}}]
    compress(parse_recipe(student, tmp_path / "student"), tmp_path / "student")
    from edgetl.data.datasets import load_data

    data = load_data(parse_recipe(student, tmp_path / "student").data)
    t = predict_logits(load_model(teacher_dir), data.eval.inputs).argmax(-1)
    s_dir = next((tmp_path / "student/stages").glob("*-finetune-*")) / "model"
    s = predict_logits(load_model(s_dir), data.eval.inputs).argmax(-1)
    assert float(np.mean(s == t)) >= 0.5  # 10 classes: chance agreement is about 0.1


@pytest.mark.parametrize("kd, message", [
    ({}, "stages.0.kd.teacher: no earlier stage gives a teacher"),
    ({"teacher": "nope"}, "stages.0.kd.teacher: 'nope' is neither"),
])
def test_finetune_kd_without_a_teacher_is_a_recipe_error(tmp_path, kd, message):
    recipe = copy.deepcopy(RECIPE)
    recipe["stages"] = [dict(recipe["stages"][0], kd=kd)]
    with pytest.raises(RecipeError) as err:
        validate(parse_recipe(recipe, tmp_path))
    assert any(message in p for p in err.value.problems), err.value.problems
