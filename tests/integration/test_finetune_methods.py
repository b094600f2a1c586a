"""Fine-tuning methods through `edgetl compress`: a quickstart-style recipe with `--set stages.0.method=...`
keeps the report contract, and a recipe under torchrun (2 gloo processes) writes one set of artifacts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from edgetl.pipeline.runner import compress
from edgetl.recipe.load import load_recipe
from edgetl.testing.recipes import tiny_text_recipe, tiny_vision_recipe


def write_recipe(tmp_path, recipe):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_text_recipe_with_a_method_override_runs_to_int8_with_the_report_contract(tmp_path):
    method = "lora"  # adapters through export: tests/unit/finetune/test_methods.py
    recipe = tiny_text_recipe()
    recipe["stages"][0]["max_steps"] = 4
    recipe["stages"][3]["iterations"] = 10
    path = write_recipe(tmp_path, recipe)
    report = compress(load_recipe(path, overrides=[f"stages.0.method={method}"]), tmp_path / "run")
    on_disk = json.loads((tmp_path / "run/report.json").read_text())
    assert on_disk["final"] == "onnx_int8" == report["final"]
    finetuned = next(a for a in on_disk["artifacts"] if a["name"] == "finetuned")
    assert finetuned["method"] == method
    assert 0 < finetuned["trainable_params"] < 0.2 * finetuned["total_params"]
    stage = on_disk["stages"][0]["metrics"]
    assert stage["method"] == method and 0 < stage["trainable_percent"] < 20
    assert {"best_eval_accuracy", "best_epoch", "train_seconds"} <= set(stage)
    onnx = next(a for a in on_disk["artifacts"] if a["name"] == "onnx_fp32")
    assert abs(onnx["accuracy"] - finetuned["accuracy"]) <= 0.02  # export parity on the eval set


def test_a_recipe_under_torchrun_writes_one_set_of_artifacts(tmp_path):
    recipe = tiny_vision_recipe()
    recipe["data"]["train_limit"] = 256
    recipe["stages"] = [dict(recipe["stages"][0], epochs=1, batchnorm="freeze"), {"type": "export", "parity_samples": 16}]
    path = write_recipe(tmp_path, recipe)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "edgetl", "compress",
                           str(path), "--out", str(tmp_path / "run"), "-q"],
                          capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = sorted(p.name for p in (tmp_path / "run/stages").iterdir())
    assert len(stages) == 2 and not any(n.startswith(".tmp") for n in stages)
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert [s["status"] for s in report["stages"]] == ["ran", "ran"]
    assert report["final"] == "onnx_fp32"
    assert not list(Path("/tmp").glob("edgetl-rank-00-finetune-*"))  # rank 1's scratch is gone
