"""`edgetl.export_onnx`: a PyTorch model to ONNX, checked against the torch model on real (or seeded random)
inputs, with the `model.json` sidecar (labels, preprocessing) that the benchmark, bundles and apps read.

Exporter: torch.onnx's TorchScript-based exporter (`dynamo=False`), because it writes the opset asked
for (17: safe for TensorRT 10.3 on JetPack 6 and for ONNX Runtime) and handles every model edgetl makes
(pruned, with adapters). The dynamo exporter writes opset >= 18 and is used where it is needed (QAT).
Optimum's exporter (optimum-onnx 0.1) pins transformers < 4.58, so it cannot install beside transformers 5.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import ExportError
from edgetl.export.config import ExportConfig
from edgetl.result import Result

log = logging.getLogger(__name__)
EXPORTER = "torch.onnx (TorchScript)"
# parity inputs of a text model exported without data: ordinary sentences of a few lengths
SAMPLE_TEXTS = ["a short one", "the quick brown fox jumps over the lazy dog",
                "an example sentence that is a little longer than the others, with punctuation and numbers 1 2 3",
                "yes", "not what I expected at all", "it works"]


def export_onnx(model: Any, out: str | Path, config: ExportConfig | dict[str, Any] | None = None, *,
                data: Any = None, labels: list[str] | None = None) -> Result:
    """Write `model` as ONNX to `out` (a folder, which gets model.onnx, or a path ending in .onnx; model.json
    and a text model's tokenizer go beside it) and check ONNX Runtime agrees with torch.

    model: nn.Module, (nn.Module, preprocessing) or EdgeModel. data: raw inputs for the parity check (images
    or strings, or any data form edgetl.data.inputs takes: its eval part is used); default seeded random
    images or a few sample sentences. Returns Result(model, path of the .onnx, metrics: params, opset, io,
    exporter, parity). Raises ExportError when the export fails or parity is off."""
    from edgetl.backends.onnx_graph import io_spec
    from edgetl.models.custom import edge_model
    from edgetl.runtime.meta import write_onnx_meta

    cfg = config if isinstance(config, ExportConfig) else ExportConfig.model_validate(config or {})
    model = edge_model(model, label_names=labels)
    out = Path(out)
    path = out if out.suffix == ".onnx" else out / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch_to_onnx(model, path, cfg.opset)
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {model.source}: {type(exc).__name__}: {exc}") from exc
    io = io_spec(path)
    if io["opset"] != cfg.opset:
        log.warning("asked for opset %d, the exporter wrote %s", cfg.opset, io["opset"])
    for name, src in model.files.items():
        if name.startswith("tokenizer"):
            shutil.copyfile(src, path.parent / name)
    raw = parity_inputs(model, data, cfg.parity_samples)
    parity = check_parity(model, path, raw, cfg.parity_atol, cfg.min_agreement)
    info = {"params": model.parameter_count(), "opset": io["opset"], "io": io, "exporter": EXPORTER, "parity": parity}
    write_onnx_meta(path, labels=model.label_names, preprocessing=model.preprocessing, task=model.task, info=info)
    log.info("exported %s: opset %s, parity max|diff| %.2e, agreement %.3f", path.name, io["opset"],
             parity["max_abs_diff"], parity["top1_agreement"])
    return Result(model, path, info)


def parity_inputs(model: Any, data: Any, n: int) -> Any:
    """The first `n` raw eval inputs of `data`, or seeded random images / sample sentences without data."""
    if data is None:
        if model.task == "text":
            return (SAMPLE_TEXTS * (n // len(SAMPLE_TEXTS) + 1))[:n]
        size = int(model.preprocessing.size or 224)
        return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    from edgetl.data.datasets import DataBundle, Split
    from edgetl.data.inputs import as_split

    if isinstance(data, DataBundle):
        data = data.eval
    if isinstance(data, (list, np.ndarray)) or hasattr(data, "detach"):
        data = (data, np.zeros(len(data), dtype=np.int64))  # bare inputs: labels play no part in parity
    split = data if isinstance(data, Split) else as_split(data, "parity")
    return split.inputs[: min(n, len(split))]


def torch_to_onnx(model: Any, path: Path, opset: int) -> None:
    """Legacy exporter at a pinned opset, dynamic batch (and sequence for text) axes; no checks, no sidecar."""
    import torch

    module = model.module.eval()
    inputs = model.example_inputs(batch=2)
    names = list(inputs)
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    if model.task == "text":
        for n in names:
            axes[n][1] = "sequence"
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(inputs[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)


def check_parity(model: Any, onnx_path: Path, raw_inputs: Any, atol: float, min_agreement: float) -> dict[str, float]:
    from edgetl.backends.onnxruntime import predict
    from edgetl.runtime.ort import make_session
    from edgetl.train.finite import nonfinite, over, under
    from edgetl.train.loop import predict_logits

    session = make_session(onnx_path, threads=None)
    ort_logits = predict(session, model.encoder(), raw_inputs, batch_size=32)
    torch_logits = predict_logits(model, raw_inputs, batch_size=32)
    bad = nonfinite(torch_logits=torch_logits, onnx_runtime_logits=ort_logits)
    if bad:  # NaN compares as "within tolerance" and argmaxes to class 0 on both sides
        raise ExportError(
            f"ONNX parity cannot pass on {len(raw_inputs)} eval samples: {bad}",
            hint="the model's weights hold NaN or infinity (an earlier stage diverged): rerun it with a lower lr")
    diff = float(np.abs(ort_logits - torch_logits).max())
    agree = float((ort_logits.argmax(-1) == torch_logits.argmax(-1)).mean())
    result = {"max_abs_diff": diff, "top1_agreement": agree, "samples": len(raw_inputs)}
    if over(diff, atol) or under(agree, min_agreement):
        raise ExportError(
            f"ONNX export of the model disagrees with torch on {len(raw_inputs)} eval samples: "
            f"max abs logit diff {diff:.3g} (allowed {atol}), top-1 agreement {agree:.3f} (needed {min_agreement})",
            hint="this is an exporter bug or an op with different semantics; file an issue with the model name",
        )
    return result
