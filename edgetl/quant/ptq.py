"""Post-training quantization of an FP32 ONNX file with ONNX Runtime's static quantizer (Q/DQ format), in the
ONNX Runtime and/or TensorRT layout, with optional per-node sensitivity ranking and an accuracy-budget fallback
that keeps the most sensitive nodes in float."""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgetl.backends.onnx_graph import count_qdq, opset_of
from edgetl.errors import NonFiniteError, RecipeError, StageError
from edgetl.quant.config import SENSITIVITY_SEED, QuantizeConfig
from edgetl.quant.options import layout_options
from edgetl.runtime.preprocess import latency_feed

log = logging.getLogger(__name__)
CALIB_BATCH = 16


class CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's quantizer."""

    def __init__(self, batches: list[dict[str, Any]]):
        self._batches = batches
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def preprocess_for_quantization(src: Path, dst: Path) -> None:
    """ONNX Runtime's pre-processing (shape inference + graph optimisation); symbolic shape inference
    fails on some exported transformers, so retry without it before giving up."""
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


def ptq_onnx(src: Path, folders: dict[str, Path], cfg: QuantizeConfig, calibration: Any, *, eval_split: Any = None,
             seed: int = 0, field_prefix: str = "") -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Quantize the FP32 ONNX file `src` (with its model.json sidecar) once per layout into `folders[layout]`
    (model.onnx + model.json + a text model's tokenizer). `calibration`: a Split of raw inputs; `eval_split`
    (labelled) is needed by `cfg.fallback`. Returns ({layout: info written to the sidecar}, metrics)."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from edgetl.quant.check_qdq import check_qdq
    from edgetl.quant.embeddings import int8_embeddings
    from edgetl.quant.layouts import drop_misplaced_qdq
    from edgetl.quant.ptq_fallback import read_float_inputs
    from edgetl.runtime.meta import read_onnx_meta, write_onnx_meta

    meta = read_onnx_meta(src)
    if cfg.fallback and eval_split is None:
        raise RecipeError(f"{field_prefix}fallback: the accuracy budget is measured on labelled eval data, and none "
                          "was given", hint="pass eval data, or drop `fallback`")
    encode = meta.encoder()
    # ONNX Runtime's histogram calibrators (percentile, entropy) stack every batch's outputs into one array, which
    # fails when text batches are padded to different lengths: pad them all to max_length (the pad tokens'
    # states then count in the histogram; minmax keeps each batch as short as its longest text)
    pad_to_max = meta.task == "text" and cfg.calibration in ("percentile", "entropy")
    inputs = calibration.inputs
    batches = [encode(inputs[i : i + CALIB_BATCH], **({"pad_to_max": True} if pad_to_max else {}))
               for i in range(0, len(calibration), CALIB_BATCH)]
    if meta.task == "text":  # the graph may not take every encoded input
        import onnx

        names = {i.name for i in onnx.load(str(src), load_external_data=False).graph.input}
        batches = [{k: v for k, v in b.items() if k in names} for b in batches]
    metrics: dict[str, Any] = {}
    infos: dict[str, dict[str, Any]] = {}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".edgetl-ptq-", dir=next(iter(folders.values()))))
    pre = scratch / "preprocessed.onnx"
    try:
        preprocess_for_quantization(src, pre)
        for layout, folder in folders.items():
            opts = layout_options(cfg, meta.task, layout)
            out = folder / "model.onnx"

            def quantize(excluded: list[str], out: Path = out, opts: dict[str, Any] = opts) -> Path:
                try:
                    quantize_static(str(pre), str(out), CalibrationReader(batches), quant_format=QuantFormat.QDQ,
                                    nodes_to_exclude=excluded or None, **opts)
                except Exception as exc:
                    raise StageError(f"ONNX Runtime quantization failed: {type(exc).__name__}: {exc}") from exc
                read_float_inputs(out, excluded)
                return out

            extra: dict[str, Any] = {}
            pinned = pinned_float_nodes(cfg.float_nodes, pre, f"{field_prefix}float_nodes")
            quantize(pinned)
            if pinned:
                extra["float_nodes"] = pinned
            if cfg.fallback or cfg.sensitivity:
                extra["float_nodes"] = _rank_and_fall_back(cfg, src, pre, out, quantize, pinned, batches, layout,
                                                           eval_split, seed, scratch, metrics)
            if layout == "onnxruntime" and cfg.embeddings == "int8":
                extra["int8_embeddings"] = int8_embeddings(out)
            if layout == "tensorrt":
                extra["removed_misplaced_qdq"] = drop_misplaced_qdq(out)
                extra["check_qdq_violations"] = len(check_qdq(out, allow_float=set(extra.get("float_nodes", []))))
            for f in src.parent.iterdir():
                if f.name.startswith("tokenizer"):
                    shutil.copyfile(f, folder / f.name)
            info = {
                "params": meta.info.get("params"), "opset": opset_of(out), "method": "ptq", "layout": layout,
                "calibration": cfg.calibration, "calibration_samples": int(len(calibration)),
                "calibration_data": cfg.calibration_data,
                **({"calibration_padded_to": int(batches[0]["input_ids"].shape[1])} if pad_to_max else {}),
                "per_channel": opts["per_channel"], "activation_type": opts["activation_type"].name,
                "weight_type": opts["weight_type"].name, "reduce_range": opts["reduce_range"],
                "op_types": opts["op_types_to_quantize"], "qdq_nodes": count_qdq(out), **extra,
            }
            write_onnx_meta(out, labels=meta.labels, preprocessing=meta.preprocessing, task=meta.task, info=info)
            if not infos:
                metrics.update({k: info[k] for k in ("method", "layout", "calibration", "calibration_samples",
                                                     "calibration_data", "qdq_nodes")})
            infos[layout] = info
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return infos, metrics


def pinned_float_nodes(patterns: list[str] | None, model_path: Path, field: str) -> list[str]:
    """ONNX node names matching the fnmatch `patterns`; a pattern matching nothing is an error naming `field`."""
    import onnx

    if not patterns:
        return []
    names = [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.name]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            examples = ", ".join(n for n in names if any(op in n for op in ("MatMul", "Gemm", "Conv")))[:300]
            raise RecipeError(f"{field}: {pattern!r} matches no node of the ONNX model",
                              hint=f"node names look like: {examples} ...")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _rank_and_fall_back(cfg: QuantizeConfig, float_path: Path, quantized_from: Path, out: Path,
                        quantize: Callable[[list[str]], Path], pinned: list[str], batches: list[dict[str, Any]],
                        layout: str, eval_split: Any, seed: int, scratch: Path, metrics: dict[str, Any]) -> list[str]:
    """Rank the INT8 file's nodes (`sensitivity` set: one at a time by output SQNR; else by input SQNR), then,
    with `fallback`, keep the most sensitive float until the budget holds."""
    from edgetl.backends.onnxruntime import predict
    from edgetl.data.datasets import stratified_subset
    from edgetl.quant.ptq_fallback import choose_float_nodes, node_sensitivity, output_sensitivity
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.runtime.ort import make_session
    from edgetl.train.finite import nonfinite

    if cfg.sensitivity:
        used = batches[: max(1, -(-cfg.sensitivity.samples // CALIB_BATCH))]
        ranked, by = output_sensitivity(quantized_from, out, used), "output SQNR, one node quantized at a time"
    else:
        used = batches[:8]
        ranked, by = node_sensitivity(quantized_from, out, used), "SQNR of the node's int8 input activation"
    samples = sum(len(next(iter(b.values()))) for b in used)
    ranked = [r for r in ranked if r["node"] not in pinned]
    metrics.setdefault("ranking", {})[layout] = {
        "by": by, "samples": int(samples), "nodes": len(ranked),
        "table": [{k: r[k] for k in ("rank", "node", "op", "sqnr_db")} for r in ranked[:30]]}
    fb = cfg.fallback
    if fb is None:
        return pinned
    idx = stratified_subset(eval_split.labels, min(fb.samples, len(eval_split)), seed + SENSITIVITY_SEED)
    evals = eval_split.take(idx)
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
    all_int8 = scratch / f"all-int8-{layout}.onnx"  # kept for the latency comparison below
    shutil.copyfile(out, all_int8)
    decision = choose_float_nodes(
        ranked, lambda extra: quantize(pinned + extra), accuracy, float_acc, max_accuracy_drop=fb.max_accuracy_drop,
        max_layers=fb.max_layers, first_accuracy=first)
    if decision["float_nodes"] != decision["steps"][-1]["float_nodes"]:
        quantize(pinned + decision["float_nodes"])  # the last file written was not the one chosen
    if decision["float_nodes"]:
        decision["latency_ms"] = fallback_latency(all_int8, out, latency_feed(encode, evals.inputs[:1], meta.task),
                                                  seed)
    decision.update({"samples": int(len(evals)), "pinned_float_nodes": pinned})
    metrics.setdefault("fallback", {})[layout] = decision
    log.info("ptq fallback (%s): %s float, accuracy %.4f vs FP32 %.4f (budget %s)", layout,
             ", ".join(decision["float_nodes"]) or "nothing", decision["accuracy"], float_acc,
             "met" if decision["budget_met"] else "NOT met")
    return pinned + decision["float_nodes"]


def fallback_latency(all_int8: Path, with_fallback: Path, feed_raw: dict[str, Any], seed: int,
                     note: str = "p50 ms, batch 1 (text: max_length tokens), 2 threads, 300 interleaved iterations each"
                     ) -> dict[str, Any]:
    """What a fallback costs (QAT and PTQ): both files timed interleaved in ONNX Runtime, batch 1, 2 threads, 300
    runs each (fewer runs let a shared machine's noise hide a fallback's cost)."""
    from edgetl.backends.onnxruntime import session_inputs
    from edgetl.bench.protocol import summarize, time_interleaved
    from edgetl.runtime.ort import make_session

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
