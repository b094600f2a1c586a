"""ONNX graph utilities, one home for all of edgetl: op lists, opset, Q/DQ count, I/O spec and the
producer/consumer index. Reading a user's file safely is `edgetl.backends.onnx_file.read_onnx`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ops with a weight that INT8 pays off on, and the only ones TensorRT's explicit quantization wants Q/DQ in front of
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# ops that only move or reshape data: a Q/DQ in front of one acts on the op after it
SHAPE_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def as_model(model_or_path: Any) -> Any:
    """A ModelProto, loading a path without its external weights (graph utilities need no weights)."""
    if isinstance(model_or_path, (str, Path)):
        import onnx

        return onnx.load(str(model_or_path), load_external_data=False)
    return model_or_path


def opset_of(model_or_path: Any) -> int | None:
    """The default-domain opset the model declares, None when it declares none."""
    model = as_model(model_or_path)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def count_qdq(model_or_path: Any) -> int:
    return sum(1 for n in as_model(model_or_path).graph.node if n.op_type in QDQ_OPS)


def graph_index(graph: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The node producing each tensor, and the nodes consuming it."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    return producer, consumers


def io_spec(model_or_path: Any) -> dict[str, Any]:
    """{"inputs": [...], "outputs": [...], "opset"}: name, numpy dtype and shape (named dims as strings)."""
    import onnx

    model = as_model(model_or_path)

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": [d.dim_param or d.dim_value for d in t.shape.dim]})
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output), "opset": opset_of(model)}
