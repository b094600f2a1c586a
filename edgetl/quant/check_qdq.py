"""TensorRT's explicit-quantization rules, checked on an ONNX Q/DQ model (no TensorRT needed).

Rules (see int8-and-tensorrt notes): symmetric int8 only (every zero point 0, int8 type); scales positive
constants, scalar (per-tensor) or 1-D (per-channel); per-channel only on weights, along the output-channel
axis of the op that consumes them; opset >= 13; every Q feeds DQs only and every activation DQ comes from a
Q (no dangling halves); Q/DQ only in front of Conv/ConvTranspose/Gemm/MatMul or the residual input of an Add
(through shape-only ops); every weighted Conv/ConvTranspose/Gemm/MatMul quantized on both inputs, unless it
is listed as intentionally float (sensitivity fallback records these in the model's sidecar).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.onnx_graph import SHAPE_OPS, WEIGHTED_OPS, graph_index, opset_of

PLACEMENT = (*WEIGHTED_OPS, "Add")
MIN_OPSET = 13


@dataclass
class Violation:
    rule: str  # zero_point | dtype | scale | axis | opset | dangling | misplaced | unquantized
    node: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_qdq(model_or_path: Any, allow_float: set[str] | frozenset = frozenset()) -> list[Violation]:
    """Every violation of TensorRT's Q/DQ rules in the model (empty list: it passes)."""
    import onnx
    from onnx import numpy_helper

    from edgetl.backends.onnx_file import read_onnx

    model = read_onnx(model_or_path) if isinstance(model_or_path, (str, Path)) else model_or_path
    g = model.graph
    consts = {}
    for t in g.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - external data not loaded: shape-only checks still work
            consts[t.name] = None
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t) if n.attribute[0].t.dims or \
                n.attribute[0].t.raw_data else None
    producer, consumers = graph_index(g)
    out: list[Violation] = []
    graph_outputs = {o.name for o in g.output}
    opset = opset_of(model) or 0
    if opset < MIN_OPSET:
        out.append(Violation("opset", "model", f"opset {opset}: per-channel Q/DQ needs opset >= {MIN_OPSET}; "
                                                "export at opset 17"))

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                return a.i if a.type == onnx.AttributeProto.INT else list(a.ints)
        return default

    def final_consumers(name: str, perm: list[int] | None = None):
        """(op node, perm applied on the way) for ops reached through shape-only ops."""
        found = []
        for c in consumers.get(name, []):
            if c.op_type in SHAPE_OPS:
                p = attr(c, "perm", None) if c.op_type == "Transpose" else None
                for fc, fp in final_consumers(c.output[0], p if p is not None else perm):
                    found.append((fc, fp))
            else:
                found.append((c, perm))
        return found

    def expected_axis(op, rank: int, perm) -> int | None:
        """Output-channel axis of a weight of `op`, in the weight's own (pre-transpose) layout."""
        if op.op_type == "Conv":
            axis = 0
        elif op.op_type == "ConvTranspose":
            axis = 1
        elif op.op_type == "Gemm":
            axis = 0 if attr(op, "transB", 0) else 1
        elif op.op_type == "MatMul":
            axis = rank - 1
        else:
            return None
        return perm[axis] if perm is not None and axis < len(perm) else axis

    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        name = n.name or n.output[0]
        scale = consts.get(n.input[1]) if len(n.input) > 1 else None
        zp_name = n.input[2] if len(n.input) > 2 else ""
        if n.input[1] not in consts:
            out.append(Violation("scale", name, "scale is not a constant initializer: TensorRT needs build-time scales"))
        elif scale is not None:
            if np.any(np.asarray(scale) <= 0):
                out.append(Violation("scale", name, "scale has values <= 0"))
            if np.ndim(scale) > 1:
                out.append(Violation("scale", name, f"scale has rank {np.ndim(scale)}: must be a scalar or 1-D"))
        if not zp_name:
            if n.op_type == "QuantizeLinear":
                out.append(Violation("dtype", name, "no zero point: the output type defaults to uint8; "
                                                    "TensorRT needs int8 with zero point 0"))
        else:
            zp = consts.get(zp_name)
            if zp_name not in consts:
                out.append(Violation("zero_point", name, "zero point is not a constant"))
            elif zp is not None:
                if zp.dtype != np.int8:
                    out.append(Violation("dtype", name, f"quantized type {zp.dtype}: TensorRT needs int8"))
                if np.any(zp != 0):
                    out.append(Violation("zero_point", name, "non-zero zero point: TensorRT only supports symmetric "
                                                             "quantization (zero points all 0)"))
        per_channel = scale is not None and np.ndim(scale) == 1 and np.size(scale) > 1
        is_weight = n.op_type == "DequantizeLinear" and n.input[0] in consts
        if n.op_type == "QuantizeLinear":
            users = consumers.get(n.output[0], [])
            if not users:
                out.append(Violation("dangling", name, "QuantizeLinear output is not used"))
            bad = [u.name or u.op_type for u in users if u.op_type != "DequantizeLinear"]
            if bad:
                out.append(Violation("dangling", name, f"QuantizeLinear feeds {bad}, not a DequantizeLinear"))
            if per_channel:
                out.append(Violation("axis", name, "per-channel scale on an activation: activations must be per-tensor"))
            continue
        # DequantizeLinear
        src = producer.get(n.input[0])
        if not is_weight and (src is None or src.op_type != "QuantizeLinear"):
            out.append(Violation("dangling", name, "DequantizeLinear input comes neither from a QuantizeLinear "
                                                   "nor from a constant weight"))
        finals = final_consumers(n.output[0])
        if n.output[0] in graph_outputs:
            out.append(Violation("misplaced", name, "Q/DQ on a graph output: TensorRT expects Q/DQ only in front of "
                                                    "quantizable ops"))
        elif not finals:
            out.append(Violation("dangling", name, "DequantizeLinear output is not used"))
        for op, perm in finals:
            if op.op_type not in PLACEMENT:
                out.append(Violation("misplaced", name, f"Q/DQ feeds {op.op_type} ({op.name}): TensorRT expects Q/DQ "
                                                         "only on inputs of Conv/ConvTranspose/Gemm/MatMul and residual Adds"))
            elif per_channel and is_weight:
                rank = np.ndim(consts[n.input[0]]) if consts[n.input[0]] is not None else 2
                want = expected_axis(op, rank, perm)
                got = attr(n, "axis", 1)
                if want is not None and got % max(rank, 1) != want:
                    out.append(Violation("axis", name, f"per-channel axis {got} but the output-channel axis of "
                                                       f"{op.op_type} {op.name} is {want}"))
        if per_channel and not is_weight:
            out.append(Violation("axis", name, "per-channel scale on an activation: activations must be per-tensor"))
    dq_out = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}

    def quantized(tensor: str) -> bool:
        seen = tensor
        while seen not in dq_out:
            p = producer.get(seen)
            if p is None or p.op_type not in SHAPE_OPS:
                return False
            seen = p.input[0]
        return True

    def is_weight_input(tensor: str) -> bool:
        seen = tensor
        while True:
            if seen in consts:
                return True
            p = producer.get(seen)
            if p is None:
                return False
            if p.op_type == "DequantizeLinear":
                return p.input[0] in consts
            if p.op_type not in SHAPE_OPS:
                return False
            seen = p.input[0]

    for n in g.node:
        if n.op_type not in WEIGHTED_OPS or len(n.input) < 2:
            continue
        if not is_weight_input(n.input[1]):
            continue  # activation x activation MatMul (attention): TensorRT may run it in float
        name = n.name or n.output[0]
        missing = [i for i, x in enumerate(n.input[:2]) if not quantized(x)]
        if missing and name not in allow_float:
            what = " and ".join("input" if i == 0 else "weight" for i in missing)
            out.append(Violation("unquantized", name, f"{n.op_type} {name} has no Q/DQ on its {what}: TensorRT "
                                                        "runs it in float, next to INT8 neighbours"))
    return out


def format_violations(violations: list[Violation]) -> list[str]:
    return [f"[{v.rule}] {v.node}: {v.message}" for v in violations]
