"""Model size facts recorded with every benchmark: file size, parameters and multiply-accumulates (MACs).

ONNX MACs come from the real tensor shapes of one batch-1 run (every Conv/Gemm/MatMul input and output
exposed as a graph output, graph optimisation off), so they hold for dynamic shapes, reshapes computed at
run time and Q/DQ (INT8) graphs alike. PyTorch MACs come from `models/macs.py`, which counts the same ops.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# op type -> (index of the activation input, index of the weight / second input)
MAC_OPS = {
    "Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1),
    "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1),
}
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def onnx_params(model) -> int:
    """Elements of the initializers that are weights (scales and zero points of Q/DQ nodes excluded)."""
    qparams = {name for node in model.graph.node if node.op_type in QDQ_OPS for name in node.input[1:]}
    total = 0
    for init in model.graph.initializer:
        if init.name in qparams:
            continue
        n = int(np.prod(init.dims)) if init.dims else 1
        if n > 1:
            total += n
    return total


def _macs_of(op: str, attrs: dict[str, Any], a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]) -> int:
    if not out:
        return 0
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        return int(np.prod(out)) * int(np.prod(b[1:]))  # weight (Co, Ci/groups, k...)
    if op == "ConvTranspose":
        return int(np.prod(a)) * int(np.prod(b[1:]))  # every input pixel scatters Co/groups * k... products
    if op == "Gemm":
        k = a[0] if attrs.get("transA") else a[-1]
        return int(np.prod(out)) * int(k)
    return int(np.prod(out)) * int(a[-1])  # MatMul family: (..., M, K) x (..., K, N)


def onnx_macs(path: Path, feed: dict[str, np.ndarray]) -> int | None:
    """MACs of one run on `feed` (use a batch-1 feed), or None when the graph cannot be run this way."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in MAC_OPS]
    if not nodes:
        return 0
    wanted: list[str] = []
    existing = {o.name for o in model.graph.output}
    for n in nodes:
        ia, ib = MAC_OPS[n.op_type]
        for name in (n.input[ia], n.input[ib], n.output[0]):
            if name and name not in inits and name not in existing and name not in wanted:
                wanted.append(name)
    graph_inputs = {i.name for i in model.graph.input}
    for name in wanted:
        if name not in graph_inputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        declared = {i.name for i in sess.get_inputs()}
        values = sess.run(names, {k: v for k, v in feed.items() if k in declared})
    except Exception as exc:  # an exotic graph: MACs are a nice-to-have, the benchmark goes on
        log.warning("MACs of %s could not be counted: %s", path, exc)
        return None
    shapes = {n: tuple(np.shape(v)) for n, v in zip(names, values, strict=True)}
    shapes.update({k: tuple(np.shape(v)) for k, v in feed.items()})
    shapes.update(inits)
    total = 0
    for n in nodes:
        ia, ib = MAC_OPS[n.op_type]
        a, b, out = shapes.get(n.input[ia]), shapes.get(n.input[ib]), shapes.get(n.output[0])
        if a is None or b is None or out is None:
            continue
        attrs = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
        total += _macs_of(n.op_type, attrs, a, b, out)
    return total


def onnx_stats(path: Path, feed: dict[str, np.ndarray] | None) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path))
    stats: dict[str, Any] = {"params": onnx_params(model), "macs": None,
                             "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
                             "nodes": len(model.graph.node)}
    if feed is not None:
        stats["macs"] = onnx_macs(path, feed)
    return stats


def torch_stats(module, feed: dict[str, np.ndarray] | None) -> dict[str, Any]:
    from edgetl.models.macs import count_macs

    stats: dict[str, Any] = {"params": int(sum(p.numel() for p in module.parameters())), "macs": None}
    if feed is not None:
        from edgetl.models.base import to_torch

        stats["macs"], _ = count_macs(module, to_torch(feed))
    return stats
