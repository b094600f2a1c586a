"""What precision each layer of a built engine really runs in, from the engine inspector's JSON.

Needs the engine built with `ProfilingVerbosity.DETAILED` (the builder sets it) and an execution context with
input shapes set (otherwise dynamic-shape tensors read "N/A due to dynamic shapes"). Two JSON dialects:
TensorRT 10.x writes one `"Format/Datatype"` string per tensor ("Thirty-two wide channel vectorized row major
Int8 format"), 11.x splits it into `"Format"` and `"DataType"`. Both are read here; this module is plain logic.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

# Lowest (fastest) first: a layer whose inputs mix types counts as the lowest compute type among them.
PRECISION_ORDER = ("int4", "fp4", "fp8", "int8", "fp16", "bf16", "fp32")
# Layers that move or relabel data; they are counted but not as compute.
BOOKKEEPING = {"Reformat", "NoOp", "Constant", "Shuffle", "Identity", "Cast", "Slice", "Concatenation", "Gather",
               "Shape", "ShapeHostToDevice", "Squeeze", "Unsqueeze"}


def dtype_of(text: str) -> str:
    """Normalise an inspector type/format string to int8 / fp16 / bf16 / fp32 / fp8 / int32 / ... / unknown."""
    t = str(text).lower()
    if not t or "n/a" in t:
        return "unknown"
    for needle, name in (("int4", "int4"), ("fp4", "fp4"), ("fp8", "fp8"), ("e4m3", "fp8"), ("uint8", "uint8"),
                         ("int8", "int8"), ("bf16", "bf16"), ("bfloat", "bf16"), ("fp16", "fp16"), ("half", "fp16"),
                         ("int64", "int64"), ("int32", "int32"), ("bool", "bool"), ("fp32", "fp32"), ("float", "fp32")):
        if needle in t:
            return name
    return "unknown"


def tensor_dtype(tensor: dict[str, Any]) -> str:
    for key in ("DataType", "Format/Datatype", "Format"):
        if key in tensor:
            found = dtype_of(tensor[key])
            if found != "unknown":
                return found
    return "unknown"


def layer_precision(layer: dict[str, Any]) -> str:
    types = [tensor_dtype(t) for t in layer.get("Inputs") or [] if isinstance(t, dict)]
    compute = [t for t in types if t in PRECISION_ORDER]
    if not compute:  # e.g. a Reformat whose inputs are int32 indices: fall back to its outputs
        compute = [t for t in (tensor_dtype(o) for o in layer.get("Outputs") or [] if isinstance(o, dict))
                   if t in PRECISION_ORDER]
    if compute:
        return min(compute, key=PRECISION_ORDER.index)
    known = [t for t in types if t != "unknown"]
    return known[0] if known else "unknown"


def summarize_layers(engine_info: str | dict[str, Any], keep_names: int = 20) -> dict[str, Any]:
    """Per-precision counts of the engine's layers (all and compute-only), for the manifest.

    `float_compute_layers` names compute layers that did not run in a reduced precision: in a Q/DQ model they
    point at a Q/DQ pair in the wrong place (a blocked fusion), the usual reason INT8 is no faster than FP16.
    """
    data = json.loads(engine_info) if isinstance(engine_info, str) else engine_info
    layers = data.get("Layers") or []
    if layers and all(isinstance(layer, str) for layer in layers):
        return {"layers": len(layers), "detail": "names only",
                "note": "build with ProfilingVerbosity.DETAILED to see layer precisions"}
    by_precision: Counter[str] = Counter()
    compute: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    float_layers: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        prec = layer_precision(layer)
        kind = str(layer.get("LayerType") or "?")
        by_precision[prec] += 1
        by_type[kind] += 1
        if kind not in BOOKKEEPING:
            compute[prec] += 1
            if prec in ("fp32", "fp16", "bf16") and len(float_layers) < keep_names:
                float_layers.append(str(layer.get("Name", "?"))[:160])
    n_compute = sum(compute.values())
    int8 = compute.get("int8", 0)
    return {
        "layers": sum(by_precision.values()),
        "by_precision": dict(sorted(by_precision.items())),
        "compute_layers": n_compute,
        "compute_by_precision": dict(sorted(compute.items())),
        "int8_layers": int8,
        "int8_fraction": round(int8 / n_compute, 4) if n_compute else 0.0,
        "by_type": dict(by_type.most_common()),
        "float_compute_layers": float_layers,
        "io_tensors": [t.get("Name") if isinstance(t, dict) else t
                       for t in (data.get("I/O Tensors") or data.get("Bindings") or [])],
    }


def engine_information(engine, context=None, fmt=None) -> str:
    """The inspector's JSON for a deserialized engine. `context` (input shapes set) resolves dynamic shapes;
    IEngineInspector.execution_context is its name in the Python API of 10.x and 11.x alike.
    `fmt`: a LayerInformationFormat (default JSON)."""
    if fmt is None:
        import tensorrt as trt

        fmt = trt.LayerInformationFormat.JSON
    inspector = engine.create_engine_inspector()
    if context is not None:
        inspector.execution_context = context
    return inspector.get_engine_information(fmt)
