"""A saved model folder names its extra files in model.json; a name that leads out of the folder is refused
when the folder is loaded, before any stage could copy it somewhere outside the run."""

import json

import pytest

from edgetl.errors import ModelError
from edgetl.models.base import load_model, save_model
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import ModelConfig

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture
def saved(tmp_path):
    model = load_source(ModelConfig(source="tiny_cnn", pretrained=False, input_size=32), "image", LABELS)
    folder = tmp_path / "shared" / "saved-model"
    save_model(model, folder)
    return folder


def _set_files(folder, value):
    meta = json.loads((folder / "model.json").read_text())
    meta["files"] = value
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("name", "why"), [
    ("../../x/authorized_keys", "holds a path separator"),
    ("..", "is '..'"),
    ("/root/.ssh/authorized_keys", "is an absolute path"),
    ("sub/tokenizer.json", "holds a path separator"),
    ("..\\x", "holds a backslash"),
    ("tok\x00enizer.json", "holds a NUL character"),
    (7, "is not a string"),
])
def test_a_file_name_leading_out_of_the_folder_is_refused_naming_folder_field_and_value(saved, name, why):
    _set_files(saved, [name])
    with pytest.raises(ModelError) as err:
        load_model(saved)
    text = err.value.render()
    assert f"{saved / 'model.json'}: field `files` holds {name!r}, which {why}" in text
    assert "save the model again" in text


def test_files_must_be_a_list(saved):
    _set_files(saved, {"tokenizer.json": "../x"})
    with pytest.raises(ModelError, match="field `files` is a dict, expected a list of file names"):
        load_model(saved)


def test_a_listed_symlink_leading_out_of_the_folder_is_refused(saved, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the run")
    (saved / "tokenizer.json").symlink_to(secret)
    _set_files(saved, ["tokenizer.json"])
    with pytest.raises(ModelError, match="'tokenizer.json', which is a symlink that leads out of the folder"):
        load_model(saved)


def test_plain_names_still_load_and_save_again(saved, tmp_path):
    (saved / "notes.json").write_text("{}")
    _set_files(saved, ["notes.json"])
    model = load_model(saved)
    save_model(model, tmp_path / "again")
    assert (tmp_path / "again" / "notes.json").read_text() == "{}"
    assert json.loads((tmp_path / "again" / "model.json").read_text())["files"] == ["notes.json"]


def test_save_refuses_a_bad_name_before_writing_anything(saved, tmp_path):
    model = load_model(saved)
    model.files = {"../escape.json": saved / "model.json"}
    with pytest.raises(ModelError, match="'../escape.json' holds a path separator"):
        save_model(model, tmp_path / "out" / "model")
    assert not (tmp_path / "out").exists()


def test_a_crafted_source_folder_stops_the_run_before_any_stage_writes(saved, tmp_path):
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe
    from edgetl.testing.recipes import tiny_vision_recipe

    planted = tmp_path / "x" / "authorized_keys"
    planted.parent.mkdir()
    planted.write_text("ssh-ed25519 AAAA attacker")
    _set_files(saved, ["../../x/authorized_keys"])
    recipe = tiny_vision_recipe(model={"source": str(saved), "input_size": 32},
                                stages=[{"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02}])
    recipe["data"].update(train_limit=64, eval_limit=32)
    run = tmp_path / "run"
    with pytest.raises(ModelError, match="field `files` holds '../../x/authorized_keys'"):
        compress(parse_recipe(recipe), run)
    assert sorted(tmp_path.rglob("authorized_keys")) == [planted]
    assert not list(run.rglob("model.safetensors"))
