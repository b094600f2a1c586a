"""`kd.cache`: one file name per (teacher, data, student preprocessing), whichever stage asks."""

from pathlib import Path
from types import SimpleNamespace

from edgetl.distill.config import KDConfig
from edgetl.recipe.load import parse_recipe
from edgetl.report.artifact import Artifact
from edgetl.runtime.preprocess import Preprocessing
from edgetl.stages.kd import logit_cache_path
from edgetl.testing.recipes import tiny_vision_recipe

KD = KDConfig(cache=True)


def _ctx(tmp_path, data=None, **arts):
    recipe = parse_recipe(tiny_vision_recipe(**({"data": data} if data else {})))
    artifacts = {n: Artifact(name=n, stage="00-finetune", format="pytorch", precision="fp32", path=n, sha256=sha)
                 for n, sha in arts.items()}
    return SimpleNamespace(recipe=recipe, artifacts=artifacts, run_dir=tmp_path)


def _student(size=32, mean=(0.5, 0.5, 0.5)):
    return SimpleNamespace(preprocessing=Preprocessing(kind="image", input_names=["pixel_values"], size=size,
                                                       mean=list(mean)))


def test_the_same_teacher_data_and_student_give_the_same_file(tmp_path):
    a = logit_cache_path(_ctx(tmp_path, finetuned="aa"), KD, "finetuned", _student())
    b = logit_cache_path(_ctx(tmp_path, finetuned="aa"), KDConfig(cache=True, temperature=2.0, alpha=0.1),
                         "finetuned", _student())
    assert a == b  # temperature and alpha weigh the loss after the cache: the logits are the same
    assert a.parent == Path(tmp_path) / "cache" and a.name.startswith("teacher-logits-") and a.suffix == ".npz"


def test_another_teacher_data_or_student_preprocessing_gives_another_file(tmp_path):
    ctx = _ctx(tmp_path, finetuned="aa", pruned="bb")
    base = logit_cache_path(ctx, KD, "finetuned", _student())
    others = [
        logit_cache_path(ctx, KD, "pruned", _student()),  # another artifact
        logit_cache_path(_ctx(tmp_path, finetuned="cc"), KD, "finetuned", _student()),  # same name, retrained
        logit_cache_path(ctx, KD, "tiny_cnn", _student()),  # not an artifact: the recipe's model
        logit_cache_path(_ctx(tmp_path, data={"name": "mnist_5k", "train_limit": 1000}, finetuned="aa"), KD,
                         "finetuned", _student()),
        logit_cache_path(ctx, KD, "finetuned", _student(size=64)),
        logit_cache_path(ctx, KD, "finetuned", _student(mean=(0.0, 0.0, 0.0))),
    ]
    assert len({base, *others}) == len(others) + 1


def test_a_teacher_folder_is_keyed_by_its_content(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"one")
    ctx = _ctx(tmp_path)
    first = logit_cache_path(ctx, KD, str(folder), _student())
    assert logit_cache_path(ctx, KD, str(folder), _student()) == first
    (folder / "model.safetensors").write_bytes(b"two")
    assert logit_cache_path(ctx, KD, str(folder), _student()) != first


def test_no_file_without_kd_cache(tmp_path):
    ctx = _ctx(tmp_path, finetuned="aa")
    assert logit_cache_path(ctx, None, "finetuned", _student()) is None
    assert logit_cache_path(ctx, KDConfig(), "finetuned", _student()) is None
