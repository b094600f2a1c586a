"""`quantize`: INT8 by post-training quantization (`method: ptq`, ONNX Runtime's static quantizer on the FP32
ONNX) or quantization-aware training (`method: qat`, PT2E fake quantization on the PyTorch model, see
edgetl/quant/qat.py), exported in one or both Q/DQ layouts.

`layout: onnxruntime` is what ONNX Runtime runs fastest on this CPU (u8 activations / s8 weights on x86 with
VNNI, reduce_range without VNNI, s8/s8 on ARM; Q/DQ on outputs too, so kernels fuse). `layout: tensorrt` is
what TensorRT's explicit quantization accepts: symmetric int8 activations and weights (zero points 0),
per-channel weights, Q/DQ only in front of Conv/ConvTranspose/Gemm/MatMul (and residual Adds for QAT).
`layout: both` emits the two from the same calibration (PTQ) or the same trained scales (QAT).
`target:` is the older name of `layout:` and still accepted.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgetl.errors import RecipeError, StageError
from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StrictModel
from edgetl.stages.base import PlanState, Stage, StageContext
from edgetl.stages.base import TrainingStageConfig as TrainingFields

log = logging.getLogger(__name__)

TENSORRT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]
LAYOUTS = ("onnxruntime", "tensorrt")
TRAINING_KEYS = tuple(k for k in TrainingFields.model_fields if k not in ("type", "name")) + (
    "kd", "kd_weight", "kd_temperature")


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
    type: Literal["quantize"] = Field(description="Quantize to INT8: post-training (ptq) or quantization-aware (qat).")
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


class CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's quantizer."""

    def __init__(self, batches: list[dict[str, Any]]):
        self._batches = batches
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def layout_options(cfg: QuantizeConfig, task: str, layout: str | None = None) -> dict[str, Any]:
    """QuantType and flags for the layout (default: the config's first) on this machine."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    from edgetl.bench.fingerprint import has_vnni

    method = {"minmax": CalibrationMethod.MinMax, "max": CalibrationMethod.MinMax,
              "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}[cfg.calibration]
    extra: dict[str, Any] = {}
    if cfg.calibration == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    op_types = cfg.op_types or (["MatMul", "Gemm"] if task == "text" else None)
    if (layout or cfg.layouts()[0]) == "tensorrt":
        # TensorRT: symmetric int8, and biases stay float (TensorRT quantizes no bias; an int32 bias DQ is a violation)
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
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

    src, dst = Path(src).resolve(), Path(dst).resolve()  # we change directory below
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
        cfg: QuantizeConfig = self.config  # type: ignore[assignment]
        problems = []
        if cfg.layout and cfg.target and cfg.layout != cfg.target:
            problems.append(f"{self.field('target')}: `target: {cfg.target}` contradicts `layout: {cfg.layout}`; "
                            "`target` is the older name of `layout`: keep only `layout`")
        if cfg.method == "ptq":
            if not plan.has("onnx", "fp32"):
                problems.append(f"{self.field('type')}: quantize (ptq) needs an FP32 ONNX model: put an `export` stage "
                                "before it")
            if cfg.calibration == "mse":
                problems.append(f"{self.field('calibration')}: `mse` is not offered by ONNX Runtime's PTQ; use minmax, "
                                "percentile or entropy, or `method: qat`")
            qat_only = sorted(k for k in cfg.model_fields_set if k in TRAINING_KEYS + ("min_agreement_onnxruntime",))
            sens = cfg.sensitivity
            if sens is not None and (sens.mode != "one_at_a_time" or sens.score != "sqnr"):
                problems.append(f"{self.field('sensitivity')}: ptq ranks one node at a time by output SQNR "
                                "(mode: one_at_a_time, score: sqnr); the other modes need `method: qat`")
            for key in qat_only:
                problems.append(f"{self.field(key)}: only used by `method: qat` (ptq does not train); remove it or set "
                                "`method: qat`")
        else:
            if cfg.float_nodes:
                problems.append(f"{self.field('float_nodes')}: ptq only; qat keeps layers float with `fallback` "
                                "(ranked by `sensitivity`)")
            if importlib.util.find_spec("torchao") is None or importlib.util.find_spec("onnxscript") is None:
                problems.append(f"{self.field('method')}: qat needs torchao and onnxscript: pip install 'edgetl[qat]'")
            if not plan.has("pytorch"):
                problems.append(f"{self.field('method')}: qat needs a PyTorch model before it")
            if not cfg.per_channel:
                problems.append(f"{self.field('per_channel')}: qat always uses per-channel weight scales (TensorRT's "
                                "rule); remove `per_channel: false`")
        if cfg.calibration_data == "target":
            from edgetl.stages.finetune import adapt_target

            if adapt_target(recipe, self.index) is None:
                problems.append(f"{self.field('calibration_data')}: `target` means the target data of a finetune "
                                "stage's `adapt:` before this stage, and there is none; add `adapt: {method: ..., "
                                "target: ...}` to the finetune stage or use calibration_data: source")
        plan.available.append(("onnx", "int8"))
        return problems

    def calibration_split(self, ctx: StageContext) -> Any:
        """The calibration examples (a Split): a stratified sample of the training data, or with
        `calibration_data: target` a random sample of the adaptation target's inputs (labels -1)."""
        import numpy as np

        from edgetl.data.datasets import Split, load_target, stratified_subset
        from edgetl.stages.finetune import adapt_target

        cfg: QuantizeConfig = self.config  # type: ignore[assignment]
        target_cfg = adapt_target(ctx.recipe, self.index) if cfg.calibration_data == "target" else None
        if target_cfg is None:
            data = ctx.data()
            return data.train.take(stratified_subset(data.train.labels, cfg.samples, ctx.recipe.seed + 17))
        inputs = load_target(target_cfg).inputs
        idx = np.sort(np.random.default_rng(ctx.recipe.seed + 17).permutation(len(inputs))[: cfg.samples])
        return Split(inputs, np.full(len(inputs), -1, dtype=np.int64)).take(idx)

    def artifact_names(self) -> dict[str, str]:
        cfg: QuantizeConfig = self.config  # type: ignore[assignment]
        layouts = cfg.layouts()
        if len(layouts) == 1:
            return {layouts[0]: self.artifact_name}
        return {lay: f"{self.artifact_name}_{lay}" for lay in layouts}

    def execute(self, ctx: StageContext) -> list[Artifact]:
        cfg: QuantizeConfig = self.config  # type: ignore[assignment]
        if cfg.method == "qat":
            from edgetl.quant.run import run_qat

            return run_qat(self, ctx, cfg)
        return self._ptq(ctx, cfg)

    def _ptq(self, ctx: StageContext, cfg: QuantizeConfig) -> list[Artifact]:
        from onnxruntime.quantization import QuantFormat, quantize_static

        from edgetl.runtime.meta import read_onnx_meta, write_onnx_meta

        src_art = ctx.latest("onnx", "fp32")
        assert src_art is not None  # guaranteed by problems()
        src = ctx.path_of(src_art)
        meta = read_onnx_meta(src)
        calib = self.calibration_split(ctx)
        encode = meta.encoder()
        batch = 16
        # ONNX Runtime's histogram calibrators (percentile, entropy) stack every batch's outputs into one array, which
        # fails when text batches are padded to different lengths: pad them all to max_length (the pad tokens'
        # states then count in the histogram; minmax keeps each batch as short as its longest text)
        pad_to_max = meta.task == "text" and cfg.calibration in ("percentile", "entropy")
        batches = [encode(calib.inputs[i : i + batch], **({"pad_to_max": True} if pad_to_max else {}))
                   for i in range(0, len(calib), batch)]
        if meta.task == "text":  # the graph may not take every encoded input
            import onnx

            names = {i.name for i in onnx.load(str(src), load_external_data=False).graph.input}
            batches = [{k: v for k, v in b.items() if k in names} for b in batches]
        pre = ctx.work_dir / "preprocessed.onnx"
        preprocess_for_quantization(src, pre)
        produced = []
        try:
            for layout, name in self.artifact_names().items():
                folder = ctx.work_dir / ("onnx" if len(self.artifact_names()) == 1 else f"onnx-{layout}")
                folder.mkdir()
                opts = layout_options(cfg, meta.task, layout)
                opts.pop("layout")
                out = folder / "model.onnx"

                def quantize(excluded: list[str], out: Path = out, opts: dict[str, Any] = opts) -> Path:
                    from edgetl.quant.ptq_fallback import read_float_inputs

                    try:
                        quantize_static(str(pre), str(out), CalibrationReader(batches), quant_format=QuantFormat.QDQ,
                                        nodes_to_exclude=excluded or None, **opts)
                    except Exception as exc:
                        raise StageError(f"ONNX Runtime quantization failed: {type(exc).__name__}: {exc}") from exc
                    read_float_inputs(out, excluded)
                    return out

                extra: dict[str, Any] = {}
                pinned = self._pinned_float_nodes(cfg, pre)
                quantize(pinned)
                if pinned:
                    extra["float_nodes"] = pinned
                if cfg.fallback or cfg.sensitivity:
                    extra["float_nodes"] = self._ptq_fallback(ctx, cfg, src, pre, out, quantize, pinned, batches,
                                                              layout)
                if layout == "tensorrt":
                    from edgetl.quant.check_qdq import check_qdq
                    from edgetl.quant.layouts import drop_misplaced_qdq

                    extra["removed_misplaced_qdq"] = drop_misplaced_qdq(out)
                    extra["check_qdq_violations"] = len(check_qdq(out, allow_float=set(extra.get("float_nodes", []))))
                for f in src.parent.iterdir():
                    if f.name.startswith("tokenizer"):
                        shutil.copyfile(f, folder / f.name)
                info = {
                    "params": src_art.info.get("params"), "opset": _opset(out), "method": cfg.method, "layout": layout,
                    "calibration": cfg.calibration, "calibration_samples": int(len(calib)),
                    "calibration_data": cfg.calibration_data,
                    **({"calibration_padded_to": int(batches[0]["input_ids"].shape[1])} if pad_to_max else {}),
                    "per_channel": opts["per_channel"], "activation_type": opts["activation_type"].name,
                    "weight_type": opts["weight_type"].name, "reduce_range": opts["reduce_range"],
                    "op_types": opts["op_types_to_quantize"], "qdq_nodes": _count_qdq(out), **extra,
                }
                write_onnx_meta(out, labels=meta.labels, preprocessing=meta.preprocessing, task=meta.task, info=info)
                if len(produced) == 0:
                    ctx.metrics.update({k: info[k] for k in ("method", "layout", "calibration", "calibration_samples",
                                                             "calibration_data", "qdq_nodes")})
                ctx.metrics.setdefault("layouts", {})[layout] = {"artifact": name, "qdq_nodes": info["qdq_nodes"]}
                produced.append(ctx.artifact(name, "onnx", "int8", f"{folder.name}/model.onnx", parent=src_art.name,
                                             info=info))
        finally:
            pre.unlink(missing_ok=True)
        return produced


    def _pinned_float_nodes(self, cfg: QuantizeConfig, model_path: Path) -> list[str]:
        import fnmatch

        import onnx

        if not cfg.float_nodes:
            return []
        names = [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.name]
        chosen: list[str] = []
        for pattern in cfg.float_nodes:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                examples = ", ".join(n for n in names if any(op in n for op in ("MatMul", "Gemm", "Conv")))[:300]
                raise RecipeError(f"{self.field('float_nodes')}: {pattern!r} matches no node of the ONNX model",
                                  hint=f"node names look like: {examples} ...")
            chosen += [h for h in hits if h not in chosen]
        return chosen

    def _ptq_fallback(self, ctx: StageContext, cfg: QuantizeConfig, float_path: Path, quantized_from: Path, out: Path,
                      quantize, pinned: list[str], batches: list[dict[str, Any]], layout: str) -> list[str]:
        """Rank the INT8 file's nodes (`sensitivity` set: one at a time by output SQNR; else by input SQNR), then,
        with `fallback`, keep the most sensitive float until the budget holds."""
        from edgetl.backends.onnxruntime import make_session, predict
        from edgetl.data.datasets import stratified_subset
        from edgetl.errors import NonFiniteError
        from edgetl.quant.ptq_fallback import choose_float_nodes, node_sensitivity, output_sensitivity
        from edgetl.runtime.meta import read_onnx_meta
        from edgetl.train.finite import nonfinite

        if cfg.sensitivity:
            used = batches[: max(1, -(-cfg.sensitivity.samples // 16))]  # calibration batches hold 16 examples
            ranked, by = output_sensitivity(quantized_from, out, used), "output SQNR, one node quantized at a time"
        else:
            used = batches[:8]
            ranked, by = node_sensitivity(quantized_from, out, used), "SQNR of the node's int8 input activation"
        samples = sum(len(next(iter(b.values()))) for b in used)
        ranked = [r for r in ranked if r["node"] not in pinned]
        ctx.metrics.setdefault("ranking", {})[layout] = {
            "by": by, "samples": int(samples), "nodes": len(ranked),
            "table": [{k: r[k] for k in ("rank", "node", "op", "sqnr_db")} for r in ranked[:30]]}
        fb = cfg.fallback
        if fb is None:
            return pinned
        data = ctx.data()
        idx = stratified_subset(data.eval.labels, min(fb.samples, len(data.eval)), ctx.recipe.seed + 29)
        evals = data.eval.take(idx)
        meta = read_onnx_meta(float_path)
        encode = meta.encoder()

        def accuracy(path: Path) -> float:
            logits = predict(make_session(path, threads=None), encode, evals.inputs, batch_size=32)
            bad = nonfinite(logits=logits)
            if bad:  # argmax of NaN rows is class 0: the search would compare made-up accuracies
                raise NonFiniteError(f"ptq fallback: {path.name} gives NaN or infinite outputs on {len(evals)} eval "
                                     f"examples ({bad})", hint="an earlier stage diverged; rerun it with a lower lr")
            return round(float((logits.argmax(-1) == evals.labels).mean()), 4)

        float_acc = accuracy(float_path)
        first = accuracy(out)  # as quantized by the caller (pinned nodes float)
        all_int8 = ctx.work_dir / f"all-int8-{layout}.onnx"  # kept for the latency comparison below
        shutil.copyfile(out, all_int8)
        decision = choose_float_nodes(
            ranked, lambda extra: quantize(pinned + extra), accuracy, float_acc, max_accuracy_drop=fb.max_accuracy_drop,
            max_layers=fb.max_layers, first_accuracy=first)
        if decision["float_nodes"] != decision["steps"][-1]["float_nodes"]:
            quantize(pinned + decision["float_nodes"])  # the last file written was not the one chosen
        if decision["float_nodes"]:
            # text at max_length tokens, as the QAT fallback times it: a short sentence would hide the cost
            feed = encode(evals.inputs[:1], pad_to_max=True) if meta.task == "text" else encode(evals.inputs[:1])
            decision["latency_ms"] = fallback_latency(all_int8, out, feed, ctx.recipe.seed)
        all_int8.unlink(missing_ok=True)
        decision.update({"samples": int(len(evals)), "pinned_float_nodes": pinned})
        ctx.metrics.setdefault("fallback", {})[layout] = decision
        log.info("ptq fallback (%s): %s float, accuracy %.4f vs FP32 %.4f (budget %s)", layout,
                 ", ".join(decision["float_nodes"]) or "nothing", decision["accuracy"], float_acc,
                 "met" if decision["budget_met"] else "NOT met")
        return pinned + decision["float_nodes"]


def fallback_latency(all_int8: Path, with_fallback: Path, feed_raw: dict[str, Any], seed: int,
                     note: str = "p50 ms, batch 1 (text: max_length tokens), 2 threads, 300 interleaved iterations each"
                     ) -> dict[str, Any]:
    """What a fallback costs (QAT and PTQ): both files timed interleaved in ONNX Runtime, batch 1, 2 threads, 300 runs
    each (with 60, a shared machine's noise (CoV 50 %+) once showed a fallback that costs ~30 % as 5 % *faster*)."""
    from edgetl.backends.onnxruntime import make_session, session_inputs
    from edgetl.bench.protocol import summarize, time_interleaved

    fns = {}
    for key, path in (("all_int8", all_int8), ("with_fallback", with_fallback)):
        sess = make_session(path, threads=2)
        feed = session_inputs(sess, feed_raw)
        fns[key] = (lambda s=sess, f=feed: s.run(None, f))
    samples = time_interleaved(fns, iterations=300, warmup_seconds=0.5, seed=seed)
    out: dict[str, Any] = {k: round(summarize(v)["p50"], 4) for k, v in samples.items()}
    out["note"] = note
    out["cost_ratio"] = round(out["with_fallback"] / out["all_int8"], 4)
    return out


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _count_qdq(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
