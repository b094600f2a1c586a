"""`edgetl compress` / `edgetl validate` with prune and distill stages on the tiny models, end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgetl.errors import StageError
from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe

VISION = {
    "name": "t-prune", "seed": 0,
    "model": {"source": "tiny_cnn", "pretrained": False},
    "data": {"name": "fashion_mnist", "train_limit": 300, "eval_limit": 100},
    "stages": [
        {"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.005},
        {"type": "export", "name": "onnx_base"},
        {"type": "prune", "target": {"macs_ratio": 0.5}, "steps": 2, "step_recovery_steps": 2, "max_steps": 4, "round_to": 4,
         "batch_size": 64, "latency_iterations": 10,
         "kd": {"alpha": 0.5, "features": [{"student": "dw", "teacher": "dw"}],
                "attention": {"layers": [{"student": "block", "teacher": "block"}]}}},
        {"type": "export", "name": "onnx_pruned"},
        {"type": "benchmark", "iterations": 20, "warmup_seconds": 0.05},
    ],
}

TEXT = {
    "name": "t-distill", "seed": 0,
    "model": {"source": "tiny_bert", "max_length": 32},
    "data": {"name": "rotten_tomatoes", "train_limit": 128, "eval_limit": 64},
    "stages": [
        {"type": "finetune", "epochs": 1, "batch_size": 32, "lr": 0.001},
        {"type": "prune", "target": {"ratio": 0.5}, "max_steps": 2, "measure_latency": False,
         "kd": {"attention": {}}},
        {"type": "distill", "name": "student", "keep_layers": [1], "max_steps": 3,
         "kd": {"teacher": "finetuned", "cache": True}},
        {"type": "export"},
    ],
}


def run(recipe: dict, out: Path) -> dict:
    return compress(parse_recipe(recipe, out), out)


def test_vision_prune_with_kd_recovery_end_to_end(tmp_path):
    report = run(VISION, tmp_path)

    arts = {a["name"]: a for a in report["artifacts"]}
    assert all(a.get("macs") for a in arts.values()), "every artifact carries MACs"
    assert arts["pruned"]["macs"] <= 0.5 * arts["finetuned"]["macs"]
    assert arts["onnx_pruned"]["macs"] == arts["pruned"]["macs"]
    assert report["baseline"] == "onnx_base" and report["final"] == "onnx_pruned"
    prune = next(s for s in report["stages"] if s["type"] == "prune")["metrics"]
    assert prune["budget_met"] and prune["budget"]["reached"] <= 0.5
    assert prune["after"]["latency_p50_ms"] > 0 and prune["before"]["latency_p50_ms"] > 0
    assert prune["widths_changed"] and all(w["after"] % 4 == 0 for w in prune["widths_changed"].values())
    assert prune["recovery"]["kd"] and prune["recovery"]["teacher"] == "finetuned (before pruning)"
    assert any("accuracy_after_recovery" in h for h in prune["history"])  # recovery between rounds ran


def test_text_prune_and_layer_dropped_student_end_to_end(tmp_path):
    report = run(TEXT, tmp_path)

    stages = {s["type"]: s["metrics"] for s in report["stages"]}
    assert stages["prune"]["structure_after"]["heads"] == [2, 2]
    assert stages["distill"]["student"]["structure"]["layers"] == 1
    assert stages["distill"]["kd"]["cache_misses"] > 0
    arts = {a["name"]: a for a in report["artifacts"]}
    assert arts["student"]["macs"] < arts["finetuned"]["macs"]
    assert arts["onnx_fp32"]["parent"] == "student"
    assert list(tmp_path.glob("cache/teacher-logits-*.npz"))


def edgetl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["stages"][2].update(target={"macs_ratio": 1.5}), "stages.2.target.macs_ratio"),
    (lambda r: r["stages"][2].update(target={"macs_ratio": 0.5, "latency_ms": 3}), "set exactly one of"),
    (lambda r: r["stages"][2]["kd"].update(teacher="nope"), "stages.2.kd.teacher: 'nope' is neither"),
    (lambda r: r["stages"][2].update(kd={"cache": True, "features": [{"student": "dw", "teacher": "dw"}]}),
     "cache: true caches logits only"),
    (lambda r: r["stages"].insert(1, {"type": "distill", "keep_layers": [0]}), "stages.1.keep_layers: layer dropping"),
    (lambda r: r["stages"][2].update(heads=False), "apply to transformers"),
])
def test_validate_rejects_bad_options_with_field_paths(tmp_path, edit, message):
    recipe = json.loads(json.dumps(VISION, default=str))
    edit(recipe)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))

    res = edgetl("validate", str(path))

    assert res.returncode == 2, res.stderr
    assert message in " ".join((res.stdout + res.stderr).split())


def test_unreachable_latency_budget_is_an_error_or_a_reported_miss(tmp_path):
    recipe = json.loads(json.dumps(VISION))
    recipe["stages"] = [{"type": "prune", "target": {"latency_ms": 1e-6}, "search_steps": 2, "recovery": False,
                         "latency_iterations": 10}]
    with pytest.raises(StageError, match="budget latency_ms <= 1e-06 not met"):
        run(recipe, tmp_path / "a")

    recipe["stages"][0]["on_budget_miss"] = "keep"
    report = run(recipe, tmp_path / "b")
    metrics = report["stages"][0]["metrics"]
    assert metrics["budget_met"] is False and metrics["budget"]["reached"] > 1e-6


def test_pruning_that_removes_nothing_is_an_error(tmp_path):
    recipe = json.loads(json.dumps(VISION))
    recipe["stages"] = [{"type": "prune", "target": {"ratio": 0.5}, "recovery": False, "measure_latency": False,
                         "ignored_layers": ["stem", "block", "dw"]}]
    with pytest.raises(StageError, match="pruning removed nothing"):
        run(recipe, tmp_path)
