"""`model: {source: auto, candidates: [...]}` and `edgetl rank` on tiny models and real Fashion-MNIST: a
tiny CNN fine-tuned on the data (its features separate the classes) against the same CNN with random weights."""

import json

import pytest
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import RecipeError
from edgetl.pipeline.runner import compress, validate
from edgetl.recipe.load import parse_recipe
from edgetl.testing.recipes import tiny_vision_recipe

FINETUNE = {"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02}


def _recipe(model: dict, **extra) -> dict:
    return tiny_vision_recipe(model={"input_size": 32, **model}, stages=[dict(FINETUNE)],
                              data={"name": "fashion_mnist", "train_limit": 200, "eval_limit": 100}, **extra)


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("trained")
    recipe = tiny_vision_recipe(stages=[{"type": "finetune", "epochs": 2, "batch_size": 64, "lr": 0.02}],
                                data={"name": "fashion_mnist", "train_limit": 400, "eval_limit": 100}, name="donor")
    compress(parse_recipe(recipe), out)
    return str(next((out / "stages").glob("00-finetune-*")) / "model")


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory, trained_folder):
    out = tmp_path_factory.mktemp("auto")
    recipe = _recipe({"source": "auto", "candidates": ["tiny_cnn", trained_folder], "rank_samples": 150})
    return out, compress(parse_recipe(recipe), out)


def test_auto_continues_with_the_candidate_the_scores_rank_first(auto_run, trained_folder):
    out, report = auto_run
    sel = report["model_selection"]
    assert sel["ranking"]["order"] == [trained_folder, "tiny_cnn"] and sel["ranking"]["chosen"] == trained_folder
    scores = {c["name"]: c["scores"] for c in sel["candidates"]}
    assert scores[trained_folder]["logme"] > scores["tiny_cnn"]["logme"]
    assert "leep" in scores[trained_folder] and "leep" not in scores["tiny_cnn"]  # random weights: no source head
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_selection"]["ranking"]["chosen"] == trained_folder
    assert manifest["recipe"]["model"]["source"] == trained_folder
    assert "Source model:" in (out / "report.md").read_text()


def test_the_chosen_source_keys_the_stages_like_a_recipe_that_names_it(auto_run, trained_folder):
    out, _ = auto_run
    direct = compress(parse_recipe(_recipe({"source": trained_folder})), out)
    assert [s["status"] for s in direct["stages"]] == ["reused"] and "model_selection" not in direct


def test_a_rerun_reuses_the_ranking_and_every_stage(auto_run, trained_folder):
    out, _ = auto_run
    again = compress(parse_recipe(_recipe({"source": "auto", "candidates": ["tiny_cnn", trained_folder],
                                           "rank_samples": 150})), out)
    assert again["model_selection"]["reused"] is True
    assert [s["status"] for s in again["stages"]] == ["reused"]


@pytest.mark.parametrize("model,message", [
    ({"source": "auto"}, "source: auto needs `candidates`"),
    ({"source": "tiny_cnn", "rank_by": "leep"}, "rank_by only apply to source: auto"),
    ({"source": "auto", "candidates": ["tiny_cnn", "tiny_cnn"]}, "lists tiny_cnn more than once"),
])
def test_selection_fields_are_checked_by_the_schema(model, message):
    with pytest.raises(RecipeError) as err:
        parse_recipe(_recipe(model))
    assert any(message in p for p in err.value.problems)


def test_validate_names_the_candidate_that_cannot_load():
    recipe = parse_recipe(_recipe({"source": "auto", "candidates": ["tiny_cnn", "no_such_model"]}))
    with pytest.raises(RecipeError) as err:
        validate(recipe)
    assert any(p.startswith("model.candidates.1: 'no_such_model' is not a zoo model") for p in err.value.problems)


def test_rank_command_writes_the_table_and_verify_correlates_with_fine_tuning(tmp_path, trained_folder):
    recipe = tmp_path / "r.json"  # JSON is YAML
    recipe.write_text(json.dumps(_recipe({"source": "tiny_cnn"}, name="rank-cli")))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["rank", str(recipe), "--candidates", f"tiny_cnn,{trained_folder}",
                                      "--samples", "100", "--latency-iterations", "5", "--verify", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ranked = json.loads((out / "rank.json").read_text())
    assert ranked["ranking"]["chosen"] == trained_folder
    accuracy = ranked["verify"]["accuracy"]
    assert accuracy[trained_folder] > accuracy["tiny_cnn"]  # it starts from weights that already fit the data
    assert ranked["verify"]["agreement"]["logme"]["top_pick_is_best"] is True
    assert ranked["verify"]["agreement"]["logme"]["kendall_tau"] == pytest.approx(1.0)
    assert all(c["latency_ms"]["p50"] > 0 for c in ranked["candidates"])
    assert "| 1 | " + trained_folder in (out / "rank.md").read_text() and (out / "rank.png").exists()


def test_rank_command_rejects_a_single_candidate(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(_recipe({"source": "tiny_cnn"})))
    result = CliRunner().invoke(app, ["rank", str(recipe), "--candidates", "tiny_cnn"])
    assert result.exit_code == 2 and "at least two different models" in result.output
