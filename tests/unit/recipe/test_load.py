import pytest
import yaml

from edgetl.errors import RecipeError
from edgetl.recipe.load import apply_override, load_recipe, parse_recipe
from edgetl.testing.recipes import tiny_vision_recipe


def test_valid_recipe_parses_every_stage():
    data = tiny_vision_recipe()
    recipe = parse_recipe(data)
    assert [s.type for s in recipe.stages] == ["finetune", "export", "quantize", "benchmark"]
    assert recipe.stages[0].epochs == data["stages"][0]["epochs"]


def test_misspelt_stage_key_names_its_field_path():
    data = tiny_vision_recipe()
    data["stages"][1]["opsett"] = 17
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    assert any(p.startswith("stages.1.opsett:") and "unknown field" in p for p in err.value.problems)


def test_every_problem_is_reported_at_once():
    data = tiny_vision_recipe()
    data["stages"][0]["epochs"] = -1
    data["stages"][2]["calibration"] = "magic"
    data["model"]["colour"] = "red"
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    paths = {p.split(":")[0] for p in err.value.problems}
    assert {"stages.0.epochs", "stages.2.calibration", "model.colour"} <= paths


def test_unknown_stage_type_lists_the_known_ones():
    data = tiny_vision_recipe()
    data["stages"].append({"type": "sparsify"})
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    (problem,) = err.value.problems
    assert problem.startswith("stages.4:") and "sparsify" in problem and "finetune" in problem


def test_set_override_parses_yaml_values(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_vision_recipe()))
    recipe = load_recipe(path, ["stages.0.epochs=3", "data.train_limit=100", "stages.2.per_channel=false"])
    assert recipe.stages[0].epochs == 3
    assert recipe.data.train_limit == 100
    assert recipe.stages[2].per_channel is False


@pytest.mark.parametrize("assignment", ["stages.9.epochs=1", "stages.x.epochs=1", "noequals", "name.sub=1"])
def test_bad_override_is_a_recipe_error(assignment):
    with pytest.raises(RecipeError):
        apply_override(tiny_vision_recipe(), assignment)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)


def test_relative_data_path_resolves_against_recipe_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    data = tiny_vision_recipe(data={"name": "csv", "path": "reviews.csv"})
    path = tmp_path / "sub" / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_recipe(path).data.path == str(tmp_path / "sub" / "reviews.csv")


def test_shipped_recipes_parse(repo_root):
    for path in sorted((repo_root / "recipes").glob("*.yaml")):
        load_recipe(path)
