"""PTQ sensitivity and fallback on the ONNX graph.

Ranking: each quantized node (MatMul / Gemm / Conv) is scored by the SQNR of its int8 input activations: the tensor
as the FP32 model computes it on calibration examples vs its Q->DQ round trip with the scale and zero point the INT8
file uses. A long-tailed activation (BERT's GELU output) gets a coarse grid and a low SQNR. Values come from the
float model so that each tensor's own rounding is measured, not the errors of the layers before it (inside the INT8
model a tensor downstream of a crushed one leaves its calibrated range and looks worst). ONNX Runtime's
`qdq_loss_debug` measures inside the INT8 model, keeps every intermediate tensor of every batch in memory (GBs for
a transformer) and concatenates batches, which fails for text batches of different lengths; hence this code.

Fallback: re-quantize with the k lowest-scored nodes excluded (`nodes_to_exclude`), k = 1, 2, ..., measuring the INT8
file's accuracy in ONNX Runtime on eval examples each time, until the drop vs the FP32 file fits the budget or
`max_layers` is reached (then the best k found is kept).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.onnx_graph import WEIGHTED_OPS

log = logging.getLogger(__name__)


def _activation_quantizers(model) -> dict[str, tuple[str, str, str]]:
    """float tensor -> (scale, zero point, QuantizeLinear output) for every QuantizeLinear of a non-constant tensor."""
    consts = {t.name for t in model.graph.initializer}
    return {n.input[0]: (n.input[1], n.input[2] if len(n.input) > 2 else "", n.output[0])
            for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in consts}


def node_sensitivity(float_path: Path, qdq_path: Path, batches: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Quantized nodes of `qdq_path` (quantized from `float_path`), lowest input SQNR (most sensitive) first."""
    import onnx
    from onnx import numpy_helper

    from edgetl.quant.parity import unoptimized_session

    model = onnx.load(str(qdq_path))
    quantizers = _activation_quantizers(model)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    fmodel = onnx.load(str(float_path))
    produced = {o for n in fmodel.graph.node for o in n.output} | {i.name for i in fmodel.graph.input}
    names = sorted(n for n in quantizers if n in produced)
    known = {o.name for o in fmodel.graph.output}
    fmodel.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in known)
    sess = unoptimized_session(fmodel.SerializeToString())  # the values of the graph as written
    inputs = {i.name for i in sess.get_inputs()}
    signal = dict.fromkeys(names, 0.0)
    noise = dict.fromkeys(names, 0.0)
    for batch in batches:
        values = sess.run(names, {k: v for k, v in batch.items() if k in inputs})
        for name, x in zip(names, values, strict=True):
            scale_name, zp_name, _ = quantizers[name]
            scale = np.float32(inits[scale_name])
            zp = inits[zp_name] if zp_name else np.zeros((), np.uint8)
            info = np.iinfo(zp.dtype)
            q = np.clip(np.rint(x / scale) + zp.astype(np.int32), info.min, info.max)
            dq = (q - zp.astype(np.int32)).astype(np.float32) * scale
            signal[name] += float(np.square(x, dtype=np.float64).sum())
            noise[name] += float(np.square(x - dq, dtype=np.float64).sum())
    sqnr = {n: (10.0 * np.log10(max(signal[n], 1e-30) / noise[n]) if noise[n] > 0 else float("inf")) for n in names}
    # which activation each quantized node reads: node input <- DequantizeLinear <- QuantizeLinear(float tensor)
    dq_of = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    float_of = {q_out: x for x, (_, _, q_out) in quantizers.items()}
    rows = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        acts = [a for a in (float_of.get(dq_of.get(i, "")) for i in node.input) if a in sqnr]
        if acts:
            worst = min(acts, key=lambda a: sqnr[a])
            rows.append({"node": node.name, "op": node.op_type, "input": worst, "sqnr_db": round(float(sqnr[worst]), 2)})
    return _ranked(rows)


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lowest SQNR (most sensitive) first, numbered from 1."""
    rows.sort(key=lambda r: r["sqnr_db"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def choose_float_nodes(ranked: list[dict[str, Any]], quantize: Callable[[list[str]], Path],
                       accuracy: Callable[[Path], float], float_accuracy: float, *, max_accuracy_drop: float,
                       max_layers: int, first_accuracy: float) -> dict[str, Any]:
    """Exclude the k most sensitive nodes, k = 1.. max_layers, until the drop fits; returns the decision."""
    steps = [{"float_nodes": [], "accuracy": first_accuracy, "drop": round(float_accuracy - first_accuracy, 4)}]
    best = steps[0]
    for k in range(1, min(max_layers, len(ranked)) + 1):
        if best["drop"] <= max_accuracy_drop:
            break
        excluded = [r["node"] for r in ranked[:k]]
        acc = accuracy(quantize(excluded))
        step = {"float_nodes": excluded, "accuracy": acc, "drop": round(float_accuracy - acc, 4)}
        steps.append(step)
        log.info("ptq fallback: %d node(s) float (+%s): accuracy %.4f, drop %.4f", k, excluded[-1], acc, step["drop"])
        if step["accuracy"] > best["accuracy"]:
            best = step
    return {"max_accuracy_drop": max_accuracy_drop, "float_accuracy": float_accuracy, "accuracy": best["accuracy"],
            "float_nodes": best["float_nodes"], "budget_met": best["drop"] <= max_accuracy_drop, "steps": steps}


def read_float_inputs(path: Path, float_nodes: list[str]) -> int:
    """Make nodes kept float read float activations. ONNX Runtime's quantizer leaves an excluded node's weights and
    output float, but when the op producing its input is quantized (every Conv/MatMul output in the image layout)
    the node still reads that tensor's DequantizeLinear, so it computes on int8-rounded values, and ONNX Runtime's
    `WeightBiasQuantization` optimizer would even quantize its weights at load time. The float tensor is still in
    the graph (the QuantizeLinear's input): point the node at it, and drop Q/DQ nodes nobody reads any more.
    Returns how many inputs were rewired."""
    import onnx

    from edgetl.quant.layouts import drop_unread_qdq, read_float

    if not float_nodes:
        return 0
    model = onnx.load(str(path))
    g = model.graph
    wanted = set(float_nodes)
    rewired = read_float(model, lambda n: n.name in wanted)
    if not rewired:
        return 0
    drop_unread_qdq(g)  # Q/DQ pairs whose every reader was rewired
    onnx.save(model, str(path))
    return rewired


def output_sensitivity(float_path: Path, qdq_path: Path, batches: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """One node at a time: the FP32 model with only node n quantized exactly as in the INT8 file (its activation
    inputs through the file's Q/DQ, its weights and bias as the file's int8 values), scored by the SQNR of the logits
    against the FP32 model's on calibration examples. Lowest (most sensitive) first. Slower than the input ranking
    (one session per node) but it sees what a layer does to the output, such as a layer of few channels that loses
    accuracy without outliers (benchmarks/results/design-notes.md)."""
    import copy

    import onnx
    from onnx import helper

    from edgetl.quant.parity import unoptimized_session

    qmodel = onnx.load(str(qdq_path))
    fmodel = onnx.load(str(float_path))
    qinits = {t.name: t for t in qmodel.graph.initializer}
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    def logits(model) -> np.ndarray:
        sess = unoptimized_session(model.SerializeToString())  # the arithmetic as written
        names = {i.name for i in sess.get_inputs()}
        return np.concatenate([sess.run(None, {k: v for k, v in b.items() if k in names})[0] for b in batches])

    reference = logits(fmodel)
    fnodes = {n.name: n for n in fmodel.graph.node if n.name}
    rows = []
    for qnode in qmodel.graph.node:
        if qnode.op_type not in WEIGHTED_OPS or qnode.name not in fnodes:
            continue
        plan = []  # (input position, DequantizeLinear node in the INT8 file)
        for k, x in enumerate(qnode.input):
            dq = producer.get(x)
            if dq is not None and dq.op_type == "DequantizeLinear":
                plan.append((k, dq))
        if not plan:
            continue
        model = copy.deepcopy(fmodel)
        node = next(n for n in model.graph.node if n.name == qnode.name)
        added, new_inits = [], []
        for k, dq in plan:
            tag = f"{qnode.name}_in{k}"
            if dq.input[0] in qinits:  # weight / bias: the file's int8 (int32) values
                new_inits += [copy.deepcopy(qinits[n]) for n in dq.input if n and n in qinits]
                src = dq.input[0]
            else:  # activation: this model's float tensor through the file's QuantizeLinear
                q = producer[dq.input[0]]
                new_inits += [copy.deepcopy(qinits[n]) for n in q.input[1:] if n and n in qinits]
                added.append(helper.make_node("QuantizeLinear", [node.input[k], *q.input[1:]], [tag + "_q"],
                                              name=tag + "_q", **{a.name: helper.get_attribute_value(a) for a in q.attribute}))
                src = tag + "_q"
            added.append(helper.make_node("DequantizeLinear", [src, *dq.input[1:]], [tag + "_dq"], name=tag + "_dq",
                                          **{a.name: helper.get_attribute_value(a) for a in dq.attribute}))
            node.input[k] = tag + "_dq"
        have = {t.name for t in model.graph.initializer}
        model.graph.initializer.extend(t for t in {t.name: t for t in new_inits}.values() if t.name not in have)
        position = list(model.graph.node).index(node)
        for i, extra in enumerate(added):
            model.graph.node.insert(position + i, extra)
        out = logits(model)
        noise = float(np.square(reference - out, dtype=np.float64).sum())
        signal = float(np.square(reference, dtype=np.float64).sum())
        sqnr = 10.0 * np.log10(max(signal, 1e-30) / noise) if noise > 0 else float("inf")
        rows.append({"node": qnode.name, "op": qnode.op_type, "sqnr_db": round(float(sqnr), 2)})
    return _ranked(rows)
