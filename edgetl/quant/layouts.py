"""Two exported Q/DQ layouts from one set of QAT-trained weights and scales.

`tensorrt`: the converted PT2E graph exported by `torch.onnx.export(dynamo=True)`: symmetric int8, zero
points 0, per-channel weights on the output-channel axis, Q/DQ only where the TensorRT-rule quantizer put
fake quantization (inputs of conv/linear and residual Adds). TensorRT fuses this; ONNX Runtime's CPU
provider does not (it cannot form QLinearConv without a Q on the conv output), and runs it slower than FP32
for CNNs (numbers: benchmarks/results/design-notes.md).

`onnxruntime`: derived from the tensorrt ONNX, not trained again. Every Q/DQ pair is stripped (weights
become their dequantized values, i.e. exactly the trained int8 grid), and ONNX Runtime's own static
quantizer re-quantizes that float graph in its fast layout (u8 activations / s8 weights on x86 with VNNI,
Q/DQ on outputs too so Conv+Relu+Q fuse into QLinearConv). The QAT-trained activation ranges are passed as
`TensorQuantOverrides` for every tensor QAT quantized, as QAT's own grid (step s; ReLU/ReLU6 outputs from 0,
clamped to QAT's 128 levels by an integer Clip after the Q); only tensors QAT never saw that ONNX Runtime's
int8 conv/Add kernels need (conv outputs before an Add or a pooling) take ranges from calibration. Ops it
cannot fuse (Sigmoid/Mul of Swish, normalizations) stay float and so do the tensors around them and the
logits. Per-channel weight scales come out identical (ONNX Runtime computes max|w|/127 of weights that
already sit on that grid). Why this rather than moving Q/DQ nodes by hand: ONNX Runtime's quantizer knows
which patterns its CPU kernels fuse (and drops Relu/Clip that the u8 range makes redundant); rewriting
placement ourselves would duplicate that knowledge and drift from it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.onnx_graph import SHAPE_OPS, WEIGHTED_OPS, graph_index, opset_of

log = logging.getLogger(__name__)
# a weight reaches its op through shape-only ops and Casts (an exporter may cast a constant weight)
WEIGHT_PATH_OPS = (*SHAPE_OPS, "Cast")
# what the onnxruntime layout of an image model quantizes: ops ONNX Runtime runs in int8 on the trained ranges or
# by moving data, Relu/Clip (folded into the range of the Q after the conv) and the linear Add / average pools,
# whose calibrated ranges its QLinearConv/QLinearAdd need. Not the other non-linearities (Sigmoid, Mul of
# Swish/SiLU or squeeze-excite, LeakyRelu, Softmax, normalizations): ONNX Runtime cannot fold them into a conv, so it
# would round their inputs and outputs too, above all the pre-activation conv output, on calibrated ranges far
# wider than the trained range after the activation, which lowers top-1 agreement with the fake-quant model (numbers:
# benchmarks/results/design-notes.md); a conv that feeds such an op then runs as a float conv.
IMAGE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Relu", "Clip", "Pad", "MaxPool", "AveragePool",
             "GlobalAveragePool", "Concat", "Split", "Slice", "Resize", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
             "Transpose")


@dataclass
class Stripped:
    model: Any  # onnx.ModelProto, float
    act_scales: dict[str, float] = field(default_factory=dict)  # tensor name -> trained per-tensor scale
    nonnegative: set[str] = field(default_factory=set)  # tensors produced by Relu / Clip(min >= 0)
    # nonnegative tensor -> (output of the Relu/Clip it comes from, that activation's min and max)
    activations: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    float_nodes: list[str] = field(default_factory=list)  # weighted nodes the QAT model kept in float
    quantized_nodes: list[str] = field(default_factory=list)  # weighted nodes with Q/DQ on their inputs


def export_converted(module, example_inputs: dict[str, Any], path: Path, task: str, max_sequence: int = 512
                     ) -> dict[str, Any]:
    """Export a converted PT2E GraphModule with the dynamo exporter; dynamic dims get the names `batch`
    (and `sequence` for text), the output is called `logits`. Returns {"opset", "exporter"}."""
    import torch

    dyn = dynamic_shapes(example_inputs, task, max_sequence)
    ep = torch.export.export(module, (), dict(example_inputs), dynamic_shapes=dyn)
    with contextlib.redirect_stdout(io.StringIO()):  # the dynamo exporter prints progress lines to stdout
        onx = torch.onnx.export(ep, (), kwargs=dict(example_inputs), dynamo=True, external_data=False, optimize=True,
                                verbose=False)
    onx.save(str(path))
    rename_io(path, task)
    spatial_means_to_global_pool(path)
    return {"opset": opset_of(path), "exporter": "torch.onnx (dynamo) of a converted PT2E graph"}


def dynamic_shapes(example_inputs: dict[str, Any], task: str, max_sequence: int = 512) -> dict[str, dict[int, Any]]:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    if task == "text":
        seq = torch.export.Dim("sequence", min=2, max=max_sequence)
        return {k: {0: batch, 1: seq} for k in example_inputs}
    return {k: {0: batch} for k in example_inputs}


def rename_io(path: Path, task: str) -> None:
    """torch.export loses dim names (`s77`): name them `batch` / `sequence` again, and call the output `logits`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names: dict[str, str] = {}
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for axis, d in enumerate(dims):
            if d.dim_param:
                names.setdefault(d.dim_param, "batch" if axis == 0 else "sequence")
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]
    out = model.graph.output[0]
    if out.name != "logits":
        old = out.name
        for node in model.graph.node:
            node.output[:] = ["logits" if o == old else o for o in node.output]
            node.input[:] = ["logits" if i == old else i for i in node.input]
        out.name = "logits"
    onnx.save(model, str(path))


def spatial_means_to_global_pool(path: Path) -> int:
    """ReduceMean over H and W (keepdims) of a 4-D tensor -> GlobalAveragePool. torch.export decomposes
    `adaptive_avg_pool2d(x, 1)` into `mean`, which the exporter writes as ReduceMean: ONNX Runtime's quantizer
    has no int8 ReduceMean and its NHWC int8 graph then transposes the last feature map back to NCHW for it, a
    visible share of a CNN's latency (numbers: benchmarks/results/design-notes.md), while GlobalAveragePool becomes
    an NHWC QLinearGlobalAveragePool. TensorRT treats both alike. Returns how many nodes were rewritten."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    consts = _const(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]
             if v.type.tensor_type.HasField("shape")}
    changed = 0
    for i, node in enumerate(model.graph.node):
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in consts:
            axes = consts[node.input[1]].tolist()
        if axes is None or sorted(a % 4 for a in axes) != [2, 3] or attrs.get("keepdims", 1) != 1:
            continue
        pool = helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name)
        model.graph.node.remove(node)
        model.graph.node.insert(i, pool)
        changed += 1
    if changed:
        used = {x for n in model.graph.node for x in n.input}
        for init in [t for t in model.graph.initializer if t.name not in used]:
            model.graph.initializer.remove(init)  # the axes constant
        onnx.save(model, str(path))
    return changed


def _const(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def strip_qdq(path: Path) -> Stripped:
    """The float model behind a Q/DQ model: weights dequantized in place, activation Q/DQ pairs removed."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    float_nodes = unquantized_weighted_nodes(model)  # before the nodes below are edited in place
    consts = _const(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    rename: dict[str, str] = {}
    drop: set[int] = set()
    new_inits = []
    out = Stripped(model=model)
    for i, node in enumerate(model.graph.node):
        if node.op_type == "DequantizeLinear" and node.input[0] in consts:  # weight
            q = consts[node.input[0]].astype(np.float32)
            scale = consts[node.input[1]].astype(np.float32)
            zp = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zp = np.reshape(zp, shape) if np.ndim(zp) == 1 else zp
            new_inits.append(numpy_helper.from_array((q - zp) * scale, node.output[0]))
            drop.add(i)
        elif node.op_type == "QuantizeLinear":
            drop.add(i)
        elif node.op_type == "DequantizeLinear":
            q_node = producers.get(node.input[0])
            if q_node is None or q_node.op_type != "QuantizeLinear":
                continue
            src = q_node.input[0]
            rename[node.output[0]] = src
            out.act_scales[src] = float(np.asarray(consts[q_node.input[1]]).reshape(-1)[0])
            drop.add(i)
    kept = [n for i, n in enumerate(model.graph.node) if i not in drop]
    for n in kept:
        n.input[:] = [rename.get(x, x) for x in n.input]
    # fold Transpose of a weight (linear layers of 3-D inputs export as DQ -> Transpose -> MatMul), so ONNX
    # Runtime's quantizer sees an initializer and quantizes it as a per-channel weight, not an activation
    dequantized = {t.name: t for t in new_inits}
    folded = []
    for n in kept:
        if n.op_type == "Transpose" and n.input[0] in dequantized:
            w = numpy_helper.to_array(dequantized[n.input[0]])
            perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), list(range(w.ndim))[::-1])
            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(w.transpose(perm)), n.output[0]))
            folded.append(n)
    kept = [n for n in kept if n not in folded]
    for o in model.graph.output:
        if o.name in rename:
            raise ValueError(f"graph output {o.name} is a Q/DQ output; cannot strip")
    used = {x for n in kept for x in n.input}
    inits = [t for t in model.graph.initializer if t.name in used] + [t for t in new_inits if t.name in used]
    graph = helper.make_graph(kept, model.graph.name, model.graph.input, model.graph.output, inits)
    # keep the exporter's type/shape info: ONNX Runtime's quantizer only quantizes tensors it knows are float,
    # and shape inference alone does not get through every exported transformer graph
    produced = {o for n in kept for o in n.output}
    graph.value_info.extend(v for v in model.graph.value_info if v.name in produced)
    stripped = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    out.model = stripped
    # which quantized tensors can never be negative (the u8 range then starts at 0), also behind the zero padding
    # of "same"-padded strided convs (EfficientNet): ONNX Runtime drops the Relu/Clip in front of a quantized tensor
    # whatever its range, so a range with negatives there would let negative conv outputs through
    new_producers = {o: n for n in kept for o in n.output}
    for name in out.act_scales:
        p = new_producers.get(name)
        while p is not None and keeps_values(p, consts):
            p = new_producers.get(p.input[0])
        if p is not None and p.op_type == "Relu":
            out.nonnegative.add(name)
            out.activations[name] = (p.output[0], 0.0, float("inf"))
        elif p is not None and p.op_type == "Clip" and len(p.input) > 1 and p.input[1]:
            lo = consts.get(p.input[1])
            hi = consts.get(p.input[2]) if len(p.input) > 2 and p.input[2] else np.inf
            if lo is not None and hi is not None and float(np.asarray(lo).reshape(-1)[0]) >= 0:
                out.nonnegative.add(name)
                out.activations[name] = (p.output[0], float(np.asarray(lo).reshape(-1)[0]),
                                         float(np.asarray(hi).reshape(-1)[0]))
    out.float_nodes = float_nodes
    out.quantized_nodes = [n.name for n in model.graph.node
                           if n.op_type in WEIGHTED_OPS and n.name not in float_nodes and _has_weight(n, consts, producers)]
    return out


def keeps_values(node, consts: dict[str, np.ndarray]) -> bool:
    """Whether every output value of `node` is one of its first input's values or 0 (shape-only ops, Pad with
    zeros or copies of the border): a range trained on the output then fits the input too, as does `never negative`."""
    if node.op_type in WEIGHT_PATH_OPS:
        return True
    if node.op_type != "Pad":
        return False
    mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
    if mode != "constant":
        return mode in ("reflect", "edge", "wrap")
    value = node.input[2] if len(node.input) > 2 else ""
    return not value or (value in consts and not np.any(consts[value]))


def _has_weight(node, consts, producers) -> bool:
    for x in node.input[1:2]:
        seen = x
        while seen not in consts:
            p = producers.get(seen)
            if p is None or p.op_type not in (*WEIGHT_PATH_OPS, "DequantizeLinear"):
                return False
            seen = p.input[0]
        return True
    return False


def unquantized_weighted_nodes(model) -> list[str]:
    """Conv/Gemm/MatMul nodes with a constant weight (possibly through DQ and shape-only ops) whose inputs carry
    no Q/DQ: the layers a sensitivity fallback kept in float. Activation x activation MatMuls are not listed."""
    from edgetl.quant.check_qdq import check_qdq

    return [v.node for v in check_qdq(model) if v.rule == "unquantized"]


def derive_onnxruntime(trt_path: Path, out_path: Path, calib_batches: list[dict[str, np.ndarray]], *, task: str,
                       op_types: list[str] | None, activation_type, weight_type, reduce_range: bool,
                       per_channel: bool = True) -> dict[str, Any]:
    """ONNX Runtime's fast layout from the tensorrt layout's trained weights and activation scales."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from edgetl.quant.ptq import CalibrationReader

    stripped = strip_qdq(trt_path)
    float_path = out_path.with_name("float-from-qat.onnx")
    act_dtype = onnx.helper.tensor_dtype_to_np_dtype(activation_type.tensor_type)
    qmin = int(np.iinfo(act_dtype).min)
    overrides: dict[str, list[dict[str, Any]]] = {}
    for name, s in stripped.act_scales.items():  # (numpy values: ONNX Runtime calls .dtype on them)
        if name in stripped.nonnegative:
            # QAT's own grid, step s from 0 (ONNX Runtime would spread 0..127 s over all 256 levels, step 127 s / 255:
            # different roundings, which the large BN-folded depthwise weights of EfficientNet amplify); the 128
            # levels QAT clamps to are restored by clamp_levels below
            overrides[name] = [{"scale": np.array(s, np.float32), "zero_point": np.array(qmin, act_dtype)}]
        else:  # -128 s .. 127 s over 256 levels: step s, exactly QAT's grid
            overrides[name] = [{"rmin": np.float32(-128.0 * s), "rmax": np.float32(127.0 * s)}]
    # a trained range also holds for the input of a shape-only op or zero Pad in front of the trained tensor (the
    # pooled features before Flatten/Reshape -> Gemm, the activation before the "same" padding of a strided conv):
    # otherwise ONNX Runtime quantizes that tensor with a calibrated range of its own, and either rounds twice,
    # once on a grid QAT never saw, or (Pad) gives the padded tensor the input's calibrated grid instead
    producers = {o: n for n in stripped.model.graph.node for o in n.output}
    consts = _const(stripped.model)
    for name in list(overrides):
        node = producers.get(name)
        while node is not None and keeps_values(node, consts) and node.input[0] not in overrides:
            overrides[node.input[0]] = overrides[name]
            node = producers.get(node.input[0])
    folded = fold_zero_pads(stripped.model, consts)
    kept = {o for n in stripped.model.graph.node for o in n.output} | {i.name for i in stripped.model.graph.input}
    overrides = {k: v for k, v in overrides.items() if k in kept}
    onnx.save(stripped.model, str(float_path))
    graph_inputs = {i.name for i in stripped.model.graph.input}
    batches = [{k: v for k, v in b.items() if k in graph_inputs} for b in calib_batches]
    # transformers (text, or an image model with attention: ViT): quantize exactly the layers QAT trained (ONNX
    # Runtime would also quantize the attention MatMuls, activation x activation, and the residual Adds on
    # calibrated ranges QAT never simulated); CNNs: the ops of IMAGE_OPS, because ONNX Runtime's fast kernels
    # need Q/DQ around Add/pooling too
    transformer = task == "text" or has_attention(stripped.model)
    nodes = stripped.quantized_nodes if transformer else None
    if transformer and task != "text":
        by_name = {n.name: n.op_type for n in stripped.model.graph.node}
        op_types = sorted({by_name[n] for n in stripped.quantized_nodes})
    elif op_types is None:
        op_types = list(IMAGE_OPS)
    root = logging.getLogger()
    level = root.level
    # ONNX Runtime warns on the root logger that the model was not pre-processed: this float graph is the
    # exporter's own, already optimized, with its shapes kept on purpose (see strip_qdq)
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(float_path), str(out_path), CalibrationReader(batches), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=op_types, per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=activation_type, weight_type=weight_type, nodes_to_quantize=nodes,
                        nodes_to_exclude=stripped.float_nodes or None, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"TensorQuantOverrides": overrides})
    finally:
        root.setLevel(level)
        float_path.unlink(missing_ok=True)
    dropped = rewired = 0
    shielded = shield_float_nodes(out_path, stripped.float_nodes) if stripped.float_nodes else 0
    float_outputs = float_graph_outputs(out_path)
    if transformer:
        dropped = drop_untrained_activation_qdq(out_path, set(stripped.act_scales))
        rewired = float_side_consumers(out_path)
    else:
        rewired = keep_float_ops_float(out_path, set(op_types), set(overrides), stripped.model)
    levels = {}
    for act_out, lo, hi in stripped.activations.values():
        given = overrides.get(act_out, [{}])[0]
        if "scale" not in given:
            continue
        s = given["scale"]  # (the grid the Q after the removed Relu/Clip uses, of this tensor or the one it is padded to)
        top = 127 if not np.isfinite(hi) else min(127, int(np.rint(np.float32(hi) / s)))
        levels[act_out] = (qmin + max(0, int(np.rint(np.float32(lo) / s))), qmin + top)
    clamped = clamp_levels(out_path, levels)
    return {"trained_ranges": len(stripped.act_scales), "pads_folded_into_convs": folded,
            "ranges_through_shape_ops": len(overrides) - len(stripped.act_scales),
            "float_nodes": stripped.float_nodes, "untrained_qdq_removed": dropped,
            "float_consumers_restored": rewired, "float_nodes_shielded": shielded,
            "quantized_nodes": len(stripped.quantized_nodes), "op_types": op_types, "clamped_activations": clamped,
            "float_graph_outputs": float_outputs,
            # (text: ONNX Runtime fuses DQ -> MatMul without a Q after it into an integer MatMul, see above)
            "float_output_layers": float_output_layers(out_path) if not transformer else []}


def fold_zero_pads(model, consts: dict[str, np.ndarray]) -> int:
    """Fold each zero, spatial-only Pad in front of a Conv (EfficientNet's "same" padding before strided convs)
    into the Conv's own `pads`, in place. Exact: 0 sits on every activation grid, and ONNX Runtime's integer conv
    pads with the zero point. Kept, the Pad runs as a float op between a DequantizeLinear and a QuantizeLinear
    and keeps ONNX Runtime from forming its integer conv (measured on EfficientNet-Lite2: the QAT-derived layout
    at 1.34x over FP32 vs 2.21x for PTQ, whose pre-processing folds these pads). Returns how many went."""
    from onnx import helper

    g = model.graph
    _, consumers = graph_index(g)
    outputs = {o.name for o in g.output}
    folded = []
    for pad in g.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs or len(pad.input) < 2 or pad.input[1] not in consts:
            continue
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        value = pad.input[2] if len(pad.input) > 2 else ""
        if mode != "constant" or (value and (value not in consts or np.any(consts[value]))):
            continue
        if len(pad.input) > 3 and pad.input[3]:  # (an `axes` input: rare, left alone)
            continue
        pads = consts[pad.input[1]].astype(np.int64).tolist()
        rank = len(pads) // 2
        users = consumers.get(pad.output[0], [])
        if rank < 3 or any(pads[i] or pads[rank + i] for i in (0, 1)) or min(pads) < 0 or not users or any(
                u.op_type != "Conv" or u.input[0] != pad.output[0] or _auto_pad(u) for u in users):
            continue
        for conv in users:
            old = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0] * (2 * (rank - 2)))
            new = [old[i] + pads[2 + i] for i in range(rank - 2)] + [
                old[rank - 2 + i] + pads[rank + 2 + i] for i in range(rank - 2)]
            kept = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
            del conv.attribute[:]
            conv.attribute.extend([*kept, helper.make_attribute("pads", new)])
            conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        g.node.remove(pad)
    return len(folded)


def _auto_pad(conv) -> bool:
    """Whether a Conv sizes its padding itself (SAME_UPPER / SAME_LOWER / VALID): explicit pads cannot join it."""
    return any(a.name == "auto_pad" and a.s.decode() not in ("", "NOTSET") for a in conv.attribute)


def has_attention(model) -> bool:
    """Whether a float graph multiplies two activations (attention's Q.K^T and A.V): a transformer."""
    consts = {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant"
                                                          for o in n.output}
    return any(n.op_type == "MatMul" and not ({n.input[0], n.input[1]} & consts) for n in model.graph.node)


def keep_float_ops_float(path: Path, quantized_ops: set[str], trained: set[str], float_model: Any = None) -> int:
    """The ops an image layout leaves float (not in `quantized_ops`) read and write float tensors, as in the
    fake-quant model. ONNX Runtime's quantizer puts a Q/DQ on every conv output, so a conv feeding a Sigmoid
    (Swish, squeeze-excite gates) would still round its pre-activation output on a calibrated grid, and a quantized
    op after a float one (the pooling after the last Swish) would round its input: every reader of such a pair gets
    the float tensor, unless QAT trained a range for it; pairs nobody reads go, and the conv stays float.
    ONNX Runtime removes a Relu/Clip in front of a Q (the Q's range clamps instead): a reader rewired to the
    float tensor then gets the activation back (`float_model`: the graph before quantization, which has it).
    Returns how many inputs were rewired."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    producer, _ = graph_index(g)
    consts = {t.name for t in g.initializer}
    qdq = ("QuantizeLinear", "DequantizeLinear")
    restored: dict[str, str] = {}

    def activated(tensor: str) -> str:
        """`tensor`, or the output of the Relu/Clip the float model applies to it and the quantizer removed."""
        if float_model is None:
            return tensor
        if tensor in restored:
            return restored[tensor]
        # (the quantizer drops the activation by letting the op before it write the activation's output name)
        act = next((n for n in float_model.graph.node if n.op_type in ("Relu", "Clip") and n.output[0] == tensor),
                   None)
        made_by = producer.get(tensor)
        if act is None or made_by is None or made_by.op_type == act.op_type:
            return tensor
        node = onnx.NodeProto()
        node.CopyFrom(act)
        node.name = f"{act.name or act.output[0]}_restored"
        node.input[0] = tensor
        node.output[:] = [f"{act.output[0]}_restored"]
        have = {t.name for t in g.initializer}
        for init in float_model.graph.initializer:  # Clip's min / max
            if init.name in node.input[1:] and init.name not in have:
                g.initializer.append(init)
        at = next((i for i, n in enumerate(g.node) if tensor in n.output), -1)
        g.node.insert(at + 1, node)  # right after the tensor's producer: the graph stays in topological order
        restored[tensor] = node.output[0]
        return node.output[0]

    def left_float(node) -> bool:
        return node is not None and node.op_type not in (*quantized_ops, *qdq)

    rewire = []
    for n in g.node:
        for k, x in enumerate(n.input):
            dq = producer.get(x)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in consts:
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            if left_float(n) or (q.input[0] not in trained and left_float(producer.get(q.input[0]))):
                rewire.append((n, k, q.input[0]))
    for n, k, tensor in rewire:  # (after the scan: restoring an activation inserts a node)
        n.input[k] = activated(tensor)
    rewired = len(rewire)
    if rewired:
        drop_unread_qdq(g)
        onnx.save(model, str(path))
    return rewired


def drop_unread_qdq(g) -> None:
    """Remove the Q/DQ nodes whose outputs nobody reads any more (after rewiring their readers)."""
    outputs = {o.name for o in g.output}
    while True:
        _, consumers = graph_index(g)
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(consumers.get(o) or o in outputs for o in n.output)]
        if not dead:
            return
        _remove_nodes(g, dead, {})


def float_graph_outputs(path: Path) -> int:
    """Give the graph outputs (logits) back their float values. ONNX Runtime's quantizer puts a Q/DQ pair on the
    output of the last Gemm with a range calibrated on the calibration examples only: logits the fake-quant model
    leaves float get rounded, and clipped on examples outside that range (several logits off by > 10 on
    EfficientNet-Lite). The producer writes the output name itself again. Returns how many outputs."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    producer, consumers = graph_index(g)
    drop = []
    for out in g.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or len(consumers.get(q.input[0], [])) != 1 or len(consumers.get(q.output[0], [])) != 1:
            continue
        src.output[:] = [out.name if o == q.input[0] else o for o in src.output]
        drop += [q, dq]
    if drop:
        _remove_nodes(g, drop, {})
        onnx.save(model, str(path))
    return len(drop) // 2


def clamp_levels(path: Path, levels: dict[str, tuple[int, int]]) -> int:
    """Clip the integer output of each QuantizeLinear of a tensor in `levels` to those levels. ONNX Runtime's
    quantizer removes a Relu/Clip in front of a quantized tensor and lets the Q's range do the clipping, which only
    works when the range is the activation's: with QAT's grid (step s, zero point at the lowest level) the Q reaches
    255 s, while the fake-quant model clamps at min(Clip max, 127 s). An integer Clip on the Q's output restores
    exactly that; ONNX Runtime still fuses the conv and Q before it into QLinearConv. Returns how many were added."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    _, consumers = graph_index(g)
    consts = _const(model)
    outputs = {o.name for o in g.output}
    added = 0
    for q in list(g.node):
        if q.op_type != "QuantizeLinear" or q.input[0] not in levels or q.output[0] in outputs:
            continue
        dtype = consts[q.input[2]].dtype if len(q.input) > 2 and q.input[2] in consts else np.dtype(np.uint8)
        lo, hi = levels[q.input[0]]
        info = np.iinfo(dtype)
        if lo <= info.min and hi >= info.max:
            continue
        base = f"{q.output[0]}_levels"
        g.initializer.extend([numpy_helper.from_array(np.array(max(lo, info.min), dtype), base + "_min"),
                              numpy_helper.from_array(np.array(min(hi, info.max), dtype), base + "_max")])
        for c in consumers.get(q.output[0], []):
            c.input[:] = [base if x == q.output[0] else x for x in c.input]
        g.node.insert(list(g.node).index(q) + 1,
                      helper.make_node("Clip", [q.output[0], base + "_min", base + "_max"], [base], name=base))
        added += 1
    if added:
        onnx.save(model, str(path))
    return added


def float_output_layers(path: Path) -> list[str]:
    """Quantized conv/linear nodes of the onnxruntime layout whose output stays float (no QuantizeLinear reads it):
    ONNX Runtime cannot fuse them into QLinearConv/QLinearMatMul and runs them as float layers on dequantized
    int8 inputs. An image model has them where a conv feeds an activation other than Relu/Clip (see IMAGE_OPS)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producer, consumers = graph_index(model.graph)
    outputs = {o.name for o in model.graph.output}
    found = []
    for n in model.graph.node:
        if n.op_type not in WEIGHTED_OPS or n.output[0] in outputs:
            continue
        dq = producer.get(n.input[0])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue  # a float layer (fallback) or one on float inputs: nothing to fuse
        if not any(c.op_type == "QuantizeLinear" for c in consumers.get(n.output[0], [])):
            found.append(n.name)
    return found


def float_side_consumers(path: Path) -> int:
    """Give the float tensor back to consumers that QAT never quantized. ONNX Runtime's quantizer points *every*
    consumer of a quantized tensor at its DequantizeLinear output; in a transformer that includes the residual Add
    beside Q/K/V (LayerNorm output -> Q/DQ -> MatMul, but also -> Add), so the residual stream gets rounded
    although the trained (fake-quant) model kept it float, and agreement with it drops (numbers:
    benchmarks/results/design-notes.md). Only weighted ops (and shape-only ops in front of them) keep reading the
    DequantizeLinear output. Returns how many inputs were rewired."""
    import onnx

    model = onnx.load(str(path))
    rewired = read_float(model, lambda n: n.op_type not in (*WEIGHTED_OPS, *WEIGHT_PATH_OPS, "QuantizeLinear",
                                                            "DequantizeLinear"))
    if rewired:
        onnx.save(model, str(path))
    return rewired


def shield_float_nodes(path: Path, float_nodes: list[str]) -> int:
    """Keep fallback layers float at run time. ONNX Runtime's `WeightBiasQuantization` graph optimizer turns any
    Conv/Gemm whose input comes from a per-tensor DequantizeLinear and whose weight is a float initializer into an
    int8 layer with *per-tensor* weights (its own scale), which then fuses into QLinearConv: a layer the fallback
    kept in float for accuracy would run quantized, more coarsely than QAT ever trained it. A Clip to exactly the
    range the DequantizeLinear can produce sits between them: it changes no value and ONNX Runtime keeps it (it
    only fuses Clip *before* a Q or *after* a Conv), so the layer stays float. Returns how many were shielded."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    producer, _ = graph_index(g)
    consts = _const(model)
    wanted = set(float_nodes)
    shielded = 0
    for node in list(g.node):
        if node.name not in wanted or not node.input:
            continue
        dq = producer.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in consts:
            continue
        scale = float(np.asarray(consts[dq.input[1]]).reshape(-1)[0])
        zp_arr = consts.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros((), np.uint8)
        info = np.iinfo(zp_arr.dtype)
        zp = float(np.asarray(zp_arr).reshape(-1)[0])
        lo, hi = (info.min - zp) * scale, (info.max - zp) * scale
        base = f"{node.name}_float_input"
        g.initializer.extend([numpy_helper.from_array(np.array(lo, np.float32), base + "_min"),
                              numpy_helper.from_array(np.array(hi, np.float32), base + "_max")])
        clip = helper.make_node("Clip", [node.input[0], base + "_min", base + "_max"], [base], name=base)
        g.node.insert(list(g.node).index(node), clip)
        node.input[0] = base
        shielded += 1
    if shielded:
        onnx.save(model, str(path))
    return shielded


def read_float(model, selected) -> int:
    """Point every input of the `selected(node)` nodes that is DequantizeLinear(QuantizeLinear(float tensor)) at
    the float tensor itself. Returns how many inputs were rewired."""
    g = model.graph
    producer, _ = graph_index(g)
    consts = {i.name for i in g.initializer}
    rewired = 0
    for n in g.node:
        if not selected(n):
            continue
        for k, x in enumerate(n.input):
            dq = producer.get(x)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in consts:
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                n.input[k] = q.input[0]
                rewired += 1
    return rewired


def _remove_nodes(g, drop: list, rename: dict[str, str]) -> None:
    """Delete `drop` from the graph and point the remaining inputs at `rename`'s targets."""
    keep = [n for n in g.node if n not in drop]
    for n in keep:
        n.input[:] = [rename.get(x, x) for x in n.input]
    del g.node[:]
    g.node.extend(keep)


def drop_untrained_activation_qdq(path: Path, trained: set[str]) -> int:
    """Remove activation Q/DQ pairs on tensors QAT did not quantize (ONNX Runtime's quantizer adds them on every
    MatMul/Gemm output, with calibrated ranges the trained model never saw). ONNX Runtime still fuses
    DQ -> MatMul into an integer MatMul without them. Returns how many pairs went."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    producer, consumers = graph_index(g)
    outputs = {o.name for o in g.output}
    rename, drop = {}, []
    for q in g.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in trained or q.input[0] not in producer:
            continue
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" or d.output[0] in outputs for d in dqs):
            continue
        for d in dqs:
            rename[d.output[0]] = q.input[0]
        drop += [q, *dqs]
    if not drop:
        return 0
    _remove_nodes(g, drop, rename)
    onnx.save(model, str(path))
    return len([n for n in drop if n.op_type == "QuantizeLinear"])


def drop_misplaced_qdq(path: Path) -> int:
    """Remove activation Q/DQ pairs that feed no Conv/ConvTranspose/Gemm/MatMul/Add (e.g. the conv-output pairs
    ONNX Runtime's quantizer adds in front of Clip/Relu even when asked for TensorRT's ops only): TensorRT wants
    Q/DQ on inputs only, and a pair in front of an activation blocks its Conv+activation fusion. Returns how many."""
    import onnx

    from edgetl.quant.check_qdq import PLACEMENT

    model = onnx.load(str(path))
    g = model.graph
    producer, consumers = graph_index(g)
    outputs = {o.name for o in g.output}

    def feeds_placement(name: str) -> bool:
        for c in consumers.get(name, []):
            if c.op_type in PLACEMENT:
                return True
            if c.op_type in SHAPE_OPS and feeds_placement(c.output[0]):
                return True
        return False

    rename, drop = {}, []
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        q = producer.get(n.input[0])
        if q is None or q.op_type != "QuantizeLinear" or feeds_placement(n.output[0]):
            continue
        if n.output[0] in outputs:  # Q/DQ on the graph output: the producer writes the output name itself
            src = producer.get(q.input[0])
            if src is None or len(consumers.get(q.input[0], [])) != 1 or len(consumers.get(q.output[0], [])) != 1:
                continue
            src.output[:] = [n.output[0] if o == q.input[0] else o for o in src.output]
            drop += [n, q]
            continue
        if any(c.op_type != "DequantizeLinear" for c in consumers.get(q.output[0], [])):
            continue
        rename[n.output[0]] = q.input[0]
        drop.append(n)
        if all(c in drop for c in consumers.get(q.output[0], [])):
            drop.append(q)
    # Shape/Size read only a tensor's shape: ONNX Runtime's quantizer points them at the DequantizeLinear of a
    # tensor that also feeds a MatMul (text models' LayerNorm outputs), which TensorRT counts as misplaced Q/DQ
    shape_readers = read_float(model, lambda node: node.op_type in ("Shape", "Size"))
    if not drop:
        if shape_readers:
            onnx.save(model, str(path))
        return 0
    dropped = len([n for n in drop if n.op_type == "DequantizeLinear"])
    _remove_nodes(g, drop, rename)
    onnx.save(model, str(path))
    return dropped
