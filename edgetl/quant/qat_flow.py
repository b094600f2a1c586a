"""Quantization-aware training of a PyTorch model: fake-quantize (PT2E, TensorRT's rules), calibrate,
(sensitivity, fallback), train, convert, export the tensorrt layout and derive the onnxruntime one from the same
trained scales, check TensorRT's rules, check parity of each INT8 file with the fake-quant model."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.onnx_graph import count_qdq
from edgetl.errors import ExportError, StageError
from edgetl.quant.config import FALLBACK_SEED, SENSITIVITY_SEED, QuantizeConfig, SensitivityConfig
from edgetl.quant.options import layout_options
from edgetl.quant.ptq import CALIB_BATCH, fallback_latency
from edgetl.runtime.preprocess import latency_feed

log = logging.getLogger(__name__)
INT_KERNEL_REL = 1e-4  # how far ONNX Runtime's integer kernels move values, relative (see the parity floors below)


def qat_model(model: Any, data: Any, calibration: Any, folders: dict[str, Path], cfg: QuantizeConfig, *,
              work_dir: Path, seed: int = 0, progress: Any = None, loss: Any = None, metric: Any = None
              ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Any]:
    """QAT of `model` (an EdgeModel) on `data` (a DataBundle), calibrated on the Split `calibration`, written
    once per layout into `folders[layout]` (model.onnx + model.json). `work_dir`: scratch space.
    Returns ({layout: info written to the sidecar}, metrics, the fake-quant model as an EdgeModel)."""
    import torch

    from edgetl.data.datasets import stratified_subset
    from edgetl.models.base import to_torch
    from edgetl.quant import calibrate as cal
    from edgetl.quant import qat
    from edgetl.quant.sensitivity import choose_fallback, layer_sensitivity
    from edgetl.train.finite import over, under
    from edgetl.train.loop import Trainer, evaluate, predict_logits, seed_everything

    seed_everything(seed)
    model.module.eval()
    encode = model.encoder()
    calib = calibration  # training data, or the adaptation target's inputs
    raw_batches = [calib.inputs[i : i + CALIB_BATCH] for i in range(0, len(calib), CALIB_BATCH)]
    batches = [to_torch(encode(b)) for b in raw_batches]
    example = to_torch(encode(data.train.inputs[:2]))
    method = "max" if cfg.calibration in ("minmax", "max") else cfg.calibration
    metrics: dict[str, Any] = {"method": "qat", "calibration": method, "calibration_samples": int(len(calib)),
                               "calibration_data": cfg.calibration_data}

    def fq_model(gm):
        return qat.as_edge_model(model, gm)

    def calibrated(skip=frozenset()):
        gm, quantizer = qat.prepare(model, example, set(skip))
        cal.calibrate(gm, batches, method, cfg.percentile)
        return gm, quantizer

    try:
        prepared, quantizer = calibrated()
    except Exception as exc:
        raise StageError(f"PT2E capture/prepare failed for {model.source}: {type(exc).__name__}: {exc}",
                         hint="the model must be traceable by torch.export; use `method: ptq` for this model") from exc
    layers = qat.layers_of(prepared)
    metrics["quantized_layers"] = len(quantizer.annotated_layers)
    sens_rows = fallback = None
    all_int8 = None
    if cfg.sensitivity or cfg.fallback:
        sc = cfg.sensitivity or SensitivityConfig()
        eval_idx = stratified_subset(data.eval.labels, min(sc.samples, len(data.eval)), seed + SENSITIVITY_SEED)
        sens_eval = data.eval.take(eval_idx)
        sens_batches = batches[: max(1, sc.samples // CALIB_BATCH)]
        sens_rows = layer_sensitivity(prepared, layers, sens_batches, mode=sc.mode, score=sc.score,
                                      accuracy_fn=lambda gm: evaluate(fq_model(gm), sens_eval, metric=metric))
        metrics["sensitivity"] = {"mode": sc.mode, "score": sc.score, "samples": int(sc.samples),
                                  "table": sens_rows}
        log.info("most sensitive layers: %s", ", ".join(r["layer"] for r in sens_rows[:5]))
    if cfg.fallback:
        fb = cfg.fallback
        fb_eval = data.eval.take(stratified_subset(data.eval.labels, min(fb.samples, len(data.eval)),
                                                   seed + FALLBACK_SEED))
        float_acc = evaluate(model, fb_eval, metric=metric)
        fallback = choose_fallback(prepared, layers, sens_rows, lambda gm: evaluate(fq_model(gm), fb_eval, metric=metric),
                                   float_acc, fb.max_accuracy_drop, fb.max_layers)
        fallback["samples"] = int(len(fb_eval))
        if fallback["float_layers"]:
            all_int8 = prepared  # kept to measure what the fallback costs in latency
            prepared, quantizer = calibrated(fallback["float_layers"])
            layers = qat.layers_of(prepared)
        metrics["fallback"] = fallback
    float_eval = evaluate(model, data.eval, metric=metric)
    before = evaluate(fq_model(prepared), data.eval, metric=metric)
    metrics.update({"float_eval_accuracy": float_eval, "fake_quant_accuracy_calibrated": before})
    log.info("float accuracy %.4f, fake-quant after calibration %.4f", float_eval, before)

    # ---- train
    for p in prepared.parameters():
        p.requires_grad_(True)
    extra = []
    if cfg.kd == "float" and cfg.kd_weight > 0:
        extra.append(qat.FloatTeacherKD(copy.deepcopy(model.module), cfg.kd_weight, cfg.kd_temperature))
    calibrated_state = copy.deepcopy(prepared.state_dict())
    settings = cfg.settings(seed)
    settings.loss, settings.metric = loss, metric
    trainer = Trainer(fq_model(prepared), data.train, data.eval, settings, extra_losses=extra, progress=progress,
                      description="qat")
    result = trainer.fit()
    metrics.update({"best_eval_accuracy": result.best_accuracy, "best_epoch": result.best_epoch,
                    "history": result.history, "train_seconds": result.seconds, "steps": result.steps,
                    "kd": cfg.kd if extra else "none", "kept": "trained"})
    if result.best_accuracy < before:
        # the Trainer keeps its best epoch; "epoch 0" (calibration only) is a candidate too: a short QAT can
        # lower the fake-quant accuracy of a small model
        prepared.load_state_dict(calibrated_state)
        metrics["kept"] = "calibrated"
        log.info("QAT training lowered eval accuracy (%.4f -> %.4f): keeping the calibrated model", before,
                 result.best_accuracy)
    fake_quant_accuracy = max(before, result.best_accuracy)
    qat.refresh_weight_ranges(prepared, batches[0])
    n_par = min(cfg.parity_samples, len(data.eval))
    parity_inputs = data.eval.inputs[:n_par]
    fq_logits = predict_logits(fq_model(prepared), parity_inputs, batch_size=32)
    from edgetl.quant.parity import rounding_noise_floor

    prepared.eval()  # (convert_pt2e below rewrites `prepared` in place: measure the floor first)
    fake_quant = fq_model(copy.deepcopy(prepared))  # handed back to the caller of edgetl.quantize
    floor = rounding_noise_floor(prepared, model.encoder(), parity_inputs, fq_logits)
    metrics["parity_noise_floor"] = floor
    # ONNX Runtime's integer kernels round each bias to the int32 grid s_in*s_w and requantize in fixed point: conv
    # outputs move by ~1e-4 relative (measured 7e-5 on EfficientNet-Lite0's stem), a hundred times float rounding,
    # so that layout's floor is measured at that size (a well-trained model barely moves; a barely trained one does)
    kernel_floor = (rounding_noise_floor(prepared, model.encoder(), parity_inputs, fq_logits, rel=INT_KERNEL_REL)
                    if "onnxruntime" in folders else None)
    if kernel_floor:
        metrics["parity_noise_floor_onnxruntime"] = kernel_floor

    # ---- convert + export
    trt_dir = folders.get("tensorrt", work_dir / "qat-tensorrt")
    trt_dir.mkdir(parents=True, exist_ok=True)
    trt_path = trt_dir / "model.onnx"
    with torch.no_grad():
        converted = qat.convert(prepared)
        try:
            export_info = export(converted, example, trt_path, model)
        except Exception as exc:
            raise ExportError(f"exporting the converted QAT model failed: {type(exc).__name__}: {exc}") from exc
    names = folders
    base_info = {"params": model.parameter_count(), "method": "qat", "calibration": method,
                 "calibration_samples": int(len(calib)), "per_channel": True, **export_info}
    from edgetl.quant.check_qdq import check_qdq, format_violations
    from edgetl.quant.layouts import strip_qdq

    float_nodes = strip_qdq(trt_path).float_nodes
    violations = check_qdq(trt_path, allow_float=set(float_nodes))
    metrics["check_qdq_tensorrt"] = {"violations": len(violations), "float_nodes": float_nodes}
    if violations:
        raise StageError("the tensorrt layout breaks TensorRT's Q/DQ rules (an edgetl bug):",
                         problems=format_violations(violations)[:20])
    paths: dict[str, Path] = {"tensorrt": trt_path}
    layout_info: dict[str, dict[str, Any]] = {
        "tensorrt": {"activation_type": "QInt8", "weight_type": "QInt8", "symmetric": True, "float_nodes": float_nodes,
                     "check_qdq_violations": 0}}
    if "onnxruntime" in names:
        paths["onnxruntime"], layout_info["onnxruntime"] = derive_ort(folders["onnxruntime"], cfg, model, trt_path,
                                                                      raw_batches)
    latency_cost = None
    if all_int8 is not None and "onnxruntime" in paths:
        latency_cost = fallback_latency_cost(work_dir, seed, cfg, model, all_int8, example, raw_batches,
                                             paths["onnxruntime"])
        metrics["fallback"]["latency_ms"] = latency_cost
    parity = {}
    for layout in ("tensorrt", "onnxruntime"):
        if layout not in paths:
            continue
        res = _parity(paths[layout], model, parity_inputs, fq_logits)
        parity[layout] = res
        own = kernel_floor if layout == "onnxruntime" and kernel_floor else floor
        # the gate never asks for more than the fake-quant model's own agreement under the rounding of the layout's
        # kernels (float, or ONNX Runtime's integer ones), nor more than two ONNX Runtime executions of this very
        # file agree (optimizations on vs off), minus one point: a flip that rounding alone produces is not an
        # export error
        need = min(cfg.min_agreement if layout == "tensorrt" else cfg.min_agreement_onnxruntime,
                   own["top1_agreement"] - 0.01, res["unoptimized_ort_agreement"] - 0.01)
        atol = max(cfg.parity_atol, 2.0 * own["max_abs_diff"])
        res.update({"min_agreement": round(need, 4), "atol": atol})
        log.info("parity %s: top-1 agreement %.4f, max |diff| %.3g (model's own rounding noise: agreement %.4f, "
                 "max |diff| %.3g)", layout, res["top1_agreement"], res["max_abs_diff"], own["top1_agreement"],
                 own["max_abs_diff"])
        # fail only when top-1 disagrees AND the logits differ beyond rounding noise (NaN fails both)
        if under(res["top1_agreement"], need) and over(res["max_abs_diff"], atol):
            raise ExportError(
                f"the {layout} INT8 ONNX disagrees with the fake-quant torch model on {res['samples']} eval examples: "
                f"top-1 agreement {res['top1_agreement']:.4f} (needed {need}), max abs logit diff "
                f"{res['max_abs_diff']:.3g} (allowed {atol:.3g})", hint="lower `min_agreement` only if you accept the deployed model "
                "behaving differently from the one that was evaluated; otherwise report it as a bug")
    metrics["parity"] = parity
    from edgetl.runtime.meta import write_onnx_meta

    infos = {}
    for layout in names:
        path = paths[layout]
        for fname, src in model.files.items():
            if fname.startswith("tokenizer"):
                shutil.copyfile(src, path.parent / fname)
        info = {**base_info, "layout": layout, **layout_info[layout], "parity": parity[layout],
                "qdq_nodes": count_qdq(path), "fake_quant_accuracy": fake_quant_accuracy}
        if fallback:
            info["fallback_float_layers"] = fallback["float_layers"]
        write_onnx_meta(path, labels=model.label_names, preprocessing=model.preprocessing, task=model.task, info=info)
        infos[layout] = info
    if "tensorrt" not in names:
        shutil.rmtree(trt_dir)
    return infos, metrics, fake_quant


def export(converted, example, path: Path, model) -> dict[str, Any]:
    from edgetl.quant.layouts import export_converted
    from edgetl.quant.qat import max_sequence

    return export_converted(converted, example, path, model.task, max_sequence(model))


def derive_ort(folder: Path, cfg, model, trt_path: Path, raw_batches) -> tuple[Path, dict[str, Any]]:
    from edgetl.quant.embeddings import int8_embeddings
    from edgetl.quant.layouts import derive_onnxruntime

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "model.onnx"
    opts = layout_options(cfg, model.task, "onnxruntime")
    encode = model.encoder()
    np_batches = [encode(b) for b in raw_batches]
    try:
        res = derive_onnxruntime(trt_path, out, np_batches, task=model.task, op_types=opts["op_types_to_quantize"],
                                 activation_type=opts["activation_type"], weight_type=opts["weight_type"],
                                 reduce_range=opts["reduce_range"], per_channel=True)
    except Exception as exc:
        raise StageError(f"deriving the onnxruntime layout failed: {type(exc).__name__}: {exc}") from exc
    embeddings = int8_embeddings(out) if cfg.embeddings == "int8" else None  # (checked by the parity gate after)
    if res["float_output_layers"]:
        log.info("onnxruntime layout: %d quantized layers keep a float output (they feed an activation ONNX Runtime "
                 "cannot fuse into its int8 conv, e.g. Swish) and run as float layers on int8 inputs",
                 len(res["float_output_layers"]))
    return out, {"activation_type": opts["activation_type"].name, "weight_type": opts["weight_type"].name,
                 "reduce_range": opts["reduce_range"], "op_types": res["op_types"],
                 "float_output_layers": res["float_output_layers"],
                 "trained_ranges": res["trained_ranges"], "float_nodes": res["float_nodes"],
                 "derived_from": "tensorrt layout (same weights and trained activation ranges)",
                 **({"int8_embeddings": embeddings} if embeddings else {})}


def fallback_latency_cost(work_dir: Path, seed: int, cfg, model, all_int8, example, raw_batches,
                          ort_fallback: Path) -> dict[str, Any]:
    """ONNX Runtime latency (batch 1, 2 threads, interleaved) of the onnxruntime layout with the fallback layers in
    float vs the same model with every layer INT8: what the fallback costs."""
    import torch

    from edgetl.quant import qat
    from edgetl.quant.layouts import derive_onnxruntime

    tmp = work_dir / "tmp-all-int8"
    tmp.mkdir()
    try:
        with torch.no_grad():
            export(qat.convert(all_int8), example, tmp / "trt.onnx", model)
        opts = layout_options(cfg, model.task, "onnxruntime")
        encode = model.encoder()
        derive_onnxruntime(tmp / "trt.onnx", tmp / "ort.onnx", [encode(b) for b in raw_batches[:2]], task=model.task,
                           op_types=opts["op_types_to_quantize"], activation_type=opts["activation_type"],
                           weight_type=opts["weight_type"], reduce_range=opts["reduce_range"])
        return fallback_latency(tmp / "ort.onnx", ort_fallback, latency_feed(encode, raw_batches[0][:1], model.task), seed,
                                note="p50 ms, onnxruntime layout, batch 1, 2 threads, 300 interleaved iterations each")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _parity(path: Path, model, raw_inputs, fq_logits: np.ndarray) -> dict[str, Any]:
    from edgetl.quant.parity import onnx_parity

    return onnx_parity(path, model.encoder(), raw_inputs, fq_logits)
