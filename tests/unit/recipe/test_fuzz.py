"""Property: no mutant of a shipped recipe (keys, types, values, bytes, nesting, aliases, duplicates, `--set`
paths and values) makes load + validate raise anything but an EdgetlError, and the error prints in a few
short lines. benchmarks/fuzz_recipes.py runs the same property on thousands of cases."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from edgetl.testing.recipe_fuzz import Case, check_case, recipe_cases, shipped_recipes

BASES = shipped_recipes(Path(__file__).resolve().parents[3] / "recipes")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(case=recipe_cases(BASES))
def test_a_mutated_recipe_validates_or_fails_with_a_short_edgetl_error(case, work_dir):
    assert check_case(case, work_dir) in ("ok", "error")


def test_the_shipped_recipes_themselves_pass(work_dir):
    outcomes = {name: check_case(Case(name, text.encode()), work_dir) for name, text in BASES}
    # jetson-nightly needs TensorRT and a GPU, which this machine may lack
    assert all(v == "ok" for n, v in outcomes.items() if n != "jetson-nightly.yaml"), outcomes
