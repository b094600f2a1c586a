"""ONNX Runtime quantizer settings per Q/DQ layout on this machine."""

from __future__ import annotations

import platform
from typing import Any

from edgetl.backends.onnx_graph import WEIGHTED_OPS
from edgetl.quant.config import QuantizeConfig


def layout_options(cfg: QuantizeConfig, task: str, layout: str | None = None) -> dict[str, Any]:
    """QuantType and flags for ONNX Runtime's `quantize_static` in the layout (default: the config's first)."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    from edgetl.bench.fingerprint import has_vnni

    method = {"minmax": CalibrationMethod.MinMax, "max": CalibrationMethod.MinMax,
              "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}.get(
        cfg.calibration, CalibrationMethod.MinMax)  # (qat's `mse` calibrates in torch; ORT only derives the layout)
    extra: dict[str, Any] = {}
    if cfg.calibration == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    op_types = cfg.op_types or (["MatMul", "Gemm"] if task == "text" else None)
    if (layout or cfg.layouts()[0]) == "tensorrt":
        # TensorRT: symmetric int8, and biases stay float (TensorRT quantizes no bias; an int32 bias DQ is a violation)
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        return {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8, "per_channel": True,
                "reduce_range": False, "calibrate_method": method, "extra_options": extra,
                "op_types_to_quantize": [o for o in (op_types or WEIGHTED_OPS) if o in WEIGHTED_OPS]}
    arm = platform.machine().lower() in ("aarch64", "arm64")
    return {"activation_type": QuantType.QInt8 if arm else QuantType.QUInt8, "weight_type": QuantType.QInt8,
            "per_channel": cfg.per_channel, "reduce_range": (not arm) and not has_vnni(),
            "calibrate_method": method, "extra_options": extra, "op_types_to_quantize": op_types}
