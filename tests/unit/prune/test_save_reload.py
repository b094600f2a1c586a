"""A pruned CNN and a pruned BERT reload in a fresh process from their saved files and export with parity."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgetl.models.base import save_model
from edgetl.models.encoder import sync_hf_config
from edgetl.prune.structured import StructuredPruner
from edgetl.train.loop import predict_logits

FRESH = """
import sys, numpy as np
from pathlib import Path
from edgetl.models.base import load_model
from edgetl.export.onnx import torch_to_onnx
from edgetl.backends.onnxruntime import predict
from edgetl.runtime.ort import make_session
from edgetl.train.loop import predict_logits
folder = Path(sys.argv[1]); raw = np.load(folder.parent / "raw.npy", allow_pickle=True)
raw = list(raw) if raw.dtype == object else raw
model = load_model(folder)
torch_to_onnx(model, folder.parent / "m.onnx", 17)
ort = predict(make_session(folder.parent / "m.onnx"), model.encoder(), raw)
np.save(folder.parent / "torch.npy", predict_logits(model, raw)); np.save(folder.parent / "ort.npy", ort)
"""


def reload_elsewhere(folder, raw):
    np.save(folder.parent / "raw.npy", np.array(raw, dtype=object) if isinstance(raw, list) else raw)
    subprocess.run([sys.executable, "-c", FRESH, str(folder)], check=True, capture_output=True, timeout=120)
    return np.load(folder.parent / "torch.npy"), np.load(folder.parent / "ort.npy")


@pytest.mark.parametrize("kind", ["cnn", "bert"])
def test_pruned_model_reloads_in_fresh_process_and_exports(kind, tiny_cnn, tiny_bert, tmp_path):
    model = tiny_cnn if kind == "cnn" else tiny_bert
    StructuredPruner(model, pruning_ratio=0.5, round_to=8, protect=False).step()
    model.files = sync_hf_config(model.module, model.files)
    raw = (np.random.default_rng(0).integers(0, 255, (6, 28, 28), dtype=np.uint8) if kind == "cnn"
           else ["a gripping, funny film", "dull and far too long", "fine", "i loved it", "no", "meh"])
    expected = predict_logits(model, raw)
    save_model(model, tmp_path / "model")

    torch_logits, ort_logits = reload_elsewhere(tmp_path / "model", raw)

    np.testing.assert_allclose(torch_logits, expected, atol=1e-5)
    np.testing.assert_allclose(ort_logits, expected, atol=1e-4)
    if kind == "bert":
        cfg = json.loads((tmp_path / "model" / "hf_config.json").read_text())
        assert cfg["intermediate_size"] == 64 and cfg["edgetl_layer_heads"] == [2, 2]
