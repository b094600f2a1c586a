from pathlib import Path

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


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[3] / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_passes_validate(repo_root, name):
    """`edgetl validate` on each recipe under recipes/: what it checks before a run (stage order, fields that
    contradict, extras installed). A machine without TensorRT may refuse only the TensorRT stages."""
    from edgetl.pipeline.runner import validate
    from edgetl.trt.device import static_problem

    recipe = load_recipe(repo_root / "recipes" / name)
    try:
        validate(recipe, name)
    except RecipeError as err:
        trt_only = all("needs tensorrt" in p for p in err.problems)
        assert static_problem() is not None and trt_only, err.problems


# Untrusted input: every bad file or override is a RecipeError naming the file, field or --set, in few lines.


def write(tmp_path, text: str | bytes, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def recipe_text(**overrides) -> str:
    return yaml.safe_dump(tiny_vision_recipe(**overrides), sort_keys=False)


def test_non_utf8_file_names_the_file_and_byte_offset(tmp_path):
    path = write(tmp_path, b"name: caf\xe9\n")
    with pytest.raises(RecipeError, match=r"r\.yaml is not UTF-8 text: byte 9 \(line 1\)"):
        load_recipe(path)


def test_folder_and_oversized_file_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="is a folder"):
        load_recipe(tmp_path)
    with pytest.raises(RecipeError, match="larger than 256 KiB"):
        load_recipe(write(tmp_path, "name: " + "x" * 300_000))


def test_deep_nesting_is_refused_before_the_parser_recurses(tmp_path):
    path = write(tmp_path, recipe_text() + "deep: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(RecipeError, match="nested more than 32 levels"):
        load_recipe(path)


def test_alias_bomb_is_refused_with_a_short_message(tmp_path):
    bomb = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n")
    path = write(tmp_path, recipe_text().replace("- type: export", "- type: *c") + bomb)
    with pytest.raises(RecipeError, match="anchors and aliases") as err:
        load_recipe(path)
    assert len(err.value.render()) < 500


def test_a_key_given_twice_names_both_lines(tmp_path):
    text = recipe_text()
    path = write(tmp_path, text + "stages:\n- type: export\n")
    first = text.splitlines().index("stages:") + 1
    last = len(text.splitlines()) + 1
    with pytest.raises(RecipeError, match=f"key 'stages' is given twice, on line {first} and on line {last}"):
        load_recipe(path)


@pytest.mark.parametrize("value", ["2024-13-45", "!!int abc", "!!python/object/apply:os.system ['true']"])
def test_yaml_values_that_cannot_be_built_are_recipe_errors(tmp_path, value):
    path = write(tmp_path, recipe_text().replace("name: tiny-vision", f"name: {value}"))
    with pytest.raises(RecipeError, match="line 1"):
        load_recipe(path)


@pytest.mark.parametrize(("assignment", "message"), [
    ("stages.0.epochs=[", "--set stages.0.epochs=[: the value is not valid YAML"),
    ("stages.0.epochs=!!int abc", "--set stages.0.epochs=!!int abc: the value is not valid YAML"),
    ("stages.0.epochs=2024-13-45", "--set stages.0.epochs=2024-13-45: the value is not valid YAML"),
    ("stages.²=1", "--set stages.²=1: stages.² is not an index"),
    ("stages.0" + "0" * 5000 + "=1", "is not an index"),
])
def test_bad_set_values_and_paths_name_the_override(tmp_path, assignment, message):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, recipe_text()), [assignment])
    assert message in str(err.value)


def test_a_problem_caused_by_set_names_the_override_not_just_the_file(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, recipe_text()), ["stages.0.epochs=abc", "stages.0.lr=.nan"])
    assert any(p.startswith("--set stages.0.epochs=abc: stages.0.epochs:") for p in err.value.problems)
    assert any(p.startswith("--set stages.0.lr=.nan: stages.0.lr:") for p in err.value.problems)


def test_a_validate_problem_caused_by_set_names_the_override(tmp_path):
    from edgetl.pipeline.runner import validate

    recipe = load_recipe(write(tmp_path, recipe_text()), ["model.pooling=cls"])
    with pytest.raises(RecipeError) as err:
        validate(recipe)
    assert err.value.problems[0].startswith("--set model.pooling=cls: model.pooling:")


@pytest.mark.parametrize("where", [
    ("stages", 0, "lr"), ("stages", 0, "epochs"), ("stages", 1, "parity_atol"), ("targets", "max_latency_ms"),
    ("data", "eval_fraction"), ("stages", 0, "lora", "alpha"), ("stages", 0, "lr_groups", "features.0"),
])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_float_field_refuses_nan_and_infinity(where, value):
    data = tiny_vision_recipe(targets={})
    node = data
    for key in where[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[where[-1]] = value
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    field = ".".join(map(str, where))
    assert f"{field}: Input should be a finite number" in err.value.problems


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("seed", 2**70, False), ("seed", -1, False), ("seed", 2**32, False), ("seed", 2**32 - 1, True),
    ("split_seed", -1, False), ("split_seed", 2**70, False), ("split_seed", 7, True),
])
def test_seeds_are_between_0_and_2_to_the_32(field, value, ok):
    data = tiny_vision_recipe()
    (data["data"] if field == "split_seed" else data)[field] = value
    if ok:
        parse_recipe(data)
    else:
        with pytest.raises(RecipeError) as err:
            parse_recipe(data)
        assert [p for p in err.value.problems if p.startswith(("seed:", "data.split_seed:"))]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "a\x00b", "tab\there", "", "x" * 5_000_000, "é" * 60])
@pytest.mark.parametrize("where", ["run", "stage"])
def test_run_and_stage_names_must_be_safe_folder_names(name, where):
    data = tiny_vision_recipe()
    if where == "run":
        data["name"] = name
    else:
        data["stages"][1]["name"] = name
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    field = "name" if where == "run" else "stages.1.name"
    assert [p for p in err.value.problems if p.startswith(f"{field}:")]
    assert len(err.value.render()) < 1000


def test_a_plain_run_name_with_spaces_and_unicode_is_fine():
    assert parse_recipe(tiny_vision_recipe(name="Kleider-Modell v2 (é)")).name == "Kleider-Modell v2 (é)"


def test_data_path_beside_a_named_dataset_is_an_error():
    with pytest.raises(RecipeError) as err:
        parse_recipe(tiny_vision_recipe(data={"name": "fashion_mnist", "path": "my/images", "eval_path": "x"}))
    assert {p.split(":")[0] for p in err.value.problems} == {"data.path", "data.eval_path"}
    assert parse_recipe(tiny_vision_recipe(data={"name": "imagefolder", "path": "/data/images"})).data.path


def test_nul_bytes_and_lone_surrogates_are_refused_anywhere():
    data = tiny_vision_recipe(data={"name": "csv", "path": "a\x00b.csv"})
    data["stages"][0]["lr_groups"] = {"features.\ud800": 0.1}
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    fields = [p.split(":")[0] for p in err.value.problems]
    assert "data.path" in fields and "stages.0.lr_groups.'features.\\ud800'" in fields


def test_long_error_lists_are_cut_at_50_and_values_at_80_characters():
    data = tiny_vision_recipe()
    data["stages"] = [{"type": "sparsify" + "x" * 200} for _ in range(80)]
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    lines = err.value.render().splitlines()
    assert "  ... and 30 more" in lines
    assert len(lines) == 1 + 50 + 1 + 1  # header, 50 problems, the count of the rest, the hint
    assert max(len(line) for line in lines) < 300


def test_more_than_100_stages_is_one_problem():
    data = tiny_vision_recipe()
    data["stages"] = [{"type": "export"}] * 101
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    assert err.value.problems == ["stages: List should have at most 100 items after validation, not 101"]
