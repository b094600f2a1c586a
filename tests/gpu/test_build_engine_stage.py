"""The `build_engine` stage in a real run on a GPU: engine from the tensorrt Q/DQ layout, INT8 layer counts in the
manifest, accuracy measured through the engine, and the engine shipped in the bundle and used by the runtime."""

import json

import numpy as np
import pytest

from edgetl.trt.device import static_problem

_PROBLEM = static_problem()
pytestmark = [pytest.mark.gpu, pytest.mark.trt,
              pytest.mark.skipif(_PROBLEM is not None, reason=f"needs TensorRT and an NVIDIA GPU: {_PROBLEM and _PROBLEM[0]}")]


def test_run_with_build_engine_and_bundle(tmp_path):
    from edgetl.backends.onnxruntime import predict
    from edgetl.data.datasets import load_data
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe
    from edgetl.runtime import Predictor
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.runtime.ort import make_session
    from edgetl.testing.recipes import tiny_vision_recipe

    raw = tiny_vision_recipe(name="tiny-trt")
    raw["data"].update(train_limit=400, eval_limit=200)
    raw["stages"] = [
        {"type": "finetune", "epochs": 2, "batch_size": 64, "lr": 0.02},
        {"type": "export"},
        {"type": "quantize", "samples": 32, "target": "tensorrt"},
        {"type": "build_engine", "shapes": {"batch": [1, 1, 64]}, "cache_dir": str(tmp_path / "trt-cache")},
        {"type": "bundle"},
    ]
    recipe = parse_recipe(raw)
    report = compress(recipe, tmp_path / "run")
    engine = next(a for a in report["artifacts"] if a["format"] == "engine")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    info = next(a for a in manifest["artifacts"] if a["name"] == engine["name"])["info"]
    assert info["layers"]["int8_layers"] >= 1 and info["source_onnx"] == "onnx_int8"
    assert info["trt_version"] and info["device"] and info["cache_key"]
    assert engine["accuracy"] is not None and "TensorRT engine" in engine["accuracy_source"]
    # The engine against the ONNX file it was built from, measured here with ONNX Runtime on the same eval split
    # (the run's own onnx_int8 accuracy may be absent, and must not be replaced by the engine's).
    data = load_data(recipe.data)
    onnx_path = tmp_path / "run" / next(a for a in report["artifacts"] if a["name"] == "onnx_int8")["path"]
    ort_logits = predict(make_session(onnx_path), read_onnx_meta(onnx_path).encoder(), data.eval.inputs)
    onnx_acc = float(np.mean(ort_logits.argmax(-1) == data.eval.labels))
    assert abs(engine["accuracy"] - onnx_acc) < 0.05, (engine["accuracy"], onnx_acc)

    bundle_dir = tmp_path / "run" / next(a for a in report["artifacts"] if a["format"] == "bundle")["path"]
    bm = json.loads((bundle_dir / "manifest.json").read_text())
    assert [e["onnx"] for e in bm["engines"]] == ["onnx_int8"] and (bundle_dir / bm["engines"][0]["file"]).is_file()
    assert bm["engines"][0]["sm_count"] and bm["engines"][0]["total_memory_bytes"]  # what the runtime matches on
    p = Predictor.from_bundle(bundle_dir, backend="tensorrt", engine_cache=tmp_path / "unused")
    acc = float(np.mean(np.array([q.index for q in p.predict_batch(data.eval.inputs)]) == data.eval.labels))
    assert acc == pytest.approx(engine["accuracy"], abs=0.02)
    assert not (tmp_path / "unused").exists()  # the bundle's own engine matched this device: nothing was built
