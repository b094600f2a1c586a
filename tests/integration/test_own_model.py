"""recipes/own-model.yaml: a model built by the user's factory (python:examples.own_model_factory:build), not the
zoo, through finetune, prune, export and benchmark from the command line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "data.train_limit=128", "--set", "data.eval_limit=64", "--set", "stages.0.max_steps=2",
         "--set", "stages.2.max_steps=2", "--set", "stages.2.search_steps=4", "--set", "stages.2.measure_latency=false",
         "--set", "stages.2.steps=1", "--set", "stages.4.iterations=10", "--set", "stages.4.warmup_seconds=0"]


def edgetl(*args):
    return subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


@pytest.mark.slow  # EfficientNet-Lite0 with its ImageNet weights, a few training steps per stage
def test_the_own_model_recipe_runs_the_factory_model_end_to_end(tmp_path):
    res = edgetl("compress", "recipes/own-model.yaml", "--out", str(tmp_path), "--quiet", "--no-fail-on-targets",
                 *QUICK)

    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    arts = {a["name"]: a for a in report["artifacts"]}
    assert arts["pruned"]["macs"] <= 0.6 * arts["finetuned"]["macs"]
    assert arts["onnx_pruned"]["latency_ms"]["p50"] > 0 and arts["onnx_pruned"]["accuracy"] is not None
    saved = json.loads((tmp_path / arts["pruned"]["path"] / "model.json").read_text())
    assert saved["builder"]["factory"] == "python:examples.own_model_factory:build"
