"""Configuration of INT8 quantization (`edgetl.quantize`, the `quantize` recipe stage). Light: pydantic only.

`layout: onnxruntime` is what ONNX Runtime runs fastest on this CPU (u8 activations / s8 weights on x86 with
VNNI, reduce_range without VNNI, s8/s8 on ARM; Q/DQ on outputs too, so kernels fuse). `layout: tensorrt` is
what TensorRT's explicit quantization accepts: symmetric int8 activations and weights (zero points 0),
per-channel weights, Q/DQ only in front of Conv/ConvTranspose/Gemm/MatMul (and residual Adds for QAT).
`layout: both` emits the two from the same calibration (PTQ) or the same trained scales (QAT).
`target:` is the older name of `layout:` and still accepted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgetl.recipe.schema import StrictModel
from edgetl.train.config import TrainingFields

LAYOUTS = ("onnxruntime", "tensorrt")
# seed offsets: each random subset draws its own stream, the same one from run to run
CALIBRATION_SEED, SENSITIVITY_SEED, FALLBACK_SEED = 17, 29, 31
# fields only QAT reads (it trains; PTQ does not)
QAT_ONLY = (*(k for k in TrainingFields.model_fields), "kd", "kd_weight", "kd_temperature",
            "min_agreement_onnxruntime")


class SensitivityConfig(StrictModel):
    mode: Literal["one_at_a_time", "all_but_one"] = Field(
        "one_at_a_time", description="`one_at_a_time`: only this layer quantized; `all_but_one`: all layers but this one.")
    score: Literal["sqnr", "accuracy"] = Field(
        "sqnr", description="`sqnr`: output SQNR vs the float model on calibration examples (fast); "
        "`accuracy`: fake-quant accuracy on eval examples.")
    samples: int = Field(128, ge=8, le=100000, description="Examples scored per layer.")


class FallbackConfig(StrictModel):
    max_accuracy_drop: float = Field(
        description="Keep the most sensitive layers in float until the accuracy drop vs the float model is at most "
        "this (0.01 = 1 point), measured on `samples` eval examples: qat: of the fake-quant model before training; "
        "ptq: of the INT8 file in ONNX Runtime vs the FP32 file.", ge=0, le=1)
    max_layers: int = Field(8, ge=1, le=1000, description="At most this many layers stay float.")
    samples: int = Field(500, ge=50, le=100000, description="Eval examples used to measure the drop during the search.")


class QuantizeConfig(TrainingFields):
    """INT8 quantization, `edgetl.quantize` and the `quantize` recipe stage: one config, `method` picks PTQ or QAT."""

    method: Literal["ptq", "qat"] = Field(
        "ptq", description="`ptq`: static quantization of the newest FP32 ONNX with calibration. `qat`: fake-quantize "
        "the current PyTorch model (PT2E, TensorRT rules), calibrate, train, export.")
    layout: Literal["onnxruntime", "tensorrt", "both"] | None = Field(
        None, description="Q/DQ layout(s) to export: `onnxruntime` (fast on ONNX Runtime CPU), `tensorrt` (TensorRT's "
        "rules; passes `edgetl check-qdq`), or `both` from the same scales. Default: onnxruntime for ptq, both for qat.")
    target: Literal["onnxruntime", "tensorrt"] | None = Field(
        None, description="Older name of `layout` (one layout), still accepted.")
    calibration: Literal["minmax", "max", "percentile", "entropy", "mse"] = Field(
        "minmax", description="How activation ranges are chosen from the calibration samples (`max` = `minmax`; "
        "`mse` for qat only).")
    percentile: float = Field(99.999, gt=90, le=100, description="calibration: percentile -> the percentile kept.")
    samples: int = Field(256, ge=1, le=100000, description="Training examples used for calibration (stratified).")
    calibration_data: Literal["source", "target"] = Field(
        "source", description="Where calibration examples come from: `source`: the recipe's training data; "
        "`target`: the deployment site's inputs (`adapt.target` of the newest finetune stage before this one), a "
        "random sample, no labels needed.")
    embeddings: Literal["int8", "float"] = Field(
        "int8", description="Embedding tables (a Gather from a float table of 1024+ rows: a transformer's word "
        "embeddings) in the onnxruntime layout: `int8` stores them with one scale per row (weight-only; the "
        "gathered rows are scaled back to float), `float` keeps them. The tensorrt layout keeps them float.")
    per_channel: bool = Field(True, description="Per-output-channel weight scales (recommended for CNNs).")
    op_types: list[str] | None = Field(
        None,
        description="ONNX op types to quantize in the onnxruntime layout (default: everything ONNX Runtime can for "
        "images; MatMul/Gemm for text, where quantizing Add/LayerNorm/Gather costs accuracy and speed).",
    )
    # QAT (the TrainingFields above are its optimisation settings)
    epochs: float = Field(1.0, gt=0, le=1000, description="qat: passes over the training data.")
    lr: float = Field(5e-5, gt=0, le=1, description="qat: peak learning rate of AdamW (small: the model is trained).")
    kd: Literal["float", "none"] = Field("float", description="qat: distil from the float model's logits (`none`: "
                                         "hard labels only).")
    kd_weight: float = Field(1.0, ge=0, le=100, description="qat: weight of the KD term added to cross-entropy.")
    kd_temperature: float = Field(2.0, gt=0, le=100, description="qat: softmax temperature of KD.")
    sensitivity: SensitivityConfig | None = Field(
        None, description="Per-layer sensitivity analysis, reported as a ranked table (ptq: one node quantized at a "
        "time, output SQNR; also the order `fallback` tries; without it ptq's fallback ranks by input SQNR).")
    fallback: FallbackConfig | None = Field(
        None, description="Keep the most sensitive layers in float until an accuracy budget holds (qat: ranked by "
        "`sensitivity`; ptq: by the SQNR of each layer's int8 input activation in the INT8 file).")
    float_nodes: list[str] | None = Field(
        None, description="ptq: ONNX node names (fnmatch patterns, e.g. `*/output/dense/MatMul`) kept in float.")
    parity_samples: int = Field(256, ge=1, le=100000, description="Eval examples on which the INT8 ONNX in ONNX Runtime is "
                                "compared with the fake-quant torch model (qat).")
    min_agreement: float = Field(0.99, ge=0, le=1, description="qat: smallest allowed top-1 agreement of the tensorrt "
                                 "layout (the exact fake-quant graph) with the fake-quant torch model.")
    parity_atol: float = Field(0.05, gt=0, description="qat: parity fails only when top-1 agreement is below its minimum "
                               "*and* the max abs logit difference exceeds this (flipped near-ties are not failures).")
    min_agreement_onnxruntime: float = Field(
        0.97, ge=0, le=1, description="qat: the same for the onnxruntime layout, which also quantizes tensors QAT "
        "did not (conv outputs, Adds) with calibrated ranges.")

    def layouts(self) -> list[str]:
        chosen = self.layout or self.target or ("both" if self.method == "qat" else "onnxruntime")
        return list(LAYOUTS) if chosen == "both" else [chosen]

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong and how to fix it) for combinations the field types cannot refuse alone."""
        out = []
        if self.layout and self.target and self.layout != self.target:
            out.append(("target", f"`target: {self.target}` contradicts `layout: {self.layout}`; `target` is the older "
                                  "name of `layout`: keep only `layout`"))
        if self.method == "ptq":
            if self.calibration == "mse":
                out.append(("calibration", "`mse` is not offered by ONNX Runtime's PTQ; use minmax, percentile or "
                                           "entropy, or `method: qat`"))
            sens = self.sensitivity
            if sens is not None and (sens.mode != "one_at_a_time" or sens.score != "sqnr"):
                out.append(("sensitivity", "ptq ranks one node at a time by output SQNR (mode: one_at_a_time, "
                                           "score: sqnr); the other modes need `method: qat`"))
            for key in sorted(k for k in self.model_fields_set if k in QAT_ONLY):
                out.append((key, "only used by `method: qat` (ptq does not train); remove it or set `method: qat`"))
        else:
            if self.float_nodes:
                out.append(("float_nodes", "ptq only; qat keeps layers float with `fallback` (ranked by "
                                           "`sensitivity`)"))
            if not self.per_channel:
                out.append(("per_channel", "qat always uses per-channel weight scales (TensorRT's rule); remove "
                                           "`per_channel: false`"))
        return out
