"""`edgetl search`: an Optuna study over a recipe's knobs, each trial a run folder, identical stages computed once
across trials and workers (the stage store), resumable, the chosen trial re-run at full size."""

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from edgetl.cli import app

pytest.importorskip("optuna")
pytest.importorskip("torch_pruning")


def _recipe(tmp_path, trials=3, **search):
    recipe = {
        "name": "tiny-search", "seed": 0,
        "model": {"source": "tiny_cnn", "input_size": 32},
        "data": {"name": "fashion_mnist", "train_limit": 400, "eval_limit": 150},
        "stages": [
            {"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02},
            {"type": "prune", "target": {"macs_ratio": 0.5}, "max_steps": 3, "batch_size": 64,
             "measure_latency": False, "protect": "none"},
            {"type": "export"},
            {"type": "benchmark", "iterations": 10, "warmup_seconds": 0.0},
        ],
        "targets": {"max_accuracy_drop": 0.5},
        "search": {"params": {"stages.1.target.macs_ratio": [0.3, 0.9]}, "trials": trials, **search},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _search(path, out, *args):
    return CliRunner().invoke(app, ["search", str(path), "--out", str(out), *args])


def test_trials_share_the_fine_tune_resume_and_the_chosen_trial_is_rerun(tmp_path):
    path, out = _recipe(tmp_path, trial_set=["data.train_limit=300"]), tmp_path / "study"
    res = _search(path, out)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "search.json").read_text())
    assert summary["counts"]["COMPLETE"] == 3 and [t["number"] for t in summary["trials"]] == [0, 1, 2]
    ratios = [t["params"]["stages.1.target.macs_ratio"] for t in summary["trials"]]
    assert len(set(ratios)) == 3 and all(0.3 <= r <= 0.9 for r in ratios)
    # one fine-tune for every trial: one folder in the store, hard-linked into each trial's own run folder
    tuned = {d.name for d in (out / "trials").glob("*/stages/00-finetune-*")}
    assert len(tuned) == 1
    weights = out / "store" / "stages" / tuned.pop() / "model" / "model.safetensors"
    for t in summary["trials"]:
        copy = next((out / "trials" / f"{t['number']:04d}" / "stages").glob("00-finetune-*")) / "model" / "model.safetensors"
        assert os.stat(copy).st_ino == os.stat(weights).st_ino
        assert json.loads((out / "trials" / f"{t['number']:04d}" / "report.json").read_text())["final"]
    # the candidates were timed again side by side, and the chosen one is the fastest of that measurement
    chosen, timed = summary["chosen"], [t for t in summary["trials"] if "p50_ms_interleaved" in t]
    assert len(timed) >= 2 and all(t["targets_passed"] for t in timed) and "interleaved" in summary["chosen_by"]
    assert chosen["p50_ms_interleaved"] == min(t["p50_ms_interleaved"] for t in timed)
    # the re-run drops the trials-only data.train_limit=300: a new fine-tune on the 400 examples of the recipe
    best = json.loads((out / "best" / "manifest.json").read_text())["recipe"]
    assert best["data"]["train_limit"] == 400 and summary["best"]["run"] == str(out / "best")
    assert (out / "search.md").exists() and (out / "search.png").exists()
    # the re-run, its FP32 baseline and a careful ONNX Runtime PTQ of that baseline, measured side by side
    points = summary["comparison"]["points"]
    assert set(points) == {"fp32", "edgetl", "ort-ptq-careful"} and points["fp32"]["speedup_vs_fp32"] == 1.0
    assert points["edgetl"]["accuracy"] == pytest.approx(summary["best"]["accuracy"], abs=1e-9)  # the same file
    report = json.loads((out / "best" / "report.json").read_text())
    baseline = next(a for a in report["artifacts"] if a["name"] == report["baseline"])
    assert points["fp32"]["accuracy"] == pytest.approx(baseline["accuracy"], abs=1e-9)
    assert abs(points["ort-ptq-careful"]["accuracy"] - points["fp32"]["accuracy"]) < 0.1
    assert summary["comparison"]["peer"]["calibration"] in ("MinMax", "Entropy", "Percentile")
    assert "careful ONNX Runtime PTQ" in (out / "search.md").read_text()

    again = _search(path, out, "--trials", "4")  # killed or finished, a study goes on from what it has
    assert again.exit_code == 0, again.output
    summary = json.loads((out / "search.json").read_text())
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2, 3]
    assert [t["params"]["stages.1.target.macs_ratio"] for t in summary["trials"][:3]] == ratios


def test_two_workers_join_one_study_and_compute_each_stage_once(tmp_path):
    path, out = _recipe(tmp_path, trials=4), tmp_path / "study"
    res = _search(path, out, "--workers", "2", "--no-rerun-best")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "search.json").read_text())
    numbers = [t["number"] for t in summary["trials"]]
    assert len(numbers) == len(set(numbers)) and summary["counts"]["COMPLETE"] >= 4
    assert summary["counts"].get("FAIL", 0) == 0
    tuned = list((out / "store" / "stages").glob("00-finetune-*"))
    assert len(tuned) == 1  # neither worker computed it a second time
    finished = {json.loads((d / "result.json").read_text())["finished"]
                for d in (out / "trials").glob("*/stages/00-finetune-*")}
    assert len(finished) == 1  # every trial holds the one fine-tune (copied, not recomputed)
    assert not list(out.rglob(".tmp-*"))  # no half-written folder left anywhere


def test_a_trial_already_below_the_accuracy_budget_is_pruned_before_its_later_stages(tmp_path):
    # a tiny CNN fine-tuned and pruned for a few steps cannot hold 0.99; each trial is stopped right after its
    # prune stage (1), so no export or benchmark runs for it, and the search says that none met the targets
    path, out = _recipe(tmp_path, trials=2, prune_slack=0.0), tmp_path / "study"
    recipe = yaml.safe_load(path.read_text())
    recipe["targets"] = {"min_accuracy": 0.99}
    path.write_text(yaml.safe_dump(recipe))
    res = _search(path, out, "--no-rerun-best")
    assert res.exit_code == 1 and "no finished trial met" in res.output, res.output
    summary = json.loads((out / "search.json").read_text())
    assert summary["counts"]["PRUNED"] == 2
    assert all(t["pruned"].startswith("pruned after stage 1: accuracy") for t in summary["trials"])
    assert not list((out / "trials").glob("*/stages/02-export-*"))
    assert list((out / "trials").glob("*/stages/01-prune-*"))
    assert "pruned after stage 1" in (out / "search.md").read_text()


def test_a_knob_that_is_not_a_recipe_field_or_no_search_block_exits_2(tmp_path):
    bad = _recipe(tmp_path)
    data = yaml.safe_load(bad.read_text())
    data["search"]["params"] = {"stages.9.target.macs_ratio": [0.3, 0.9]}
    bad.write_text(yaml.safe_dump(data))
    res = _search(bad, tmp_path / "a")
    assert res.exit_code == 2 and "stages.9" in res.output and "Traceback" not in res.output
    del data["search"]
    bad.write_text(yaml.safe_dump(data))
    res = _search(bad, tmp_path / "b")
    assert res.exit_code == 2 and "has no `search:` block" in res.output


def test_without_optuna_the_search_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets where it is not installed
    res = _search(_recipe(tmp_path), tmp_path / "a")
    assert res.exit_code == 2 and "pip install 'edgetl[search]'" in res.output


@pytest.mark.parametrize("spec, message", [
    ([0.9, 0.3], "low < high"),
    ({"low": 0.1}, "low < high"),
    ({"low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),
    ({"low": 0.1, "high": 0.5, "choices": [1, 2]}, "not both"),
])
def test_a_knob_that_is_not_a_range_or_choices_is_refused(spec, message):
    from pydantic import ValidationError

    from edgetl.recipe.schema import SearchConfig

    with pytest.raises(ValidationError, match=message):
        SearchConfig(params={"stages.1.target.macs_ratio": spec})


def test_a_knob_may_choose_between_lists_such_as_a_students_layers(tmp_path):
    import optuna

    from edgetl.pipeline.search import _yaml, suggest
    from edgetl.recipe.load import load_recipe
    from edgetl.recipe.schema import SearchConfig

    spec = SearchConfig(params={"stages.2.keep_layers": [[0, 2, 4], [0, 3]]}).params["stages.2.keep_layers"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    picked = {tuple(suggest(study.ask(), "stages.2.keep_layers", spec)) for _ in range(12)}
    assert picked == {(0, 2, 4), (0, 3)}
    recipe = load_recipe("recipes/text-search.yaml", [f"stages.2.keep_layers={_yaml([0, 3])}"])
    assert recipe.stages[2].keep_layers == [0, 3]
