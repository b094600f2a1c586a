"""What a careful ONNX Runtime user does without edgetl, as a point to put beside edgetl's: static PTQ of the FP32
file tuned the way ONNX Runtime's docs advise, and (text) dynamic INT8. Searches and benchmarks compare against it
rather than against `quantize_static`'s defaults (per-tensor, QInt8 activations), which nobody careful ships."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
HELD_OUT = 500  # training examples (not the eval split) that pick the calibration method


def careful_ort_ptq(fp32: Path, out_dir: Path, train: Any, samples: int = 256, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """quant_pre_process, QDQ, per-channel weights, QUInt8 activations (reduce_range only without VNNI, where the
    u8 x s8 product can saturate), text: MatMul/Gemm only; the calibration method (MinMax, Entropy, Percentile)
    that scores best on training examples held out from calibration. `fp32`: an .onnx file with its model.json;
    `train`: a Split. Returns out_dir/model.onnx (with the FP32 file's sidecars) and what was chosen."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgetl.backends.onnxruntime import predict
    from edgetl.bench.fingerprint import has_vnni
    from edgetl.data.datasets import stratified_subset
    from edgetl.quant.ptq import CalibrationReader, preprocess_for_quantization
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.runtime.ort import make_session

    meta = read_onnx_meta(fp32)
    encode = meta.encoder()
    out_dir.mkdir(parents=True, exist_ok=True)
    pre = out_dir / "model.pre.onnx"
    preprocess_for_quantization(fp32, pre)
    idx = stratified_subset(train.labels, samples + HELD_OUT, seed)
    calib, check = train.take(idx[:samples]), train.take(idx[samples:])
    names = {i.name for i in make_session(pre, threads=1).get_inputs()}
    batches = [{k: v for k, v in encode(calib.inputs[i : i + 16]).items() if k in names}
               for i in range(0, len(calib), 16)]
    ops = ["MatMul", "Gemm"] if meta.task == "text" else None  # (attention: activation x activation stays float)
    scores: dict[str, float] = {}
    try:
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Entropy, CalibrationMethod.Percentile):
            path = out_dir / f"model-{method.name.lower()}.onnx"
            quantize_static(str(pre), str(path), CalibrationReader(batches), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=not has_vnni(), calibrate_method=method, op_types_to_quantize=ops)
            logits = predict(make_session(path, threads=2), encode, check.inputs, batch_size=32)
            scores[method.name] = round(float(np.mean(logits.argmax(-1) == check.labels)), 4)
            log.info("careful ONNX Runtime PTQ, %s calibration: %.4f on %d held-out training examples", method.name,
                     scores[method.name], len(check))
        best = max(scores, key=lambda k: scores[k])
        (out_dir / f"model-{best.lower()}.onnx").replace(out_dir / "model.onnx")
    finally:
        pre.unlink(missing_ok=True)
        for f in out_dir.glob("model-*.onnx"):
            f.unlink()
    copy_sidecars(fp32, out_dir)
    return out_dir / "model.onnx", {
        "what": "ONNX Runtime quantize_static as a careful user runs it", "calibration": best,
        "held_out_accuracy": scores, "held_out_examples": len(check), "calibration_samples": len(calib),
        "per_channel": True, "activation_type": "QUInt8", "reduce_range": not has_vnni(),
        "op_types": ops or "ONNX Runtime's defaults", "quant_pre_process": True}


def ort_dynamic_int8(fp32: Path, out_dir: Path) -> Path:
    """ONNX Runtime's `quantize_dynamic` (per-channel INT8 weights, activations quantized at run time): its
    advice for transformers."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgetl.quant.ptq import preprocess_for_quantization

    out_dir.mkdir(parents=True, exist_ok=True)
    pre = out_dir / "model.pre.onnx"
    try:
        preprocess_for_quantization(fp32, pre)
        quantize_dynamic(str(pre), str(out_dir / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        pre.unlink(missing_ok=True)
    copy_sidecars(fp32, out_dir)
    return out_dir / "model.onnx"


def copy_sidecars(fp32: Path, out_dir: Path) -> None:
    """model.json (labels, preprocessing) and a text model's tokenizer travel with the quantized file."""
    for f in fp32.parent.iterdir():
        if f.is_file() and not f.name.endswith(".onnx"):
            shutil.copyfile(f, out_dir / f.name)
