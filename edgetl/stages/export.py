"""`export`: the current PyTorch model to ONNX, checked against the torch model on real eval samples.

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
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edgetl.errors import ExportError
from edgetl.pipeline.artifacts import Artifact
from edgetl.recipe.schema import StageConfig
from edgetl.stages.base import PlanState, Stage, StageContext

log = logging.getLogger(__name__)


class ExportConfig(StageConfig):
    type: Literal["export"] = Field(description="Export the current PyTorch model to ONNX (FP32).")
    opset: int = Field(17, ge=13, le=21, description="ONNX opset to write (17 is safe for TensorRT 10.3 and ONNX Runtime).")
    parity_samples: int = Field(64, ge=1, le=10000, description="Eval examples on which ONNX Runtime is compared with torch.")
    parity_atol: float = Field(1e-3, gt=0, description="Largest allowed max-abs logit difference ONNX vs torch.")
    min_agreement: float = Field(0.99, ge=0, le=1, description="Smallest allowed top-1 agreement ONNX vs torch.")


def onnx_io(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims})
        return out

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output), "opset": opset}


def export_onnx(model, path: Path, opset: int) -> None:
    """Legacy exporter at a pinned opset, dynamic batch (and sequence for text) axes."""
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


def check_parity(model, onnx_path: Path, raw_inputs, atol: float, min_agreement: float) -> dict[str, float]:
    from edgetl.backends.onnxruntime import make_session, predict
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


class ExportStage(Stage):
    type = "export"
    Config = ExportConfig
    default_name = "onnx_fp32"

    def problems(self, plan: PlanState, recipe) -> list[str]:
        problems = []
        if not plan.has("pytorch"):
            problems.append(f"{self.field('type')}: export needs a PyTorch model before it")
        plan.available.append(("onnx", "fp32"))
        return problems

    def execute(self, ctx: StageContext) -> list[Artifact]:
        from edgetl.runtime.meta import write_onnx_meta

        cfg: ExportConfig = self.config  # type: ignore[assignment]
        model, parent = ctx.current_model()
        folder = ctx.work_dir / "onnx"
        folder.mkdir()
        path = folder / "model.onnx"
        try:
            export_onnx(model, path, cfg.opset)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed for {model.source}: {type(exc).__name__}: {exc}") from exc
        io = onnx_io(path)
        if io["opset"] != cfg.opset:
            log.warning("asked for opset %d, the exporter wrote %s", cfg.opset, io["opset"])
        for name, src in model.files.items():
            if name.startswith("tokenizer"):
                shutil.copyfile(src, folder / name)
        data = ctx.data()
        n = min(cfg.parity_samples, len(data.eval))
        parity = check_parity(model, path, data.eval.inputs[:n], cfg.parity_atol, cfg.min_agreement)
        info = {"params": model.parameter_count(), "opset": io["opset"], "io": io, "exporter": "torch.onnx (TorchScript)",
                "parity": parity}
        write_onnx_meta(path, labels=model.label_names, preprocessing=model.preprocessing, task=model.task, info=info)
        ctx.metrics.update({"parity": parity, "opset": io["opset"]})
        log.info("exported %s: opset %s, parity max|diff| %.2e, agreement %.3f", path.name, io["opset"],
                 parity["max_abs_diff"], parity["top1_agreement"])
        return [ctx.artifact(self.artifact_name, "onnx", "fp32", "onnx/model.onnx", parent=parent, info=info)]
