"""TensorRT on a real GPU: build (dialect by version, profile, timing + engine caches, inspector), run through
the tensor-address API, benchmark backend, and the runtime's TensorRT path. Skipped with the reason where
TensorRT or a GPU is missing (CPU-only CI); run with `pytest -m "gpu and trt" tests/gpu` on the device."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgetl.trt.device import static_problem

_PROBLEM = static_problem()
pytestmark = [pytest.mark.gpu, pytest.mark.trt,
              pytest.mark.skipif(_PROBLEM is not None, reason=f"needs TensorRT and an NVIDIA GPU: {_PROBLEM and _PROBLEM[0]}")]

LABELS = ["a", "b", "c", "d"]


def _conv_model(path, seed=0):
    """pixel_values [batch,3,16,16] -> Conv 3x3 (8) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (4)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32) * 0.3, "cw"),
             numpy_helper.from_array(np.zeros(8, np.float32), "cb"),
             numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["pixel_values", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1), helper.make_node("Gemm", ["f", "W", "b"], ["logits"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                                            ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _qdq_model(src, dst):
    """TensorRT's Q/DQ layout (symmetric int8, per-channel weights) with ONNX Runtime's quantizer."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.batches = iter([{"pixel_values": rng.normal(size=(4, 3, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return dst


def _ort(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]


@pytest.fixture
def opts(tmp_path):
    from edgetl.trt.builder import BuildOptions

    return BuildOptions(cache_dir=tmp_path / "cache", shapes={"batch": (1, 2, 8)}, workspace_bytes=256 << 20)


def test_fp32_build_matches_onnxruntime_and_is_cached_with_a_timing_cache(tmp_path, opts):
    from edgetl.trt.builder import build_engine
    from edgetl.trt.runner import TrtSession

    onnx_path = _conv_model(tmp_path / "model.onnx")
    first = build_engine(onnx_path, tmp_path / "a.plan", opts)
    assert not first.cached and first.engine_path.stat().st_size > 0
    assert first.profile["pixel_values"] == {"min": [1, 3, 16, 16], "opt": [2, 3, 16, 16], "max": [8, 3, 16, 16]}
    assert first.layers["layers"] > 0 and first.layers["compute_layers"] > 0
    timing = opts.cache_dir / "timing"
    assert any(p.stat().st_size > 0 for p in timing.iterdir())
    second = build_engine(onnx_path, tmp_path / "b.plan", opts)
    assert second.cached and second.key == first.key
    x = np.random.default_rng(2).normal(size=(5, 3, 16, 16)).astype(np.float32)
    session = TrtSession(first.engine_path)
    try:
        out = session.infer({"pixel_values": x})["logits"]
        assert out.shape == (5, 4)
        assert np.abs(out - _ort(onnx_path, x)).max() < 5e-2  # FP16 kernels allowed on 10.x
        assert session.last_gpu_ms is not None and session.last_gpu_ms > 0
    finally:
        session.close()


def test_qdq_model_runs_int8_layers_per_the_inspector(tmp_path, opts):
    from edgetl.trt.builder import build_engine

    fp32 = _conv_model(tmp_path / "fp32.onnx")
    qdq = _qdq_model(fp32, tmp_path / "int8.onnx")
    result = build_engine(qdq, tmp_path / "int8.plan", opts)
    info = result.info()
    assert info["layers"]["int8_layers"] >= 1, info["layers"]
    assert (info["dialect"] == "strongly-typed") == (not info["builder_flags"])
    assert ("INT8" in info["builder_flags"]) or info["dialect"] == "strongly-typed"


def test_a_broken_onnx_reports_every_parser_error(tmp_path, opts):
    from edgetl.errors import ExportError
    from edgetl.trt.builder import build_engine

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ExportError, match="could not parse") as err:
        build_engine(bad, tmp_path / "bad.plan", opts)
    assert err.value.problems


def test_cuda_graph_replay_gives_the_same_outputs(tmp_path, opts):
    from edgetl.trt.builder import build_engine
    from edgetl.trt.runner import TrtSession

    plan = build_engine(_conv_model(tmp_path / "m.onnx"), tmp_path / "m.plan", opts).engine_path
    x = np.random.default_rng(3).normal(size=(2, 3, 16, 16)).astype(np.float32)
    plain, graph = TrtSession(plan), TrtSession(plan, use_cuda_graph=True)
    try:
        a = plain.infer({"pixel_values": x})["logits"]
        for _ in range(3):
            b = graph.infer({"pixel_values": x})["logits"]
        assert np.allclose(a, b, atol=1e-4)
    finally:
        plain.close()
        graph.close()


def test_cuda_graphs_follow_the_input_shapes(tmp_path, opts):
    """One context, batches 8, 8, 4, 8 (TrtModel.run's chunks): each replay must be of a graph captured for
    that batch size, so every result equals a plain execute_async_v3's."""
    from edgetl.trt.builder import build_engine
    from edgetl.trt.runner import TrtSession

    plan = build_engine(_conv_model(tmp_path / "m.onnx"), tmp_path / "m.plan", opts).engine_path
    rng = np.random.default_rng(7)
    batches = [rng.normal(size=(n, 3, 16, 16)).astype(np.float32) for n in (8, 8, 4, 8)]
    plain, graph = TrtSession(plan), TrtSession(plan, use_cuda_graph=True)
    try:
        for x in batches:
            a = plain.infer({"pixel_values": x})["logits"]
            b = graph.infer({"pixel_values": x})["logits"]
            assert b.shape == (len(x), 4) and np.allclose(a, b, atol=1e-4)
        assert graph.use_cuda_graph and graph.enqueue.graph_shapes == (("pixel_values", (8, 3, 16, 16)),)
    finally:
        plain.close()
        graph.close()


def test_benchmark_backend_times_host_and_gpu_and_chunks_big_batches(tmp_path, opts):
    from edgetl.backends.tensorrt import TensorRTBackend
    from edgetl.trt.builder import build_engine

    onnx_path = _conv_model(tmp_path / "m.onnx")
    plan = build_engine(onnx_path, tmp_path / "m.plan", opts).engine_path
    loaded = TensorRTBackend().load(plan)
    try:
        x = np.random.default_rng(4).normal(size=(1, 3, 16, 16)).astype(np.float32)
        fn = loaded.prepare({"pixel_values": x})
        for _ in range(5):
            fn()
        gpu = loaded.device_time_ms()
        assert len(gpu) == 5 and all(t > 0 for t in gpu) and len(loaded.device_time_ms(last=3)) == 3
        big = np.random.default_rng(5).normal(size=(20, 3, 16, 16)).astype(np.float32)  # > profile max 8
        assert loaded.run({"pixel_values": big}).shape == (20, 4)
        assert loaded.info()["pinned_host_buffers"] and loaded.input_spec()[0]["shape"] == [None, 3, 16, 16]
    finally:
        loaded.close()


def test_runtime_predictor_builds_an_engine_for_a_bundle_and_agrees_with_onnxruntime(tmp_path):
    from edgetl.runtime import Predictor
    from edgetl.runtime.bundle import BUNDLE_FORMAT, seal
    from edgetl.runtime.files import sha256_file
    from edgetl.runtime.preprocess import Preprocessing

    root = tmp_path / "bundle"
    (root / "models" / "m").mkdir(parents=True)
    _conv_model(root / "models" / "m" / "model.onnx")
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=16)
    files = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
             for p in root.rglob("*") if p.is_file()}
    (root / "manifest.json").write_text(seal({
        "format": BUNDLE_FORMAT, "version": 1, "task": "image", "labels": LABELS, "preprocessing": pre.to_dict(),
        "models": [{"name": "m", "file": "models/m/model.onnx", "precision": "fp32", "layout": "any",
                    "inputs": [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 16, 16]}],
                    "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 4]}]}],
        "engines": [], "defaults": {"onnxruntime": "m", "tensorrt": "m"}, "files": files}))
    images = np.random.default_rng(6).integers(0, 256, size=(40, 20, 20, 3), dtype=np.uint8)
    trt_p = Predictor.from_bundle(root, backend="tensorrt", engine_cache=tmp_path / "engines")
    ort_p = Predictor.from_bundle(root)
    a = [p.index for p in trt_p.predict_batch(images)]
    b = [p.index for p in ort_p.predict_batch(images)]
    assert np.mean(np.array(a) == np.array(b)) >= 0.95
    assert json.loads((root / "manifest.json").read_text())["files"] == files  # the bundle stayed read-only
    shutil.rmtree(tmp_path / "engines")
