"""A PT2E quantizer that follows TensorRT's explicit-quantization rules.

- activations: int8, per-tensor, symmetric (zero point 0, range -128..127)
- weights: int8, per-channel on the output-channel axis (0 for conv and linear), symmetric (-127..127)
- where: the inputs (activation and weight) of conv / conv-transpose / linear, and the residual input of an
  elementwise Add of two same-shaped tensors, so TensorRT can fuse the Add into the preceding convolution.
  Nothing else is quantized: TensorRT picks the precision of the ops in between itself.

Layers named in `skip` (module paths, e.g. `features.3.conv.0.0`) stay float: that is how sensitivity
fallback keeps a layer out of INT8. PT2E shares one fake-quant among all consumers of a tensor that ask for
the same spec, so a tensor feeding a conv and an Add gets one Q/DQ pair, as TensorRT expects.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.fake_quantize import FakeQuantize
from torchao.quantization.pt2e.observer import MinMaxObserver, PerChannelMinMaxObserver
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, Quantizer

aten = torch.ops.aten
CONV_OPS = {aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.conv_transpose1d.default,
            aten.conv_transpose2d.input, aten.conv_transpose3d.input}
TRANSPOSED = {aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input}
LINEAR_OPS = {aten.linear.default}
ADD_OPS = {aten.add.Tensor, aten.add_.Tensor}
ANNOTATION_KEY = "quantization_annotation"


class CurrentPerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel min/max of the *current* weights (not a running min/max over training), so the
    exported int8 weights use exactly max|w|/127 of the final weights, as ONNX Runtime's weight
    quantizer computes it: the two layouts then hold the same int8 weights."""

    def forward(self, x_orig):
        self.reset_min_max_vals()
        return super().forward(x_orig)


def activation_spec() -> QuantizationSpec:
    return QuantizationSpec(
        dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_symmetric,
        observer_or_fake_quant_ctr=FakeQuantize.with_args(observer=MinMaxObserver, quant_min=-128, quant_max=127,
                                                          dtype=torch.qint8, qscheme=torch.per_tensor_symmetric),
    )


def weight_spec(ch_axis: int) -> QuantizationSpec:
    return QuantizationSpec(
        dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=ch_axis,
        observer_or_fake_quant_ctr=FakeQuantize.with_args(observer=CurrentPerChannelMinMaxObserver, quant_min=-127,
                                                          quant_max=127, dtype=torch.qint8,
                                                          qscheme=torch.per_channel_symmetric, ch_axis=ch_axis),
    )


def module_path(node: Node) -> str:
    """The module path (`features.3.conv.1`) a graph node was traced from ("" when unknown)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    # torch.export writes "L['self'].features.3" style paths in some versions
    for prefix in ("L['self'].", "L__self__."):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path


def weighted_nodes(model: GraphModule) -> list[Node]:
    """conv / linear nodes in graph order: the layers the quantizer can quantize."""
    return [n for n in model.graph.nodes if n.op == "call_function" and n.target in CONV_OPS | LINEAR_OPS]


def _shape(node) -> tuple | None:
    val = node.meta.get("val") if isinstance(node, Node) else None
    return tuple(val.shape) if isinstance(val, torch.Tensor) else None


class TensorRTQuantizer(Quantizer):
    def __init__(self, skip: Iterable[str] = (), residual_add: bool = True):
        super().__init__()
        self.skip = set(skip)
        self.residual_add = residual_add
        self.annotated_layers: list[str] = []  # module paths of quantized conv/linear nodes, graph order

    def _annotate(self, node: Node, inputs: dict[Node, QuantizationSpec]) -> None:
        node.meta[ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)

    def annotate(self, model: GraphModule) -> GraphModule:
        act = activation_spec()
        weighted_outputs: set[Node] = set()
        for node in weighted_nodes(model):
            weighted_outputs.add(node)
            path = module_path(node)
            if path in self.skip or ANNOTATION_KEY in node.meta:
                continue
            x, w = node.args[0], node.args[1]
            if not isinstance(x, Node) or not isinstance(w, Node):
                continue
            axis = 1 if node.target in TRANSPOSED else 0
            self._annotate(node, {x: act, w: weight_spec(axis)})
            self.annotated_layers.append(path)
        if self.residual_add:
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target not in ADD_OPS or ANNOTATION_KEY in node.meta:
                    continue
                a, b = node.args[0], node.args[1]
                if not (isinstance(a, Node) and isinstance(b, Node)) or _shape(a) is None or _shape(a) != _shape(b):
                    continue
                if len(_shape(a)) != 4:  # residual adds of feature maps (CNNs); transformer residuals stay float
                    continue
                # the residual (identity) input is the one not produced by a conv: TensorRT fuses conv + add
                residual = [x for x in (a, b) if x not in weighted_outputs] or [b]
                self._annotate(node, {residual[0]: act})
        return model

    def validate(self, model: GraphModule) -> None:
        return None
