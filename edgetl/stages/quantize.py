"""`quantize`: INT8 post-training quantization with ONNX Runtime's static quantizer (QDQ format).

`target: onnxruntime` picks the layout ONNX Runtime runs fastest on this CPU (u8 activations / s8 weights
on x86, reduce_range without VNNI, s8/s8 on ARM). `target: tensorrt` forces what TensorRT's explicit
quantization accepts: symmetric int8 activations and weights (zero points 0), per-channel weights, Q/DQ
only in front of Conv/ConvTranspose/Gemm/MatMul.
"""

from __future__ import annotations

import logging
import platform
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgetl.errors import StageError
from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StageConfig
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)

TENSORRT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]


class QuantizeConfig(StageConfig):
    type: Literal["quantize"] = Field(description="Quantize the newest FP32 ONNX model to INT8.")
    method: Literal["ptq"] = Field("ptq", description="`ptq`: post-training static quantization with calibration.")
    target: Literal["onnxruntime", "tensorrt"] = Field(
        "onnxruntime", description="Runtime the INT8 layout is made for (see int8 notes in the README)."
    )
    calibration: Literal["minmax", "percentile", "entropy"] = Field(
        "minmax", description="How activation ranges are chosen from the calibration samples."
    )
    percentile: float = Field(99.999, gt=90, le=100, description="calibration: percentile -> the percentile kept.")
    samples: int = Field(256, ge=1, le=100000, description="Training examples used for calibration (stratified).")
    per_channel: bool = Field(True, description="Per-output-channel weight scales (recommended for CNNs).")
    op_types: list[str] | None = Field(
        None,
        description="ONNX op types to quantize (default: everything ONNX Runtime can for images; MatMul/Gemm for "
        "text, where quantizing Add/LayerNorm/Gather costs accuracy and speed).",
    )


class CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's quantizer."""

    def __init__(self, batches: list[dict[str, Any]]):
        self._batches = batches
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def layout_options(cfg: QuantizeConfig, task: str) -> dict[str, Any]:
    """QuantType and flags for the target runtime on this machine."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    from edgetl.bench.fingerprint import has_vnni

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[cfg.calibration]
    extra: dict[str, Any] = {}
    if cfg.calibration == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    op_types = cfg.op_types or (["MatMul", "Gemm"] if task == "text" else None)
    if cfg.target == "tensorrt":
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True})
        return {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8, "per_channel": True,
                "reduce_range": False, "calibrate_method": method, "extra_options": extra,
                "op_types_to_quantize": [o for o in (op_types or TENSORRT_OPS) if o in TENSORRT_OPS],
                "layout": "tensorrt"}
    arm = platform.machine().lower() in ("aarch64", "arm64")
    return {"activation_type": QuantType.QInt8 if arm else QuantType.QUInt8, "weight_type": QuantType.QInt8,
            "per_channel": cfg.per_channel, "reduce_range": (not arm) and not has_vnni(),
            "calibrate_method": method, "extra_options": extra, "op_types_to_quantize": op_types,
            "layout": "onnxruntime"}


def preprocess_for_quantization(src: Path, dst: Path) -> None:
    """ONNX Runtime's pre-processing (shape inference + graph optimisation); symbolic shape inference
    fails on some exported transformers, so retry without it before giving up."""
    import os
    import tempfile

    from onnxruntime.quantization.shape_inference import quant_pre_process

    # On incomplete symbolic inference ONNX Runtime dumps sym_shape_infer_temp.onnx (+ data) into the
    # current directory; run it from a scratch folder so nothing lands in the user's working directory.
    cwd = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="edgetl-quant-")
    os.chdir(scratch)
    try:
        quant_pre_process(str(src), str(dst))
    except Exception as exc:  # noqa: BLE001 - retried below with the documented workaround
        log.info("quant_pre_process with symbolic shapes failed (%s); retrying without", type(exc).__name__)
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)


class QuantizeStage(Stage):
    type = "quantize"
    Config = QuantizeConfig
    default_name = "onnx_int8"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        problems = []
        if not plan.has("onnx", "fp32"):
            problems.append(f"{self.field('type')}: quantize (ptq) needs an FP32 ONNX model: put an `export` stage before it")
        plan.available.append(("onnx", "int8"))
        return problems

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from onnxruntime.quantization import QuantFormat, quantize_static

        from edgetl.data.datasets import stratified_subset
        from edgetl.runtime.meta import read_onnx_meta, write_onnx_meta

        cfg: QuantizeConfig = self.config  # type: ignore[assignment]
        src_art = ctx.latest("onnx", "fp32")
        assert src_art is not None  # guaranteed by problems()
        src = ctx.path_of(src_art)
        meta = read_onnx_meta(src)
        data = ctx.data()
        idx = stratified_subset(data.train.labels, cfg.samples, ctx.recipe.seed + 17)
        calib = data.train.take(idx)
        encode = meta.encoder()
        batch = 16
        batches = [encode(calib.inputs[i : i + batch]) for i in range(0, len(calib), batch)]
        if meta.task == "text":  # the graph may not take every encoded input
            import onnx

            names = {i.name for i in onnx.load(str(src), load_external_data=False).graph.input}
            batches = [{k: v for k, v in b.items() if k in names} for b in batches]
        folder = ctx.work_dir / "onnx"
        folder.mkdir()
        pre = ctx.work_dir / "preprocessed.onnx"
        preprocess_for_quantization(src, pre)
        opts = layout_options(cfg, meta.task)
        layout = opts.pop("layout")
        out = folder / "model.onnx"
        try:
            quantize_static(str(pre), str(out), CalibrationReader(batches), quant_format=QuantFormat.QDQ, **opts)
        except Exception as exc:
            raise StageError(f"ONNX Runtime quantization failed: {type(exc).__name__}: {exc}") from exc
        finally:
            pre.unlink(missing_ok=True)
        for f in src.parent.iterdir():
            if f.name.startswith("tokenizer"):
                shutil.copyfile(f, folder / f.name)
        info = {
            "params": src_art.info.get("params"), "opset": _opset(out), "method": cfg.method, "layout": layout,
            "calibration": cfg.calibration, "calibration_samples": int(len(calib)), "per_channel": opts["per_channel"],
            "activation_type": opts["activation_type"].name, "weight_type": opts["weight_type"].name,
            "reduce_range": opts["reduce_range"], "op_types": opts["op_types_to_quantize"],
            "qdq_nodes": _count_qdq(out),
        }
        write_onnx_meta(out, labels=meta.labels, preprocessing=meta.preprocessing, task=meta.task, info=info)
        ctx.metrics.update({k: info[k] for k in ("layout", "calibration", "calibration_samples", "qdq_nodes")})
        return [ctx.artifact(self.artifact_name, "onnx", "int8", "onnx/model.onnx", parent=src_art.name, info=info)]


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _count_qdq(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
