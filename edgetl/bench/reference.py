"""The suite's reference workload: a fixed ONNX graph (MatMul + Relu chain, deterministic weights) timed
interleaved with the suite's models on one thread. A slowdown of the whole machine (other work, thermal
throttling) slows it too, so a model's p50 relative to the reference separates "the model got slower" from
"the machine was busier"; a model-side change (a slower model, fewer threads for the models) leaves the
one-thread reference where it was."""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_NAME = "__reference__"
VERSION = 1


def reference_model(width: int = 768, depth: int = 4) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cache = Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "bench"
    path = cache / f"reference-v{VERSION}-{width}x{depth}.onnx"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]), helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "edgetl_reference", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                        ["batch", width])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path
