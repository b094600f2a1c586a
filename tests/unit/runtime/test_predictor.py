"""Predictor on small real bundles: outputs match the model computed by hand, inputs are checked, and the
runtime stays torch-free."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgetl.errors import DataError
from edgetl.runtime import Predictor
from edgetl.runtime.bundle import BundleError
from edgetl.runtime.preprocess import encode_images, softmax


def _expected_probs(b, images):
    x = encode_images(images, b.pre)["pixel_values"]  # (N, 3, 8, 8)
    return softmax(x.mean(axis=(2, 3)) @ b.weight + b.bias)


def test_predictions_are_the_models_softmax_with_the_manifests_preprocessing(vision_bundle):
    images = np.random.default_rng(3).integers(0, 256, size=(5, 20, 20, 3), dtype=np.uint8)
    p = Predictor.from_bundle(vision_bundle.root, threads=1)

    preds = p.predict_batch(images, top_k=3)

    probs = _expected_probs(vision_bundle, images)
    assert [q.index for q in preds] == list(probs.argmax(-1))
    for q, row in zip(preds, probs, strict=True):
        assert q.label == p.labels[q.index]
        assert q.score == pytest.approx(float(row.max()), abs=1e-5)
        assert [s for _, s in q.top] == sorted((s for _, s in q.top), reverse=True)
        assert len(q.top) == 3


def test_one_image_grey_or_colour_gives_the_same_answer_as_its_batch(vision_bundle):
    grey = np.random.default_rng(4).integers(0, 256, size=(28, 28), dtype=np.uint8)
    p = Predictor.from_bundle(vision_bundle.root, batch_size=2)

    single = p.predict(grey)
    batch = p.predict_batch(np.stack([grey] * 5))  # 5 images in chunks of 2

    assert all(b.index == single.index and b.score == pytest.approx(single.score, abs=1e-6) for b in batch)
    assert p.predict(np.repeat(grey[..., None], 3, axis=-1)).index == single.index


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((8, 8, 3), dtype=np.float32), "uint8"),
    (np.zeros((3, 8, 8, 2), dtype=np.uint8), "channels-last"),
    (np.zeros((8,), dtype=np.uint8), "(H,W)"),
    ("a sentence", "image model"),
])
def test_wrong_inputs_are_refused_with_what_was_expected(vision_bundle, bad, needle):
    p = Predictor.from_bundle(vision_bundle.root)
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        if isinstance(bad, np.ndarray) and bad.ndim == 4:
            p.predict_batch(bad)
        else:
            p.predict(bad)


def test_text_bundle_tokenizes_with_its_own_tokenizer_and_feeds_only_declared_inputs(text_bundle):
    from edgetl.runtime.preprocess import TextEncoder

    p = Predictor.from_bundle(text_bundle.root)
    texts = ["a wonderful, moving film", "dull and far too long", "ok"]

    preds = p.predict_batch(texts)

    ids = TextEncoder(text_bundle.root / "tokenizer.json", text_bundle.pre)(texts)["input_ids"]
    table, weight = text_bundle.bias, text_bundle.weight
    expected = softmax(table[ids].mean(axis=1) @ weight)
    assert [q.index for q in preds] == list(expected.argmax(-1))
    assert preds[1].score == pytest.approx(float(expected[1].max()), abs=1e-5)
    assert p.predict("ok").label in ("negative", "positive")
    with pytest.raises(DataError, match="text model"):
        p.predict(np.zeros((8, 8), dtype=np.uint8))


def test_unknown_model_name_lists_the_bundles_models(vision_bundle):
    with pytest.raises(BundleError, match="has no model 'nope'; it has m"):
        Predictor.from_bundle(vision_bundle.root, model="nope")


def test_runtime_imports_numpy_and_onnxruntime_only_never_torch(vision_bundle, text_bundle):
    code = f"""
import sys, json
import numpy as np
from edgetl.runtime import Predictor
before = set(sys.modules)
img = Predictor.from_bundle({str(vision_bundle.root)!r}).predict(np.zeros((8, 8), dtype=np.uint8))
txt = Predictor.from_bundle({str(text_bundle.root)!r}).predict("fine")
print(json.dumps({{"mods": sorted(sys.modules), "img": img.label, "txt": txt.label}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    mods = set(result["mods"])
    top = {m.split(".")[0] for m in mods}
    assert {"numpy", "onnxruntime", "tokenizers"} <= top
    forbidden = {"torch", "transformers", "onnx", "tensorrt", "pydantic", "yaml", "typer", "rich", "matplotlib",
                 "safetensors", "scipy", "PIL"}
    assert not top & forbidden, top & forbidden
    assert not [m for m in mods if m.startswith(("edgetl.models", "edgetl.pipeline", "edgetl.stages", "edgetl.train",
                                                   "edgetl.recipe", "edgetl.data"))]
    assert result["img"] and result["txt"]


def test_tensorrt_backend_without_tensorrt_or_gpu_says_what_to_install(vision_bundle):
    from edgetl.errors import BackendUnavailableError
    from edgetl.trt.device import static_problem

    if static_problem() is None:
        pytest.skip("TensorRT and a GPU are present here (tests/gpu covers this backend)")
    with pytest.raises(BackendUnavailableError, match="TensorRT cannot run here") as err:
        Predictor.from_bundle(vision_bundle.root, backend="tensorrt")
    assert "edgetl[trt]" in err.value.hint or "GPU" in err.value.hint
    with pytest.raises(BackendUnavailableError, match="unknown runtime backend 'cuda'"):
        Predictor.from_bundle(vision_bundle.root, backend="cuda")
