"""Optimisation-profile shapes from `--shapes` / the recipe, resolved against the model's named axes."""

import pytest

from edgetl.errors import RecipeError
from edgetl.trt.shapes import describe, parse_range, parse_shapes, resolve_profile

IMAGE = [{"name": "pixel_values", "shape": ["batch", 3, 64, 64]}]
TEXT = [{"name": "input_ids", "shape": ["batch", "sequence"]}, {"name": "attention_mask", "shape": ["batch", "sequence"]}]


def test_cli_syntax_parses_ranges_and_fixed_sizes():
    assert parse_shapes("batch=1:8:32, sequence=128") == {"batch": (1, 8, 32), "sequence": (128, 128, 128)}
    assert parse_shapes("") == {} and parse_shapes(None) == {}


@pytest.mark.parametrize("text, needle", [
    ("batch", "is not AXIS=MIN:OPT:MAX"),
    ("batch=1:2", "needs 1 or 3 values"),
    ("batch=8:1:32", "1 <= min <= opt <= max"),
    ("batch=0", "1 <= min"),
    ("batch=a:b:c", "not a whole number"),
    ("batch=1,batch=2", "given twice"),
])
def test_bad_shapes_say_what_was_wrong(text, needle):
    with pytest.raises(RecipeError, match=needle):
        parse_shapes(text)


def test_recipe_lists_and_ints_are_accepted():
    assert parse_range("batch", [1, 4, 16]) == (1, 4, 16)
    assert parse_range("sequence", 64) == (64, 64, 64)
    with pytest.raises(RecipeError, match="stages.3.shapes.batch"):
        parse_range("batch", [4, 1, 2], where="stages.3.shapes.batch")


def test_image_defaults_to_batch_1_1_32_with_static_dims_kept():
    prof = resolve_profile(IMAGE)
    assert prof == {"pixel_values": ((1, 3, 64, 64), (1, 3, 64, 64), (32, 3, 64, 64))}
    assert describe(prof)["pixel_values"]["max"] == [32, 3, 64, 64]


def test_text_defaults_use_max_length_and_user_ranges_override():
    prof = resolve_profile(TEXT, {"batch": (1, 4, 8)}, task="text", max_length=64)
    assert prof["input_ids"] == ((1, 1), (4, 64), (8, 64))
    assert prof["attention_mask"] == prof["input_ids"]


def test_an_axis_the_model_does_not_have_is_an_error_not_ignored():
    with pytest.raises(RecipeError, match="sequense") as err:
        resolve_profile(TEXT, {"sequense": (1, 8, 8)}, task="text")
    assert "batch, sequence" in str(err.value)


def test_unnamed_dynamic_dims_need_an_explicit_range():
    inputs = [{"name": "x", "shape": [-1, 3, -1]}]
    with pytest.raises(RecipeError, match=r"dimension 2 is dynamic \('x:2'\)") as err:
        resolve_profile(inputs)
    assert "x:2=MIN:OPT:MAX" in err.value.hint
    assert resolve_profile(inputs, {"x:2": (5, 6, 7)})["x"] == ((1, 3, 5), (1, 3, 6), (32, 3, 7))
