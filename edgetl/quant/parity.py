"""Parity of the deployed artifact: the exported INT8 ONNX run by ONNX Runtime against the fake-quantized
torch model on the same eval examples (top-1 agreement, max and mean abs logit difference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def onnx_parity(path: Path, encoder, raw_inputs: Any, reference_logits: np.ndarray, batch_size: int = 32
                ) -> dict[str, float]:
    from edgetl.backends.onnxruntime import predict
    from edgetl.errors import ExportError
    from edgetl.runtime.ort import make_session
    from edgetl.train.finite import nonfinite

    session = make_session(path, threads=None)
    logits = predict(session, encoder, raw_inputs, batch_size=batch_size)
    plain = predict(unoptimized_session(path), encoder, raw_inputs, batch_size=batch_size)
    bad = nonfinite(reference_logits=reference_logits, onnx_runtime_logits=logits, unoptimized_onnx_runtime_logits=plain)
    if bad:  # a NaN difference passes every "<= atol" gate and NaN rows argmax to the same class
        raise ExportError(f"INT8 parity of {path.name} cannot pass on {len(raw_inputs)} eval examples: {bad}",
                          hint="the weights or activation ranges hold NaN or infinity (training diverged?); "
                               "rerun the earlier stages with a lower lr")
    diff = np.abs(logits - reference_logits)
    return {"top1_agreement": float((logits.argmax(-1) == reference_logits.argmax(-1)).mean()),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "samples": int(len(raw_inputs)),
            # the same file in ONNX Runtime with its graph optimizations off (no fusions, no NCHWc or int8
            # kernels): how far two executions of one int8 graph drift apart through float rounding alone
            "unoptimized_ort_agreement": float((plain.argmax(-1) == logits.argmax(-1)).mean()),
            "unoptimized_ort_max_abs_diff": float(np.abs(plain - logits).max())}


def unoptimized_session(model: Path | bytes):
    """ONNX Runtime CPU with graph optimizations off: the arithmetic of the graph as written (a file or bytes)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=so,
                                providers=["CPUExecutionProvider"])


def rounding_noise_floor(module, encoder, raw_inputs: Any, reference_logits: np.ndarray, batch_size: int = 32,
                         rel: float = 1e-6) -> dict[str, float]:
    """How much the fake-quant torch model disagrees with *itself* when its float inputs move by `rel`
    (1e-6: float rounding): a deep network on coarse int8 grids flips values across rounding boundaries,
    and that sets the best agreement any other implementation (ONNX Runtime) can reach. Integer inputs
    (token ids) are left alone, so text models usually show a floor of exact agreement."""
    import torch

    from edgetl.models.base import to_torch

    outs = []
    with torch.no_grad():
        for start in range(0, len(raw_inputs), batch_size):
            feed = to_torch(encoder(raw_inputs[start : start + batch_size]))
            feed = {k: v * (1 + rel) if v.is_floating_point() else v for k, v in feed.items()}
            outs.append(module(**feed).float().numpy())
    logits = np.concatenate(outs)
    from edgetl.errors import ExportError
    from edgetl.train.finite import nonfinite

    bad = nonfinite(reference_logits=reference_logits, perturbed_logits=logits)
    if bad:  # the floor feeds the parity gate's thresholds: NaN there would lower them to nothing
        raise ExportError(f"the fake-quant model's outputs are not finite ({bad})",
                          hint="training diverged or calibration saw NaN; rerun with a lower lr")
    diff = np.abs(logits - reference_logits)
    return {"top1_agreement": float((logits.argmax(-1) == reference_logits.argmax(-1)).mean()),
            "max_abs_diff": float(diff.max()), "relative_input_change": rel}


def int8_vs_float(float_path: Path, int8_path: Path, raw_inputs: Any, labels: np.ndarray | None = None,
                  batch_size: int = 32) -> dict[str, Any]:
    """The INT8 file against the FP32 file it was quantized from, both in ONNX Runtime on the same examples:
    top-1 agreement and logit differences, and with labels the accuracy of each (labels < 0 are ignored)."""
    from edgetl.backends.onnxruntime import predict
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.runtime.ort import make_session

    encoder = read_onnx_meta(int8_path).encoder()
    ref = predict(make_session(float_path, threads=None), encoder, raw_inputs, batch_size=batch_size)
    res: dict[str, Any] = onnx_parity(int8_path, encoder, raw_inputs, ref, batch_size)
    if labels is not None and (labels >= 0).any():
        known = labels >= 0
        logits = predict(make_session(int8_path, threads=None), encoder, raw_inputs, batch_size=batch_size)
        res["float_accuracy"] = round(float((ref.argmax(-1) == labels)[known].mean()), 4)
        res["int8_accuracy"] = round(float((logits.argmax(-1) == labels)[known].mean()), 4)
    return res
